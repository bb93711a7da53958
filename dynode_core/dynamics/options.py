"""Fit options: the ones every kind accepts, their checks, and the merge with a kind's own options.

Each kind declares its own options (class attribute `OPTIONS`, with defaults) and checks their values
(`_check_kind_options`); this module knows only the common ones and the rules for plain numbers.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from .._limits import check_dynamics_config
from ._bridge import BETWEEN

COMMON_OPTIONS: dict[str, Any] = {
    "iterations": 300,   # optimiser steps of the final fit
    "lr": 1e-2,          # Adam learning rate
    "rank": 16,          # largest number of basis directions (at most T - 1 are used)
    "keyframes": True,   # sample() passes through the observed codes (False: pure initial-value model)
    "tension": "auto",   # spline tension between keyframes (0 = natural cubic, large = near linear)
    "pace": True,        # keyframe mode: cross each gap at a speed eased from the neighbouring gaps'
    "extrapolation": "auto",  # keyframe mode past the ends: "auto" damped continuation, "flow" learned flow
    "between": "auto",   # keyframe mode between keyframes: "spline", "flow" (bridges of the learned
                         # dynamics), "auto" (the flow where it wins cross-validation)
    "seed": 0,           # initialisation seed: the same seed gives the same model
}
HOOKS = ("progress", "cancel", "device")
ALIASES = {"iters": "iterations"}
POSITIVE = ("lr", "step")   # float options that must be > 0 (the others >= 0)


def defaults(cls) -> dict[str, Any]:
    """Every option of a kind's class with its default: the common ones, overridden / extended by cls.OPTIONS."""
    return {**COMMON_OPTIONS, **cls.OPTIONS}


def check_options(cls, options: dict) -> tuple[dict, dict]:
    """Options given to `fit_dynamics` -> (config with every option filled in, hooks {progress, cancel, device})."""
    base = defaults(cls)
    given = {}
    for k, v in options.items():
        k = ALIASES.get(k, k)
        if k in given:
            raise TypeError(f"option {k!r} given twice (also via its alias)")
        given[k] = v
    unknown = sorted(set(given) - set(base) - set(HOOKS))
    if unknown:
        raise TypeError(f"unknown option(s) {unknown} for kind={cls.kind!r}; valid options: "
                        f"{sorted(set(base) | set(HOOKS))}")
    hooks = {k: given.pop(k, None) for k in HOOKS}
    for name in ("progress", "cancel"):
        if hooks[name] is not None and not callable(hooks[name]):
            raise TypeError(f"{name} must be callable, got {type(hooks[name]).__name__}")
    config = {**base, **given}
    for k, v in config.items():
        config[k] = _check_plain(k, v, base[k])
    t = config["tension"]
    if t != "auto" and (isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t < 0):
        raise ValueError(f"option tension must be 'auto' or a number >= 0, got {t!r}")
    if config["extrapolation"] not in ("auto", "flow"):
        raise ValueError(f"option extrapolation must be 'auto' (a damped continuation chosen per clip) or "
                         f"'flow' (the learned dynamics from the end keyframes), got {config['extrapolation']!r}")
    if config["between"] not in BETWEEN:
        raise ValueError(f"option between must be 'auto' (chosen per clip by cross-validation), 'spline' (the "
                         f"keyframe spline) or 'flow' (the learned dynamics bridged through the keyframes), "
                         f"got {config['between']!r}")
    cls._check_kind_options(config)
    check_dynamics_config(config, "fit_dynamics")
    return config, hooks


def _check_plain(k: str, v, default):
    """Check a value against its default's type (strings: "auto"-able or named choices, checked by the kind)."""
    if isinstance(default, str):
        return v
    if isinstance(default, bool):
        if not isinstance(v, bool):
            raise TypeError(f"option {k} must be True or False, got {v!r}")
        return v
    if isinstance(default, int):
        low = 0 if k == "seed" else 1
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < low:
            raise ValueError(f"option {k} must be an integer >= {low}, got {v!r}")
        return int(v)
    if isinstance(default, float):
        positive = k in POSITIVE
        if (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0
                or (positive and v == 0)):
            raise ValueError(f"option {k} must be a {'positive' if positive else 'non-negative'} number, "
                             f"got {v!r}")
        return float(v)
    return v
