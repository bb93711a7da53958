"""Image and video metrics on [-1, 1] images."""

from __future__ import annotations

import torch


def psnr(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-image PSNR in dB of images in [-1, 1] (peak-to-peak 2, i.e. the usual PSNR of [0, 1] images).

    a, b [B, C, H, W]; mask [B, 1, H, W] weights the pixels (e.g. a face region). -> [B]
    """
    err = ((a.float() - b.float()) / 2).square()
    if mask is None:
        mse = err.flatten(1).mean(1)
    else:
        m = mask.float().expand_as(err)
        mse = (err * m).flatten(1).sum(1) / m.flatten(1).sum(1).clamp_min(1e-8)
    return 10 * torch.log10(1 / mse.clamp_min(1e-12))


def correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson correlation of two tensors' entries."""
    a, b = a.flatten().double(), b.flatten().double()
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()).clamp_min(1e-12))
