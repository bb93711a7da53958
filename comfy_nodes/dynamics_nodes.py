"""Latent dynamics: a specification node per kind (ODE, CDE, SDE), fitting, time grids, sampling, plotting."""

from __future__ import annotations

import logging
import time

import numpy as np
import torch

import dynode_core as dc
from dynode_core.plotting import plot_trajectory
from dynode_core.times import parse_times
from dynode_core.trajectory import KEYFRAME_MODES, keyframes_mode, sample_clip

from . import _runtime
from ._schema import Bool, Choice, Float, Input, Int, Output, Seed, Socket, Text, node
from .sockets import CODES, DYNAMICS, DYNAMICS_SPEC, IMAGE, TIMES, DynamicsSpec

log = logging.getLogger(__name__)


@node("DynodeFitDynamics", "Fit Dynamics (DynODE)", category="DynODE/dynamics",
      description="Fit a continuous-time model of how the codes move (the kind and its settings come from the "
                  "Neural ODE / CDE / SDE node), so the clip can be sampled at any time.",
      inputs=[
          Socket("codes", CODES, "Observed codes and their times (e.g. from Invert); any spacing."),
          Socket("spec", DYNAMICS_SPEC, "Which model to fit: connect a Neural ODE, Neural CDE or Neural SDE node."),
          Seed("Seed of the fit (the same seed gives the same model)."),
      ],
      outputs=[Output("dynamics", DYNAMICS, "The fitted dynamics, for Sample Trajectory or Save Dynamics.")])
class FitDynamics:
    @_runtime.grad_enabled
    def run(self, codes, spec, seed):
        if not isinstance(spec, DynamicsSpec):
            raise TypeError("spec must come from a Neural ODE / CDE / SDE node")
        progress = _runtime.Progress(spec.options.get("iterations", 1))
        start = time.perf_counter()
        dyn = dc.fit_dynamics(codes, kind=spec.kind, seed=seed, device=_runtime.compute_device(),
                              progress=progress, cancel=_runtime.cancel_hook, **spec.options)
        log.info("DynODE FitDynamics: %s on %d codes in %.1f s", spec.kind, len(codes), time.perf_counter() - start)
        return (dyn,)


@node("DynodeSampleTimes", "Sample Times (DynODE)", category="DynODE/dynamics",
      description="A grid of times to sample a trajectory at: every gap between the codes' times split in "
                  "'factor' parts (x factor frame rate), optionally continued past the last one, plus any explicit "
                  "times.",
      inputs=[
          Socket("codes", CODES, "The keyframes whose times the grid is built on."),
          Int("factor", 4, "Split every gap between keyframes in this many parts (1 = only the keyframes' times).",
              min=1, max=256),
          Float("extrapolate", 0.0, "Seconds to continue past the last keyframe (0 = none), at the interpolated "
                "spacing.", min=0.0, max=3600.0, step=0.05),
          Text("extra_times", "", "Additional times in seconds, separated by commas (the dynode CLI's --times "
               "syntax), e.g. '0.1, 2.5'. Leave empty for none."),
      ],
      outputs=[Output("times", TIMES, "Sorted times in seconds.")])
class SampleTimes:
    def run(self, codes, factor, extrapolate, extra_times):
        return (dc.sample_times(codes.times, factor=factor, extrapolate=extrapolate, times=parse_times(extra_times)),)


@node("DynodeSampleTrajectory", "Sample Trajectory (DynODE)", category="DynODE/dynamics",
      description="Run the fitted dynamics and read the path at the given times. By default it starts from the "
                  "fitted clip's own first code; connect z0 (e.g. an edited first frame, or another clip's codes) "
                  "to run the same motion from there. For an SDE, each seed draws another plausible path.",
      inputs=[
          Socket("dynamics", DYNAMICS, "Fitted dynamics (Fit Dynamics or Load Dynamics)."),
          Socket("times", TIMES, "Where to read the path (Sample Times)."),
          Seed("Noise seed of an SDE (ignored by ODE and CDE)."),
          Choice("mode", list(KEYFRAME_MODES), "auto: as the model was fitted (keyframes on: through the "
                 "keyframes, shifted by z0's offset if connected). through keyframes: pass through the observed "
                 "codes (shifted by z0's offset if connected). initial value: run the learned motion from z0 (or "
                 "the first code) only.", default="auto"),
          Socket("z0", CODES, "Start from the first of these codes instead of the fitted clip's first code (e.g. "
                 "Edit Initial's output).", optional=True),
          Socket("control", CODES, "Neural CDE only: drive the model with these codes' motion instead of the "
                 "fitted clip's (motion transfer).", optional=True),
      ],
      outputs=[Output("codes", CODES, "Codes along the trajectory, one per time.")])
class SampleTrajectory:
    def run(self, dynamics, times, seed, mode="auto", z0=None, control=None):
        out = sample_clip(dynamics, times, z0=z0, control=control, seed=seed, keyframes=keyframes_mode(mode))
        return (out.to(_runtime.output_device()),)


