"""Time grids on which a fitted trajectory is sampled.

Times are seconds (or any unit the codes were fitted in). Grids are computed in float64 and returned as a
float32 tensor by default, the dtype `fit_dynamics` / `dyn.sample` use; pass `dtype=torch.float64` to keep
full precision. Every grid is sorted and free of duplicates.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from ._limits import check

__all__ = ["sample_times", "keyframe_mask", "parse_times"]


def _as_times(values, name: str) -> torch.Tensor:
    t = torch.as_tensor(values, dtype=torch.float64).flatten().cpu()
    if t.numel() == 0:
        raise ValueError(f"{name} is empty; expected at least one time")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or infinite values: {t.tolist()}")
    return t


def sample_times(keyframe_times: Sequence[float] | torch.Tensor | None = None, *, factor: int = 1,
                 extrapolate: float = 0.0, step: float | None = None, times: Sequence[float] | torch.Tensor | None = None,
                 dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A sorted time grid [N].

    Three ways to ask (combinable):
      - `factor=k`: every interval between consecutive keyframes is split into k equal parts (×k frame rate;
        irregular keyframe spacing is kept), keyframes included. k = 1 returns the keyframes themselves.
      - `extrapolate=s`: add times after the last keyframe up to `last + s`, spaced by `step` (default: the
        mean keyframe spacing divided by `factor`); the span is split evenly so `last + s` itself is included.
      - `times=[...]`: explicit times, added to the grid as given.

    Examples:
        sample_times([0, 1, 2], factor=4)              # 0, .25, .5, ..., 2       (9 times)
        sample_times([0, 1, 2], factor=2, extrapolate=1) # 0, .5, ..., 2, 2.5, 3
        sample_times(times=[0.1, 0.7, 0.3])            # 0.1, 0.3, 0.7
    """
    if not isinstance(factor, int) or isinstance(factor, bool) or factor < 1:
        raise ValueError(f"factor must be an integer >= 1, got {factor!r}")
    if not math.isfinite(extrapolate) or extrapolate < 0:
        raise ValueError(f"extrapolate must be a finite span >= 0 (seconds past the last keyframe), got {extrapolate!r}")
    if keyframe_times is None and times is None:
        raise ValueError("give keyframe_times (for factor/extrapolate) or an explicit list with times=")
    parts = []
    if times is not None:
        check("FRAMES", torch.as_tensor(times).numel(), "the number of explicit times")
    if keyframe_times is not None:
        key = torch.unique(_as_times(keyframe_times, "keyframe_times"))  # sorted
        check("FRAMES", factor * (key.numel() - 1) + 1, f"the grid size (factor {factor} x {key.numel() - 1} gaps)")
        if factor > 1 and key.numel() > 1:
            frac = torch.arange(factor, dtype=torch.float64) / factor  # [k]
            start, gap = key[:-1, None], (key[1:] - key[:-1])[:, None]
            parts.append((start + frac * gap).flatten())
        parts.append(key)
        if extrapolate > 0:
            if step is None:
                if key.numel() < 2:
                    raise ValueError("extrapolation with a single keyframe needs an explicit step=")
                step = float((key[-1] - key[0]) / (key.numel() - 1)) / factor
            if not (step > 0 and math.isfinite(step)):
                raise ValueError(f"step must be a positive number, got {step!r}")
            check("FRAMES", extrapolate / step, f"the extrapolated times ({extrapolate:g} s at a step of {step:g} s)")
            n = max(1, math.ceil(extrapolate / step - 1e-9))
            parts.append(key[-1] + torch.arange(1, n + 1, dtype=torch.float64) * (extrapolate / n))
    if times is not None:
        parts.append(_as_times(times, "times"))
    grid = torch.unique(torch.cat(parts))
    # Merge values that differ only by float64 rounding (k·gap/k vs the keyframe itself).
    keep = torch.ones_like(grid, dtype=torch.bool)
    keep[1:] = (grid[1:] - grid[:-1]) > 1e-9 * max(1.0, float(grid.abs().max()))
    return grid[keep].to(dtype)


def keyframe_mask(times: torch.Tensor, keyframe_times: Sequence[float] | torch.Tensor, atol: float = 1e-5) -> torch.Tensor:
    """Bool [N]: which of `times` [N] coincide (within `atol`) with one of the keyframe times."""
    t = torch.as_tensor(times, dtype=torch.float64).flatten()
    key = _as_times(keyframe_times, "keyframe_times")
    return ((t[:, None] - key[None, :]).abs() <= atol).any(dim=1)


def parse_times(text: str | None) -> list[float] | None:
    """Times written as text (the CLI's --times, the Sample Times node's extra_times): numbers separated by
    commas, semicolons or spaces, e.g. '0.1, 2.5' -> [0.1, 2.5]; '' or None -> None."""
    if text is None:
        return None
    parts = str(text).replace(";", ",").replace(" ", ",").split(",")
    try:
        values = [float(p) for p in parts if p.strip()]
    except ValueError:
        raise ValueError(f"times must be comma-separated numbers (seconds), e.g. '0.1, 2.5'; got {text[:80]!r}") from None
    if not values:
        return None
    bad = [v for v in values if not math.isfinite(v)]
    if bad:
        raise ValueError(f"times must be finite numbers, got {bad} in {text!r}")
    return values
