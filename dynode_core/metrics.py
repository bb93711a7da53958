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


def motion_kept(recon: torch.Tensor, truth: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """How much of a clip's motion a reconstruction keeps: the correlation, over the pixels where `mask` > 0.5
    (e.g. the eyes and mouth, `builtin.face_regions`), of the two clips' deviations from their own mean frame.

    recon, truth [T, C, H, W]; mask [T or 1, 1, H, W] (None: every pixel). 1 = the same motion, 0 = none of it
    (a still reconstruction of a moving clip scores 0).
    """
    if recon.shape != truth.shape or recon.ndim != 4:
        raise ValueError(f"recon and truth must be clips of the same shape [T, C, H, W], got {list(recon.shape)} "
                         f"and {list(truth.shape)}")
    dr = recon.float() - recon.float().mean(0, keepdim=True)
    dt = truth.float() - truth.float().mean(0, keepdim=True)
    if mask is None:
        return correlation(dr, dt)
    m = (mask > 0.5).expand_as(dr)
    return correlation(dr[m], dt[m])