@node("DynodePlotTrajectory", "Plot Trajectory (DynODE)", category="DynODE/dynamics",
      description="Picture of the trajectory: the observed codes as dots and up to three sampled paths as lines, "
                  "in the observed clip's first two principal components.",
      inputs=[
          Socket("observed", CODES, "The observed codes (e.g. Invert's output); they set the axes."),
          Int("width", 640, "Image width.", min=128, max=4096, step=16),
          Int("height", 480, "Image height.", min=128, max=4096, step=16),
          Text("labels", "path 1, path 2, path 3", "Legend names of path_1, path_2, path_3, comma-separated."),
          Socket("path_1", CODES, "A sampled path, e.g. Sample Trajectory's output.", optional=True),
          Socket("path_2", CODES, "Another path, e.g. an edited rollout or another SDE sample.", optional=True),
          Socket("path_3", CODES, "A third path.", optional=True),
      ],
      outputs=[Output("image", IMAGE, "The plot as an image.")])
class PlotTrajectory:
    def run(self, observed, width, height, labels="", path_1=None, path_2=None, path_3=None):
        names = [n.strip() for n in labels.split(",")]
        names = [names[i] if i < len(names) and names[i] else f"path {i + 1}" for i in range(3)]
        named = [(names[i], p) for i, p in enumerate((path_1, path_2, path_3)) if p is not None]
        img = plot_trajectory(observed.codes, [p.codes for _, p in named], [n for n, _ in named],
                              observed_times=observed.times, size=(width, height))
        array = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0)[None]  # [1, H, W, 3]
        return (array.to(_runtime.output_device()),)


# --- one specification node per kind ------------------------------------------------------------------------
# The options users tune, as widgets; defaults come from dc.dynamics_options(kind), and a kind's node shows the
# widgets of the options that kind has. FitDynamics passes the values through to dc.fit_dynamics.

_WIDGETS = {
    "iterations": lambda d: Int("iterations", d, "Optimiser steps of the fit: more fit the codes more closely and "
                                "take longer.", min=1, max=100000),
    "rank": lambda d: Int("rank", d, "Largest number of directions of the clip's motion subspace the model moves "
                          "in (at most frames - 1 are used).", min=1, max=512),
    "keyframes": lambda d: Bool("keyframes", d, "On: sampled paths pass through the observed codes "
                                "(interpolation). Off: a pure initial-value model (the paper's), for propagating "
                                "edits and extrapolating."),
    "pace": lambda d: Bool("pace", d, "Keyframe mode: cross each gap between keyframes at a speed eased from the "
                           "neighbouring gaps' (motion speeds up and slows down). Off: every gap at a constant "
                           "speed."),
    "hidden": lambda d: Int("hidden", d, "Width of the network (MLP) of the model's vector field.", min=4, max=4096),
    "regularization": lambda d: Float("regularization", d, "Weight decay of the network: larger values give "
                                      "calmer, straighter paths.", min=0.0001, max=10.0, step=0.0001),
    "state": lambda d: Int("state", d, "Size of the hidden state the clip drives.", min=1, max=1024),
    "extrapolation": lambda d: Choice("extrapolation", ["auto", "flow"], "Keyframe mode, before the first and past "
                                      "the last keyframe. auto: the motion continues, slows down and settles on "
                                      "the clip's typical face (or the learned flow where it extrapolates better "
                                      "on this clip). flow: always the learned dynamics from the end keyframe.",
                                      default=d),
    "between": lambda d: Choice("between", ["auto", "spline", "flow"], "Keyframe mode, between keyframes. spline: a "
                                "curve through the keyframes. flow: the learned dynamics, bent to pass through both "
                                "keyframes of each gap. auto: the flow where it predicts left-out keyframes better "
                                "on this clip (smooth motion), else the spline.", default=d),
}


def spec_widgets(kind: str) -> list[Input]:
    """The widgets of a kind's node: the tunable options that kind has, with the library's defaults."""
    defaults = dc.dynamics_options(kind)
    return [make(defaults[name]) for name, make in _WIDGETS.items() if name in defaults]


def _spec_node(kind: str, node_id: str, title: str, description: str) -> type:
    widgets = spec_widgets(kind)
    names = {w.name for w in widgets}

    def run(self, **values):
        unknown = set(values) - names
        if unknown:
            raise TypeError(f"unknown {title} option(s) {sorted(unknown)}; expected {sorted(names)}")
        return (DynamicsSpec(kind, dict(values)),)

    cls = type(title.replace(" ", ""), (), {"run": run, "KIND": kind, "__module__": __name__})
    return node(node_id, f"{title} (DynODE)", category="DynODE/dynamics", description=description,
                inputs=widgets, outputs=[Output("spec", DYNAMICS_SPEC, f"{title} settings, for Fit Dynamics.")])(cls)


NeuralODE = _spec_node("ode", "DynodeNeuralODE", "Neural ODE", "A neural ODE: a learned velocity field moves the "
                       "code deterministically, giving a smooth path through any time.")
NeuralCDE = _spec_node("cde", "DynodeNeuralCDE", "Neural CDE", "A neural controlled differential equation: a hidden "
                       "state is driven by a smooth interpolation of all observed frames, not only the first. Sample "
                       "Trajectory's control input drives it with another clip's motion (motion transfer).")
NeuralSDE = _spec_node("sde", "DynodeNeuralSDE", "Neural SDE", "A neural SDE: learned drift and diffusion; every "
                       "seed of Sample Trajectory draws another plausible path (in keyframe mode only the frames "
                       "between keyframes vary).")
