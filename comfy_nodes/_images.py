"""ComfyUI IMAGE tensors ([B, H, W, C] float32 in 0..1) <-> DynODE frames ([B, C, H, W] in [-1, 1])."""

from __future__ import annotations

import torch

from . import _runtime


def to_frames(images: torch.Tensor) -> torch.Tensor:
    """IMAGE [B, H, W, C] in 0..1 -> frames [B, C, H, W] in [-1, 1] (C as given: 1, 3 or 4)."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        shape = list(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"expected an IMAGE batch [B, H, W, C], got {shape}")
    if images.shape[0] == 0:
        raise ValueError("the IMAGE batch is empty: no frames to work on")
    return images.float().permute(0, 3, 1, 2) * 2 - 1


def to_images(frames: torch.Tensor) -> torch.Tensor:
    """frames [B, 3, H, W] in [-1, 1] -> IMAGE [B, H, W, 3] float32 in 0..1 on ComfyUI's intermediate device."""
    images = ((frames.detach().float() + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1)
    return images.contiguous().to(_runtime.output_device())
