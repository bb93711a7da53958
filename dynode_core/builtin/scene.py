"""A talking cartoon face moving in a larger frame: ground truth for alignment, paste-back and `dynode video`.

The face of `talking_clip(times, seed)` is rendered and placed in a wider frame over a textured background
that does not move; the head drifts across the frame, turns (in-plane, on top of the renderer's own tilt) and
grows and shrinks, all as smooth functions of time, so any frame rate samples the same motion.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .renderer import render_faces, talking_clip

__all__ = ["place_image", "scene_clip", "scene_transforms", "smooth_background"]


def scene_transforms(times, size: tuple[int, int] = (144, 192), face: int = 128) -> torch.Tensor:
    """Where the rendered face square (side `face`) sits in the frame at `times`: [T, 3, 3], face pixel ->
    frame pixel (pixel centres at integers)."""
    t = torch.as_tensor(times, dtype=torch.float64).flatten()
    h, w = size
    tau = 2 * math.pi * t
    scale = (0.78 + 0.12 * torch.sin(tau * 0.21 + 0.5)) * min(h, w) / face
    angle = 0.08 * torch.sin(tau * 0.27 + 1.0)
    cx = w / 2 + 0.16 * w * torch.sin(tau * 0.19)
    cy = 0.56 * h + 0.05 * h * torch.sin(tau * 0.33 + 2.0)
    c, s = scale * torch.cos(angle), scale * torch.sin(angle)
    mid = (face - 1) / 2
    m = torch.zeros(len(t), 3, 3, dtype=torch.float64)
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1], m[:, 2, 2] = c, -s, s, c, 1
    m[:, 0, 2] = cx - (c * mid - s * mid)
    m[:, 1, 2] = cy - (s * mid + c * mid)
    return m.float()


def place_image(img: torch.Tensor, transform: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """Canvas [1, 3, H, W]: img [1, 3, S, S] at `transform` [3, 3] (image pixel -> canvas pixel, pixel centres at
    integers) over background [1, 3, H, W]; bilinear, the background wherever the image square does not reach."""
    h, w = background.shape[-2:]
    warped, u, v = _warp(img, transform, h, w)
    inside = _inside(u, v, img.shape[-1]).float()
    return warped * inside + background * (1 - inside)


def smooth_background(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """A smooth random colour field [1, 3, h, w] in [-0.8, 0.8]: a canvas for faces placed at known transforms."""
    g = torch.Generator().manual_seed(seed)
    return F.interpolate(torch.rand(1, 3, h // 40 + 2, w // 40 + 2, generator=g) * 1.6 - 0.8, size=(h, w),
                         mode="bilinear", align_corners=False)


def _warp(img: torch.Tensor, transform: torch.Tensor, h: int, w: int):
    """img [1, 3, S, S] sampled at every pixel of an h x w canvas -> ([1, 3, h, w], u [h, w], v [h, w]): the
    canvas pixels' coordinates in the image (float64)."""
    inv = torch.linalg.inv(transform.double())
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    u = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]
    v = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]
    s = img.shape[-1]
    grid = torch.stack([(u + 0.5) / s * 2 - 1, (v + 0.5) / s * 2 - 1], -1)[None].float()
    return F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=False), u, v


def _inside(u: torch.Tensor, v: torch.Tensor, s: int) -> torch.Tensor:
    return ((u > -0.5) & (u < s - 0.5) & (v > -0.5) & (v < s - 0.5)).double()


def _texture(h: int, w: int, colour: torch.Tensor, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed + 1000)
    noise = F.interpolate(torch.rand(1, 1, h // 12 + 2, w // 12 + 2, generator=g), size=(h, w), mode="bicubic",
                          align_corners=False)[0]
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    stripes = 0.5 + 0.5 * torch.sin((xs * 0.9 + ys * 0.4) / 5.0)
    return (colour[:, None, None] * (0.9 + 0.07 * noise + 0.04 * stripes)).clamp(0, 1) * 2 - 1


def scene_clip(times, seed: int = 0, size: tuple[int, int] = (144, 192), face: int = 128) -> torch.Tensor:
    """Frames [T, 3, H, W] in [-1, 1] of the scene at `times` (seconds)."""
    t = torch.as_tensor(times, dtype=torch.float32).flatten()
    h, w = size
    f = talking_clip(t, seed=seed)
    faces = render_faces(f, size=face)
    bg_colour = (faces[0, :, 2, 2] + 1) / 2  # the renderer's background at the top corner
    bg = _texture(h, w, bg_colour, seed)
    m = scene_transforms(t, size, face)
    out = []
    for k in range(len(t)):
        img, u, v = _warp(faces[k:k + 1], m[k], h, w)
        # the face square fades into the textured background outside the head and shoulders (soft ellipses, the
        # head's reaching 0 at the square's top edge: one reaching past it left a straight seam in the frame)
        def soft(cx, cy, rx, ry):
            r = torch.sqrt(((u - cx * face) / (rx * face)) ** 2 + ((v - cy * face) / (ry * face)) ** 2)
            return ((1.0 - r) / 0.15).clamp(0, 1)

        alpha = (torch.maximum(soft(0.5, 0.47, 0.5, 0.47), soft(0.5, 0.85, 0.46, 0.12)) * _inside(u, v, face)).float()
        out.append(img[0] * alpha + bg * (1 - alpha))
    return torch.stack(out).clamp(-1, 1)
