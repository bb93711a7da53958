"""Entry points: `fit_dynamics`, `load_dynamics`, `dynamics_options`."""

from __future__ import annotations

import os
from typing import Any

import torch

from ..clip import Clip
from ._inputs import check_clip
from .files import read_dynamics
from .kinds import KINDS, kind_class
from .model import Dynamics, _model_context
from .options import check_options, defaults

__all__ = ["dynamics_options", "fit_dynamics", "load_dynamics"]


def dynamics_options(kind: str = "ode") -> dict[str, Any]:
    """Every option `fit_dynamics(..., kind=kind)` accepts, with its default ("auto" = chosen per clip)."""
    return defaults(kind_class(kind))


def fit_dynamics(times, codes=None, kind: str = "ode", **options) -> Dynamics:
    """Fit a continuous-time model to one clip. times [T] (any order, distinct), codes [T, L, D] -> `Dynamics`.

    `fit_dynamics(clip)` with a `dynode_core.Clip` takes its times and codes, and the clip's generator identity
    becomes the model's `metadata` (so what it samples is stamped as that generator's codes).

    kind: "ode" (neural ODE), "cde" (neural controlled DE driven by the whole clip) or "sde"
    (neural SDE, torchsde). Options common to all kinds: iterations, lr, rank, keyframes, seed, plus
    `device` (default: the device of `codes`), `progress(step, total)` and `cancel() -> bool` (True stops the
    fit with `dynode_core.Cancelled`). See docs/dynamics.md for each kind's own options.
    Times are sorted together with the codes; duplicate times, NaN/inf, fewer than 2 frames or mismatched
    lengths raise ValueError. numpy arrays and lists are accepted.
    """
    identity = {}
    if isinstance(times, Clip):
        if isinstance(codes, str):  # fit_dynamics(clip, "sde")
            codes, kind = None, codes
        if codes is not None:
            raise TypeError("fit_dynamics(clip) takes the times and codes from the clip; pass either a Clip or "
                            "times and codes")
        times, codes, identity = times.times, times.codes, times.identity
    elif isinstance(codes, Clip):
        codes, identity = codes.codes, codes.identity
    elif codes is None:
        raise TypeError("fit_dynamics needs times [T] and codes [T, L, D], or a dynode_core.Clip")
    cls = kind_class(kind)
    config, hooks = check_options(cls, options)
    t, z = check_clip(times, codes)
    device = torch.device(hooks["device"]) if hooks["device"] is not None else z.device
    with torch.inference_mode(False), torch.enable_grad(), _model_context(device):
        model = cls(t, z.to(device).clone(), config)
        model = model.fit(hooks["progress"], hooks["cancel"])
    model.metadata = {**model.metadata, **identity}
    return model


def load_dynamics(path: str | os.PathLike, device: str | torch.device | None = None) -> Dynamics:
    """Read a model written by `Dynamics.save` (onto `device`, default the CPU)."""
    kind, config, tensors, metadata = read_dynamics(path, KINDS)
    try:  # a damaged or forged file must not surface as KeyError / RuntimeError
        codes = tensors.pop("key_codes").to(device or "cpu")
        with _model_context(codes.device):
            model = KINDS[kind](tensors.pop("key_times"), codes, config)
        state = {k[len("state."):]: v for k, v in tensors.items() if k.startswith("state.")}
        state["key_codes"] = codes
        model.load_state_dict(state, strict=True)
    except (KeyError, TypeError, AttributeError, IndexError, RuntimeError) as e:
        raise ValueError(f"{str(path)!r} is a damaged DynODE dynamics file ({type(e).__name__}: {str(e)[:200]})") from None
    model.metadata = metadata
    return model.eval()
