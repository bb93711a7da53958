"""Pivotal tuning (PTI, Roich et al. 2021; as STIT applies it to video): fine-tune a copy of a generator's
synthesis weights so a clip's inverted codes (the pivots) reproduce its frames exactly.

The loss is the pixel MSE (+ a VGG16 perceptual term when local weights are given) on the clip's frames, plus,
every `locality_interval` steps, a locality term that keeps the tuning local: codes that are NOT the clip's -
interpolations between and small steps around its codes, and codes of the mapping network - must decode
as the original generator decoded them. Interpolated, extrapolated and edited codes therefore still draw
clean images. The mapping network, `w_avg` and the noise buffers are not changed.
"""

from __future__ import annotations

import math
import os
from typing import Callable

import torch

from ._frames import checked_frames
from ._memory import batch_size_for, reuse_freed_memory
from ._threads import thread_scope
from .clip import as_codes
from .codes import check_codes
from .errors import Cancelled
from .perceptual import PerceptualLoss
from .stylegan2 import Generator
from .video import resize_frames

__all__ = ["tune_generator"]


def _fresh_copy(G: Generator) -> Generator:
    """A copy with ordinary (non-inference) tensors, so it can be trained even if G was built under
    inference_mode."""
    G2 = Generator(**G.config).to(G.device)
    with torch.no_grad():
        G2.load_state_dict({k: v.clone() for k, v in G.state_dict().items()})
    return G2


def _locality_codes(codes: torch.Tensor, G: Generator, n: int, gen: torch.Generator, spread: float) -> torch.Tensor:
    """n codes near the clip's: half interpolations/extrapolations of random pairs plus noise, half from the
    mapping network. codes [T, L, D] -> [n, num_ws, D]"""
    T = codes.shape[0]
    k = n - n // 2
    i, j = torch.randint(T, (k,), generator=gen), torch.randint(T, (k,), generator=gen)
    a = (torch.rand(k, 1, 1, generator=gen) * 1.6 - 0.3).to(codes.device)  # -0.3 .. 1.3: a little beyond
    near = torch.lerp(codes[i], codes[j], a) + spread * torch.randn(k, 1, codes.shape[2], generator=gen).to(codes.device)
    z = torch.randn(n // 2, G.z_dim, generator=gen).to(codes.device)
    mapped = G.mapping(z)[:, None].expand(-1, codes.shape[1], -1)
    return torch.cat([near.expand(-1, G.num_ws, -1), mapped.expand(-1, G.num_ws, -1)])


def _mse(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-frame pixel MSE. [B, 3, H, W] -> [B]"""
    return (x - y).square().flatten(1).mean(1)


def tune_generator(G: Generator, frames: torch.Tensor, codes, steps: int = 300, lr: float = 2e-3,
                   locality: float = 0.1, locality_batch: int = 4, locality_interval: int = 4,
                   perceptual: str | os.PathLike | None = None,
                   batch_size: int = 8, seed: int = 0, progress: Callable[[int, int], None] | None = None,
                   cancel: Callable[[], bool] | None = None, threads: int | None = None,
                   memory: int | str | None = None) -> Generator:
    """Pivotal tuning: a NEW generator whose synthesis draws `frames` from `codes`; G is not modified.

    frames [T, 3, H, W] in [-1, 1] (resized to G's resolution); codes [T, L, D] or a Clip (e.g. from
    `invert`), L = 1 or G.num_ws. Adam (`lr`, cosine decay) for `steps` steps over batches of `batch_size`
    frames, pixel MSE; `locality` weighs the term that keeps other codes decoding as in G (0 = off), on
    `locality_batch` codes every `locality_interval` steps. `perceptual`: path of local VGG16 weights (see
    `perceptual.py`).
    progress(done, total) after every step; cancel() returning True raises `Cancelled`. `threads`: CPU threads
    (default: one up to 128 px, else torch's setting); `memory`: budget (bytes or "8GB"; default 70 % of the free
    RAM / VRAM) that shrinks `batch_size` and `locality_batch` when they would not fit.

    The result is in eval mode without gradients, on G's device; save it with `save_generator`. Its identity
    fingerprint differs from G's, so codes stamped for G are told apart from codes for it.
    """
    for name, v, low in (("steps", steps, 1), ("batch_size", batch_size, 1), ("locality_batch", locality_batch, 0),
                         ("locality_interval", locality_interval, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")
    for name, v in (("lr", lr), ("locality", locality)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
    codes = check_codes(as_codes(codes), G)
    fits = batch_size_for(G, "tune", memory, limit=batch_size + locality_batch)
    if fits < batch_size + locality_batch:
        batch_size = max(1, fits * batch_size // (batch_size + locality_batch))
        locality_batch = max(0, min(locality_batch, fits - batch_size))
    with torch.inference_mode(False), torch.enable_grad(), \
            thread_scope(threads, G.resolution, batch_size + locality_batch), reuse_freed_memory():
        target = checked_frames(frames)
        if target.shape[0] != codes.shape[0]:
            raise ValueError(f"frames and codes must be one per frame: got {target.shape[0]} frames and "
                             f"{codes.shape[0]} codes")
        if tuple(target.shape[-2:]) != (G.resolution, G.resolution):
            target = resize_frames(target, G.resolution)
        device = G.device
        target, pivots = target.to(device), codes.detach().float().to(device).clone()
        frozen, tuned = _fresh_copy(G).eval().requires_grad_(False), _fresh_copy(G).train()
        params = [p for n, p in tuned.named_parameters() if not n.startswith("style.")]
        for n, p in tuned.named_parameters():
            p.requires_grad_(not n.startswith("style."))
        opt = torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999))
        ploss = PerceptualLoss(perceptual, device) if perceptual is not None else None
        gen = torch.Generator().manual_seed(seed)
        spread = float((pivots - pivots.mean(0)).norm(dim=-1).mean()) * 0.1 + 1e-3
        T = target.shape[0]
        for step in range(steps):
            if cancel is not None and cancel():
                raise Cancelled(f"tuning cancelled at step {step} of {steps}")
            for g in opt.param_groups:  # a short warm-up, then cosine decay
                g["lr"] = lr * min(1.0, (step + 1) / 20) * (0.5 + 0.5 * math.cos(math.pi * step / steps))
            idx = torch.randperm(T, generator=gen)[:batch_size].to(device)
            img = tuned.synthesis(pivots[idx], noise_mode="const")
            loss = _mse(img, target[idx]).mean()
            if ploss is not None:
                loss = loss + ploss(img, target[idx]).mean()
            if locality > 0 and locality_batch > 0 and step % locality_interval == 0:
                with torch.no_grad():
                    w = _locality_codes(pivots, frozen, locality_batch, gen, spread)
                    before = frozen.synthesis(w, noise_mode="const")
                loss = loss + locality * _mse(tuned.synthesis(w, noise_mode="const"), before).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if progress is not None:
                progress(step + 1, steps)
    return tuned.eval().requires_grad_(False)
