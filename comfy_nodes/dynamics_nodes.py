"""Latent dynamics: a specification node per family (ODE, CDE, SDE), fitting, time grids, sampling, plotting."""

from __future__ import annotations

import logging
import time

import numpy as np
import torch

import dynode_core as dc
from dynode_core.plotting import plot_trajectory

from . import _runtime
from .sockets import CODES, DYNAMICS, DYNAMICS_SPEC, IMAGE, TIMES, Codes, DynamicsSpec

log = logging.getLogger(__name__)


class FitDynamics:
    DESCRIPTION = ("Fit a continuous-time model of how the codes move (the family and its settings come from the "
                   "ODE / CDE / SDE node), so the clip can be sampled at any time.")
    CATEGORY = "DynODE/dynamics"
    RETURN_TYPES = (DYNAMICS,)
    RETURN_NAMES = ("dynamics",)
    OUTPUT_TOOLTIPS = ("The fitted dynamics, for Sample Trajectory or Save Dynamics.",)
    FUNCTION = "fit"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "codes": (CODES, {"tooltip": "Observed codes and their times (e.g. from Invert); any spacing."}),
            "spec": (DYNAMICS_SPEC, {"tooltip": "Which model to fit: connect a Neural ODE, Neural CDE or Neural "
                                                "SDE node."}),
            "seed": ("INT", {"default": 0, "min": 0, "max": 2**31 - 1, "tooltip": "Seed of the fit (the same seed "
                             "gives the same model)."}),
        }}

    @_runtime.grad_enabled
    def fit(self, codes, spec, seed):
        if not isinstance(spec, DynamicsSpec):
            raise TypeError("spec must come from a Neural ODE / CDE / SDE node")
        progress = _runtime.Progress(spec.options.get("iterations", 1))
        start = time.perf_counter()
        dyn = dc.fit_dynamics(codes.times, codes.codes, kind=spec.kind, seed=seed, device=_runtime.compute_device(),
                              progress=progress, cancel=_runtime.cancel_hook, **spec.options)
        log.info("DynODE FitDynamics: %s on %d codes in %.1f s", spec.kind, len(codes), time.perf_counter() - start)
        return (dyn,)


class SampleTimes:
    DESCRIPTION = ("A grid of times to sample a trajectory at: every gap between the codes' times split in "
                   "'factor' parts (x factor frame rate), optionally continued past the last one, plus any "
                   "explicit times.")
    CATEGORY = "DynODE/dynamics"
    RETURN_TYPES = (TIMES,)
    RETURN_NAMES = ("times",)
    OUTPUT_TOOLTIPS = ("Sorted times in seconds.",)
    FUNCTION = "times"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "codes": (CODES, {"tooltip": "The keyframes whose times the grid is built on."}),
            "factor": ("INT", {"default": 4, "min": 1, "max": 256, "tooltip": "Split every gap between keyframes in "
                               "this many parts (1 = only the keyframes' times)."}),
            "extrapolate": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 3600.0, "step": 0.05, "tooltip": "Seconds "
                                      "to continue past the last keyframe (0 = none), at the interpolated spacing."}),
            "extra_times": ("STRING", {"default": "", "tooltip": "Additional times, comma-separated seconds, e.g. "
                                       "'0.1, 2.5'. Leave empty for none."}),
        }}

    def times(self, codes, factor, extrapolate, extra_times):
        extra = None
        if extra_times.strip():
            try:
                extra = [float(v) for v in extra_times.replace(";", ",").split(",") if v.strip()]
            except ValueError:
                raise ValueError(f"extra_times must be comma-separated numbers (seconds), got {extra_times!r}")
        return (dc.sample_times(codes.times, factor=factor, extrapolate=extrapolate, times=extra),)


_MODES = {"auto": None, "through keyframes": True, "initial value": False}


