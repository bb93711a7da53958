"""Validation shared by everything that takes video frames as input (inversion, encoders, tuning)."""

from __future__ import annotations

import warnings

import torch

from .video import resize_frames, to_rgb


def checked_frames(frames, size: int | None = None, what: str = "frames", stacklevel: int = 3) -> torch.Tensor:
    """frames [T, C, H, W] (or one [C, H, W]) in [-1, 1], C = 1, 3 or 4 -> float32 RGB [T, 3, size, size].

    A detached copy; RGBA is composited over white, grey repeated. Other sizes are center-cropped and resized
    (with a warning). Raises ValueError / TypeError naming what was wrong.
    """
    if not isinstance(frames, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor [T, 3, H, W] in [-1, 1], got {type(frames).__name__}")
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[1] not in (1, 3, 4):
        raise ValueError(f"{what} must have shape [T, 3, H, W] (grayscale [T, 1, H, W] and RGBA [T, 4, H, W] "
                         f"are accepted too), got {list(frames.shape)}")
    if frames.shape[0] == 0:
        raise ValueError(f"{what} is empty: expected [T, 3, H, W] with T >= 1")
    frames = frames.detach().clone().float()
    if not torch.isfinite(frames).all():
        raise ValueError(f"{what} contain NaN or infinite values")
    lo, hi = float(frames.min()), float(frames.max())
    if hi > 16 or lo < -16:  # generators overshoot [-1, 1] a little; this is another scale entirely
        raise ValueError(f"{what} must be in [-1, 1], got values in [{lo:.3g}, {hi:.3g}] "
                         f"(uint8 pixels? use dc.frames_from_uint8)")
    frames = to_rgb(frames)
    if lo >= 0 and hi > 0.5:
        warnings.warn(f"{what} are all >= 0: they look like [0, 1] images; DynODE expects [-1, 1] (x * 2 - 1)",
                      stacklevel=stacklevel)
    h, w = frames.shape[-2:]
    if size is not None and (h, w) != (size, size):
        warnings.warn(f"{what} are {h}x{w} but {size}x{size} is needed: center-cropping to a square and resizing",
                      stacklevel=stacklevel)
        frames = resize_frames(frames, size)
    return frames
