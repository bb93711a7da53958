"""Projection of a clip into a generator's W or W+ space by optimisation, a whole clip at a time.

The recipe is the one of NVIDIA's StyleGAN2 projector (Adam on the code, learning-rate ramp, code noise
early on), made fast for video by warm starts. Three *anchor* frames (first, middle, last) are inverted
from the average code in one batch; every other frame is solved in a few batched passes that bisect the
gaps between solved frames, each frame starting from the linear interpolation of its two solved
neighbours' codes. That start is usually close to the answer, so a warm frame needs a few small steps
instead of hundreds. For 16 frames the passes are {0, 7, 15}, {3, 11}, {1, 5, 9, 13}, then the other 7.

Losses: per-frame pixel MSE plus MSE on a pyramid of 2×-downsampled images ("multi-scale", which pulls the
coarse layout in first), and optionally a VGG16 feature distance when the user has the weights locally
(`perceptual="path/to/vgg16.safetensors"`, see `perceptual.py`: weights are read as tensors only, never as
TorchScript); nothing is ever downloaded.
"""

from __future__ import annotations

import copy
import math
import os
import warnings
from contextlib import contextmanager
from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ._memory import reuse_freed_memory
from ._threads import thread_scope
from .decoding import Cancelled, decode
from .metrics import psnr
from .perceptual import PerceptualLoss
from .video import resize_frames, to_rgb

__all__ = ["invert", "Inversion", "PerceptualLoss", "bisection_passes"]


class Inversion(NamedTuple):
    """`invert(..., return_psnr=True)` result: codes [T, L, D] and per-frame reconstruction PSNR [T] in dB."""
    codes: torch.Tensor
    psnr: torch.Tensor


# --- losses ------------------------------------------------------------------------------------------------

def _pyramid_mse(x: torch.Tensor, y: torch.Tensor, min_size: int = 8) -> torch.Tensor:
    """Per-frame MSE at full size and at every 2× downsampling down to `min_size`. [B, 3, H, W] -> [B]"""
    loss = (x - y).square().flatten(1).mean(1)
    while x.shape[-1] // 2 >= min_size:
        x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
        loss = loss + (x - y).square().flatten(1).mean(1)
    return loss


# --- schedule ----------------------------------------------------------------------------------------------