class SampleTrajectory:
    DESCRIPTION = ("Run the fitted dynamics and read the path at the given times. By default it starts from the "
                   "fitted clip's own first code; connect z0 (e.g. an edited first frame, or another clip's codes) "
                   "to run the same motion from there. For an SDE, each seed draws another plausible path.")
    CATEGORY = "DynODE/dynamics"
    RETURN_TYPES = (CODES,)
    RETURN_NAMES = ("codes",)
    OUTPUT_TOOLTIPS = ("Codes along the trajectory, one per time.",)
    FUNCTION = "sample"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "dynamics": (DYNAMICS, {"tooltip": "Fitted dynamics (Fit Dynamics or Load Dynamics)."}),
                "times": (TIMES, {"tooltip": "Where to read the path (Sample Times)."}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 2**31 - 1, "tooltip": "Noise seed of an SDE "
                                 "(ignored by ODE and CDE)."}),
                "mode": (list(_MODES), {"default": "auto", "tooltip": "auto: as the model was fitted (keyframes on: "
                                        "through the keyframes, shifted by z0's offset if connected). "
                                        "through keyframes: pass through the observed codes (shifted by z0's "
                                        "offset if connected). initial value: run the learned motion from z0 (or "
                                        "the first code) only."}),
            },
            "optional": {
                "z0": (CODES, {"tooltip": "Start from the first of these codes instead of the fitted clip's first "
                                          "code (e.g. Edit Initial's output)."}),
                "control": (CODES, {"tooltip": "Neural CDE only: drive the model with these codes' motion instead "
                                               "of the fitted clip's (motion transfer)."}),
            },
        }

    def sample(self, dynamics, times, seed, mode="auto", z0=None, control=None):
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {list(_MODES)}, got {mode!r}")
        start = None if z0 is None else z0.codes[:1]
        extra = {}
        if control is not None:
            if getattr(dynamics, "kind", None) != "cde":
                raise ValueError(f"control (motion transfer) needs Neural CDE dynamics; these are "
                                 f"{getattr(dynamics, 'kind', '?')!r}: fit with a Neural CDE node or disconnect control")
            if mode == "through keyframes":
                raise ValueError("mode 'through keyframes' follows the fitted clip; with a control clip use 'auto' "
                                 "or 'initial value'")
            extra = {"control": control.codes, "control_times": control.times}
        with torch.no_grad():
            out = dynamics.sample(times, z0=start, seed=seed, keyframes=_MODES[mode], **extra)
        return (Codes(out.detach().float().to(_runtime.output_device()), times.detach().float().cpu()),)


class PlotTrajectory:
    DESCRIPTION = ("Picture of the trajectory: the observed codes as dots and up to three sampled paths as lines, "
                   "in the observed clip's first two principal components.")
    CATEGORY = "DynODE/dynamics"
    RETURN_TYPES = (IMAGE,)
    RETURN_NAMES = ("image",)
    OUTPUT_TOOLTIPS = ("The plot as an image.",)
    FUNCTION = "plot"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "observed": (CODES, {"tooltip": "The observed codes (e.g. Invert's output); they set the axes."}),
                "width": ("INT", {"default": 640, "min": 128, "max": 4096, "step": 16, "tooltip": "Image width."}),
                "height": ("INT", {"default": 480, "min": 128, "max": 4096, "step": 16, "tooltip": "Image height."}),
                "labels": ("STRING", {"default": "path 1, path 2, path 3", "tooltip": "Legend names of path_1, "
                                      "path_2, path_3, comma-separated."}),
            },
            "optional": {
                "path_1": (CODES, {"tooltip": "A sampled path, e.g. Sample Trajectory's output."}),
                "path_2": (CODES, {"tooltip": "Another path, e.g. an edited rollout or another SDE sample."}),
                "path_3": (CODES, {"tooltip": "A third path."}),
            },
        }

    def plot(self, observed, width, height, labels="", path_1=None, path_2=None, path_3=None):
        names = [n.strip() for n in labels.split(",")]
        names = [names[i] if i < len(names) and names[i] else f"path {i + 1}" for i in range(3)]
        named = [(names[i], p) for i, p in enumerate((path_1, path_2, path_3)) if p is not None]
        img = plot_trajectory(observed.codes, [p.codes for _, p in named], [n for n, _ in named],
                                 observed_times=observed.times, size=(width, height))
        array = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0)[None]  # [1, H, W, 3]
        return (array.to(_runtime.output_device()),)


