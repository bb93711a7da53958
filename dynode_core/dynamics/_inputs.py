"""Checks of a clip given to the dynamics: times [T] and codes [T, L, D]."""

from __future__ import annotations

import numbers

import torch

from ..times import _as_times


def check_clip(times, codes) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate and sort a clip: times [T] (float64, CPU), codes [T, L, D] (float32, codes' device)."""
    t = torch.as_tensor(times.detach().cpu() if isinstance(times, torch.Tensor) else times, dtype=torch.float64)
    z = codes.detach() if isinstance(codes, torch.Tensor) else torch.as_tensor(codes)
    if t.ndim != 1:
        raise ValueError(f"times must be a 1-D sequence [T], got shape {list(t.shape)}")
    if z.ndim == 2:
        z = z[:, None]  # W codes [T, D]
    if z.ndim != 3:
        raise ValueError(f"codes must have shape [T, L, D] (or [T, D] for W), got {list(z.shape)}")
    if not (z.is_floating_point() or z.dtype in (torch.int32, torch.int64)):
        raise TypeError(f"codes must be real numbers, got dtype {z.dtype}")
    if t.shape[0] != z.shape[0]:
        raise ValueError(f"times has {t.shape[0]} entries but codes has {z.shape[0]} frames; one time per code")
    if t.shape[0] < 2:
        raise ValueError(f"dynamics need at least 2 frames, got {t.shape[0]}")
    t = _as_times(t, "times")
    z = z.float()
    if not torch.isfinite(z).all():
        bad = (~torch.isfinite(z)).flatten(1).any(1).nonzero().flatten().tolist()
        raise ValueError(f"codes contain NaN or infinite values (frames {bad})")
    order = torch.argsort(t)
    t = t[order]
    dup = (t[1:] == t[:-1]).nonzero().flatten()
    if len(dup):
        raise ValueError(f"times must be distinct, but {float(t[dup[0]])} appears more than once")
    return t, z[order.to(z.device)]


def check_query(times) -> torch.Tensor:
    """Query times [N] (any order) -> float64 on the CPU."""
    t = torch.as_tensor(times.detach().cpu() if isinstance(times, torch.Tensor) else times, dtype=torch.float64)
    if t.ndim != 1:
        raise ValueError(f"times must be a 1-D sequence [N], got shape {list(t.shape)}")
    return _as_times(t, "times")


def check_seed(seed) -> None:
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0):
        raise ValueError(f"seed must be None or an integer >= 0, got {seed!r}")