def bisection_passes(n: int) -> list[list[int]]:
    """Order in which frames are solved: the first, middle and last frames (the anchors), then the midpoints
    of every gap between solved frames, until all n are solved. Each inner list is one batched pass."""
    if n < 1:
        raise ValueError("need at least one frame")
    passes = [sorted({0, (n - 1) // 2, n - 1})]
    solved = set(passes[0])
    while len(solved) < n:
        s = sorted(solved)
        new = [(a + b) // 2 for a, b in zip(s, s[1:]) if b - a > 1]
        passes.append(new)
        solved.update(new)
    return passes


def _interpolated_start(codes: torch.Tensor, solved: list[int], i: int) -> torch.Tensor:
    """Initial code of frame i: linear interpolation of the nearest solved frames on either side."""
    left = max(j for j in solved if j < i)
    right = min(j for j in solved if j > i)
    return torch.lerp(codes[left], codes[right], (i - left) / (right - left))


# --- main --------------------------------------------------------------------------------------------------

@contextmanager
def _grad_ready(G: nn.Module):
    """Yield a generator usable with autograd (even if built under inference_mode) with frozen weights."""
    if any(t.is_inference() for t in (*G.parameters(), *G.buffers())):
        G = copy.deepcopy(G)  # inference tensors cannot be saved for backward; the copy holds normal ones
    flags = [p.requires_grad for p in G.parameters()]
    for p in G.parameters():
        p.requires_grad_(False)
    try:
        yield G
    finally:
        for p, f in zip(G.parameters(), flags):
            p.requires_grad_(f)


def _prepare_frames(G: nn.Module, frames) -> torch.Tensor:
    if not isinstance(frames, torch.Tensor):
        raise TypeError(f"frames must be a torch.Tensor [T, 3, H, W] in [-1, 1], got {type(frames).__name__}")
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[1] not in (1, 3, 4):
        raise ValueError(f"frames must have shape [T, 3, H, W] (grayscale [T, 1, H, W] and RGBA [T, 4, H, W] "
                         f"are accepted too), got {list(frames.shape)}")
    if frames.shape[0] == 0:
        raise ValueError("frames is empty: nothing to invert (expected [T, 3, H, W] with T >= 1)")
    frames = frames.detach().clone().float()
    if not torch.isfinite(frames).all():
        raise ValueError("frames contain NaN or infinite values")
    lo, hi = float(frames.min()), float(frames.max())
    if hi > 16 or lo < -16:  # generators overshoot [-1, 1] a little; this is another scale entirely
        raise ValueError(f"frames must be in [-1, 1], got values in [{lo:.3g}, {hi:.3g}] "
                         f"(uint8 pixels? use dc.frames_from_uint8)")
    frames = to_rgb(frames)
    if lo >= 0 and hi > 0.5:
        warnings.warn("frames are all >= 0: they look like [0, 1] images; DynODE expects [-1, 1] (x * 2 - 1)",
                      stacklevel=3)
    h, w = frames.shape[-2:]
    if (h, w) != (G.resolution, G.resolution):
        warnings.warn(f"frames are {h}x{w} but the generator makes {G.resolution}x{G.resolution}: "
                      f"center-cropping to a square and resizing", stacklevel=3)
        frames = resize_frames(frames, G.resolution)
    return frames


def _w_stats(G: nn.Module, n: int = 2000, seed: int = 0) -> tuple[torch.Tensor, float]:
    """Average code [w_dim] (G.w_avg unless it was never set) and the spread of W, sqrt(E|w - w_avg|^2)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        w = G.mapping(torch.randn(n, G.z_dim, generator=g).to(G.device)).float()
    avg = G.w_avg.float() if bool(G.w_avg.abs().sum() > 0) else w.mean(0)
    return avg, float((w - avg).square().sum(1).mean().sqrt())


def invert(G: nn.Module, frames: torch.Tensor, space: str = "w+", steps: int = 300, warm_steps: int | None = None,
           polish_steps: int | None = None,
           lr: float = 0.08, warm_lr: float | None = None, smoothness: float = 0.0, perceptual: str | os.PathLike | None = None,
           perceptual_weight: float = 1.0, init: torch.Tensor | None = None, warm_start: bool = True,
           batch_size: int = 16, seed: int = 0,
           progress: Callable[[int, int], None] | None = None, cancel: Callable[[], bool] | None = None,
           return_psnr: bool = False, threads: int | None = None) -> torch.Tensor | Inversion:
    """Find codes whose images reproduce `frames`. frames [T, 3, H, W] in [-1, 1] -> codes [T, L, D].

    L = 1 for `space="w"`, G.num_ws for `space="w+"`. Returns the codes (float32, CPU); with
    `return_psnr=True` an `Inversion(codes, psnr)` whose `psnr` [T] is each frame's reconstruction PSNR.

    Args:
        steps: Adam steps of the anchor frames (from the average code).
        warm_steps: steps of every warm-started pass (default steps // 8).
        polish_steps: steps of a last joint pass over all frames, each from its own solution, where the
            smoothness term acts (default: warm_steps when smoothness > 0, else 0 = no such pass).
            With `init` codes [T or 1, L, D] given, the bisection is skipped and one joint pass of
            `warm_steps` starts from them.
        lr / warm_lr: peak learning rates of the anchors and of the later passes (warm_lr defaults to
            lr / 8: Adam's first steps move every coordinate by about the learning rate, which would throw
            a warm start away from its good initial code).
        smoothness: weight of a temporal term in the joint pass, the mean squared difference of consecutive
            codes (summed over the clip); 0 turns it off.
        warm_start: False inverts every frame independently from the average code with `steps` steps (the
            classic projector, batched; the baseline of benchmarks/bench_inversion.py).
        perceptual: path of local VGG16 weights for a perceptual term (see `PerceptualLoss`).
        batch_size: most frames optimised at once (a longer pass is split).
        progress(done, total) after every step; cancel() returning True raises `Cancelled`.
        threads: CPU threads (default: one for images up to 128 px, else torch's setting).

    Frames of another size are center-cropped and resized (with a warning); grayscale [T, 1, H, W] and RGBA
    [T, 4, H, W] (composited over white) are accepted. Gradients are enabled locally, so this also works when
    called under `torch.no_grad()` or `torch.inference_mode()`.
    """
    if space not in ("w", "w+"):
        raise ValueError(f"space must be 'w' or 'w+', got {space!r}")
    for name, v in (("steps", steps), ("batch_size", batch_size)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    warm_steps = max(1, steps // 8) if warm_steps is None else warm_steps
    if not isinstance(warm_steps, int) or warm_steps < 1:
        raise ValueError(f"warm_steps must be a positive integer, got {warm_steps!r}")
    if polish_steps is None:
        polish_steps = warm_steps if smoothness > 0 else 0
    if not isinstance(polish_steps, int) or polish_steps < 0:
        raise ValueError(f"polish_steps must be an integer >= 0, got {polish_steps!r}")
    warm_lr = lr / 8 if warm_lr is None else warm_lr
    n_layers = 1 if space == "w" else G.num_ws

    n_frames = frames.shape[0] if isinstance(frames, torch.Tensor) and frames.ndim == 4 else 1
    with torch.inference_mode(False), torch.enable_grad(), _grad_ready(G) as G, \
            thread_scope(threads, G.resolution, min(batch_size, n_frames)), reuse_freed_memory():
        device = G.device
        target = _prepare_frames(G, frames).to(device)
        T = target.shape[0]
        ploss = PerceptualLoss(perceptual, device) if perceptual is not None else None
        target_feats = None
        w_avg, w_std = _w_stats(G, seed=seed)
        codes = torch.empty(T, n_layers, G.w_dim, device=device)

        if init is not None:
            init = init.detach().clone().float().to(device)
            if init.ndim == 2:
                init = init[:, None]
            if init.ndim != 3 or init.shape[0] not in (1, T) or init.shape[2] != G.w_dim:
                raise ValueError(f"init must have shape [T={T} or 1, L, {G.w_dim}], got {list(init.shape)}")
            if init.shape[1] not in (1, G.num_ws):
                raise ValueError(f"init has {init.shape[1]} layers; expected 1 or num_ws = {G.num_ws}")
            if n_layers == 1 and init.shape[1] != 1:
                init = init.mean(1, keepdim=True)
            codes[:] = init.expand(T, n_layers, -1)
            plan = [(list(range(T)), "refine", warm_steps)]
        elif not warm_start:
            plan = [(list(range(T)), "anchor", steps)]
        else:
            plan = [(p, "warm" if i else "anchor", warm_steps if i else steps)
                    for i, p in enumerate(bisection_passes(T))]
            if polish_steps > 0 and T > 1:
                plan.append((list(range(T)), "refine", polish_steps))
        chunks = [(p[i:i + batch_size], kind, n) for p, kind, n in plan for i in range(0, len(p), batch_size)]
        total = sum(n for _, _, n in chunks)
        done = 0
        solved: list[int] = []
        gen = torch.Generator(device="cpu").manual_seed(seed)

        for idx, kind, n_steps in chunks:
            warm = kind != "anchor"
            if kind == "anchor":
                start = w_avg.view(1, 1, -1).expand(len(idx), n_layers, -1).clone()
            elif kind == "refine":
                start = codes[idx].clone()
            else:
                start = torch.stack([_interpolated_start(codes, solved, i) for i in idx])
            peak = warm_lr if warm else lr
            noise_scale = 0.0 if warm else 0.05 * w_std
            w = start.clone().requires_grad_(True)
            opt = torch.optim.Adam([w], lr=peak, betas=(0.9, 0.999))
            tgt = target[idx]
            if ploss is not None:
                with torch.no_grad():
                    target_feats = ploss.features_of(tgt)
            for step in range(n_steps):
                if cancel is not None and cancel():
                    raise Cancelled(f"inversion cancelled at step {done} of {total}")
                t = step / max(1, n_steps - 1)
                ramp = min(1.0, (1 - t) / 0.25) if n_steps > 4 else 1.0
                ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
                ramp *= min(1.0, t / 0.05) if (not warm and n_steps > 20) else 1.0
                for g in opt.param_groups:
                    g["lr"] = peak * max(ramp, 0.02)
                ws = w
                if noise_scale > 0:
                    strength = noise_scale * max(0.0, 1 - t / 0.75) ** 2
                    ws = w + strength * torch.randn(w.shape, generator=gen).to(device)
                img = G.synthesis(ws, noise_mode="const")
                loss = _pyramid_mse(img, tgt)
                if ploss is not None:
                    loss = loss + perceptual_weight * ploss.distance(ploss.features_of(img), target_feats)
                loss = loss.sum()
                if kind == "refine" and smoothness > 0 and T > 1:
                    full = codes.detach().index_put((torch.tensor(idx, device=device),), w)
                    loss = loss + smoothness * (full[1:] - full[:-1]).square().mean((1, 2)).sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                done += 1
                if progress is not None:
                    progress(done, total)
            codes[idx] = w.detach()
            solved = sorted(set(solved) | set(idx))

        codes = codes.cpu()
        if not return_psnr:
            return codes
        recon = decode(G, codes, batch_size=batch_size)
        return Inversion(codes, psnr(recon, target.cpu()))