# --- one specification node per family ---------------------------------------------------------------------------
# Each widget maps 1:1 to an option of dc.fit_dynamics(kind=...); FitDynamics passes them through.

def _spec_node(kind: str, title: str, description: str, options: dict):
    class Spec:
        DESCRIPTION = description
        CATEGORY = "DynODE/dynamics"
        RETURN_TYPES = (DYNAMICS_SPEC,)
        RETURN_NAMES = ("spec",)
        OUTPUT_TOOLTIPS = (f"{title} settings, for Fit Dynamics.",)
        FUNCTION = "spec"
        KIND = kind

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": dict(options)}

        def spec(self, **values):
            unknown = set(values) - set(options)
            if unknown:
                raise TypeError(f"unknown {title} option(s) {sorted(unknown)}; expected {sorted(options)}")
            return (DynamicsSpec(kind, dict(values)),)

    Spec.__name__ = Spec.__qualname__ = title.replace(" ", "")
    return Spec


def _options(kind: str) -> dict:
    """The widgets of a family node: the options users tune, with the library's defaults."""
    defaults = dc.dynamics_options(kind)
    widgets = {
        "iterations": ("INT", {"default": defaults["iterations"], "min": 1, "max": 100000, "tooltip": "Optimiser "
                               "steps of the fit: more fit the codes more closely and take longer."}),
        "rank": ("INT", {"default": defaults["rank"], "min": 1, "max": 512, "tooltip": "Largest number of "
                         "directions of the clip's motion subspace the model moves in (at most frames - 1 are "
                         "used)."}),
        "keyframes": ("BOOLEAN", {"default": defaults["keyframes"], "tooltip": "On: sampled paths pass through "
                                  "the observed codes (interpolation). Off: a pure initial-value model (the "
                                  "paper's), for propagating edits and extrapolating."}),
        "pace": ("BOOLEAN", {"default": defaults["pace"], "tooltip": "Keyframe mode: cross each gap between "
                             "keyframes at a speed eased from the neighbouring gaps' (motion speeds up and slows "
                             "down). Off: every gap at a constant speed."}),
        "hidden": ("INT", {"default": defaults["hidden"], "min": 4, "max": 4096, "tooltip": "Width of the "
                           "network (MLP) of the model's vector field."}),
        "regularization": ("FLOAT", {"default": defaults["regularization"], "min": 0.0001, "max": 10.0,
                                     "step": 0.0001, "tooltip": "Weight decay of the network: larger values give "
                                     "calmer, straighter paths."}),
    }
    if kind == "cde":
        widgets["state"] = ("INT", {"default": defaults["state"], "min": 1, "max": 1024, "tooltip": "Size of the "
                                    "hidden state the clip drives."})
    return widgets


NeuralODE = _spec_node("ode", "Neural ODE", "A neural ODE: a learned velocity field moves the code "
                       "deterministically, giving a smooth path through any time.", _options("ode"))
NeuralCDE = _spec_node("cde", "Neural CDE", "A neural controlled differential equation: a hidden state is driven "
                       "by a smooth interpolation of all observed frames, not only the first. Sample Trajectory's "
                       "control input drives it with another clip's motion (motion transfer).", _options("cde"))
NeuralSDE = _spec_node("sde", "Neural SDE", "A neural SDE: learned drift and diffusion; every seed of Sample "
                       "Trajectory draws another plausible path (in keyframe mode only the frames between "
                       "keyframes vary).", _options("sde"))
