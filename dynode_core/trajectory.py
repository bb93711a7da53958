"""Sampling fitted dynamics into a `Clip`: the rules the CLI and the ComfyUI nodes share.

`dyn.sample(times)` gives a tensor [N, L, D]; `sample_clip` wraps it with the times and the generator identity
(the dynamics' metadata, or the start code's), takes Clips for `z0` and `control`, and checks the motion
transfer rules before anything runs.
"""

from __future__ import annotations

import inspect

import torch

from .clip import IDENTITY_KEYS, Clip, as_codes

__all__ = ["sample_clip", "KEYFRAME_MODES", "keyframes_mode", "supports_control"]

# How a path relates to the fitted keyframes, by name (the Sample Trajectory node's `mode`) -> `keyframes=`.
KEYFRAME_MODES = {"auto": None, "through keyframes": True, "initial value": False}


def keyframes_mode(name: str) -> bool | None:
    """'auto' -> None (as the model was fitted), 'through keyframes' -> True, 'initial value' -> False."""
    if name not in KEYFRAME_MODES:
        raise ValueError(f"mode must be one of {list(KEYFRAME_MODES)}, got {name!r}")
    return KEYFRAME_MODES[name]


def supports_control(dyn) -> bool:
    """Whether these dynamics can be driven by another clip's motion (`sample(..., control=...)`)."""
    return "control" in inspect.signature(dyn.sample).parameters


def sample_clip(dyn, times, z0: Clip | torch.Tensor | None = None, control: Clip | None = None,
                seed: int | None = None, keyframes: bool | None = None) -> Clip:
    """`dyn.sample` as a Clip: codes [N, L, D] on the dynamics' device, `times` [N], and the identity of the
    generator the codes belong to (z0's stamp when z0 is a stamped Clip, else the dynamics' metadata).

    z0: a start code [L, D] / [1, L, D] or a Clip (its first code). control: a Clip whose motion drives the
    dynamics (motion transfer; only kinds whose `sample` takes `control`, i.e. the neural CDE); it cannot
    be combined with keyframes=True, which follows the fitted clip's own keyframes.
    """
    times = torch.as_tensor(times).detach().flatten().float().cpu()
    identity = {k: v for k, v in (getattr(dyn, "metadata", None) or {}).items() if k in IDENTITY_KEYS}
    start = None
    if z0 is not None:
        if isinstance(z0, Clip):
            identity = z0.identity or identity
        start = as_codes(z0, "z0")
        start = start[:1] if start.ndim == 3 else start
    extra = {}
    if control is not None:
        if not supports_control(dyn):
            raise ValueError(f"control (motion transfer) needs Neural CDE dynamics (kind 'cde'); these are "
                             f"{getattr(dyn, 'kind', type(dyn).__name__)!r}: fit with kind='cde' or drop control")
        if keyframes:
            raise ValueError("keyframes=True ('through keyframes') follows the fitted clip; with a control clip "
                             "leave keyframes unset ('auto') or use the initial-value mode")
        if not isinstance(control, Clip):
            raise TypeError(f"control must be a dynode_core.Clip (codes with their times), got {type(control).__name__}")
        extra = {"control": control.codes, "control_times": control.times}
    with torch.no_grad():
        codes = dyn.sample(times, z0=start, seed=seed, keyframes=keyframes, **extra)
    return Clip(codes.detach(), times, identity)
