"""Inversion of a clip into a generator's W or W+ space: an image encoder's codes refined by a few steps of
optimisation, or optimisation alone.

With an encoder (the default for the built-in generator, or any pSp / e4e / ReStyle encoder passed in), every
frame starts from the encoder's W+ code and all frames are refined together by a short run of Adam on the
pixels. Without one, the recipe is NVIDIA's StyleGAN2 projector (Adam on the code, learning-rate ramp, code
noise early on), made fast for video by warm starts: three *anchor* frames (first, middle, last) are inverted
from the average code in one batch; every other frame is solved in a few batched passes that bisect the gaps
between solved frames, each frame starting from the linear interpolation of its two solved neighbours'
codes. For 16 frames the passes are {0, 7, 15}, {3, 11}, {1, 5, 9, 13}, then the other 7.

Losses: per-frame pixel MSE plus MSE on a pyramid of 2x-downsampled images ("multi-scale", which pulls the
coarse layout in first), and optionally a VGG16 feature distance when the user has the weights locally
(`perceptual="path/to/vgg16.safetensors"`, see `perceptual.py`: weights are read as tensors only, never as
TorchScript); nothing is ever downloaded.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ._frames import checked_frames
from ._memory import batch_size_for, parse_memory, reuse_freed_memory
from ._threads import thread_scope
from .decoding import Cancelled, decode
from .metrics import psnr
from .perceptual import PerceptualLoss
from .video import resize_frames

__all__ = ["invert", "InversionOptions", "PerceptualLoss", "bisection_passes"]


class Inversion(NamedTuple):
    """The result type of older versions (`return_psnr=True`); `invert` now returns a `Clip` whose
    metadata["psnr"] holds the per-frame PSNR."""
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


# --- options -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class InversionOptions:
    """Everything `invert` can be told, with its defaults. Pass one as `options=`, or any field as a keyword.

    Attributes:
        space: "w+" (one code per generator layer, L = num_ws) or "w" (one code per frame, L = 1).
        refine_steps / refine_lr: Adam steps and peak learning rate of the joint refinement of every frame
            after an encoder start (0 = the encoder's codes as they are).
        encoder_iterations: feedback passes of a ReStyle encoder (None = its default, 5).
        steps: optimisation only: Adam steps of the anchor frames (from the average code).
        warm_steps: steps of every warm-started pass (default steps // 8); with `init` codes given, the
            bisection is skipped and one joint pass of `warm_steps` starts from them.
        polish_steps: steps of a last joint pass over all frames, each from its own solution, where the
            smoothness term acts (default: warm_steps when smoothness > 0, else 0 = no such pass).
        lr / warm_lr: peak learning rates of the anchors and of the later passes (warm_lr defaults to lr / 8:
            Adam's first steps move every coordinate by about the learning rate, which would throw a warm start
            away from its good initial code).
        smoothness: weight of a temporal term in the joint pass, the mean squared difference of consecutive
            codes (summed over the clip); 0 turns it off.
        warm_start: False inverts every frame independently from the average code with `steps` steps (the
            classic projector, batched).
        perceptual / perceptual_weight: path of local VGG16 weights for a perceptual term (`PerceptualLoss`).
        batch_size: most frames optimised (or encoded) at once; a longer pass is split.
        memory: budget for the optimisation's activations (bytes or "8GB"; default 70 % of the free RAM or
            VRAM): batches hold fewer than batch_size frames when that many would not fit.
        seed: seed of the code noise of the anchor passes.
        threads: CPU threads (default: one for images up to 128 px, else torch's setting).
    """
    space: str = "w+"
    refine_steps: int = 20
    refine_lr: float = 0.005
    encoder_iterations: int | None = None
    steps: int = 300
    warm_steps: int | None = None
    polish_steps: int | None = None
    lr: float = 0.08
    warm_lr: float | None = None
    smoothness: float = 0.0
    warm_start: bool = True
    perceptual: str | os.PathLike | None = None
    perceptual_weight: float = 1.0
    batch_size: int = 16
    seed: int = 0
    threads: int | None = None
    memory: int | str | None = None

    def __post_init__(self):
        parse_memory(self.memory)
        if self.space not in ("w", "w+"):
            raise ValueError(f"space must be 'w' or 'w+', got {self.space!r}")
        for name in ("steps", "batch_size"):
            _check_int(name, getattr(self, name), 1)
        for name in ("refine_steps",):
            _check_int(name, getattr(self, name), 0)
        for name in ("warm_steps", "encoder_iterations"):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name), 1)
        if self.polish_steps is not None:
            _check_int("polish_steps", self.polish_steps, 0)
        for name in ("lr", "refine_lr", "warm_lr", "smoothness", "perceptual_weight"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
                                  or v < 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")

    def resolved(self) -> "InversionOptions":
        """These options with the derived defaults (warm_steps, polish_steps, warm_lr) filled in."""
        warm = max(1, self.steps // 8) if self.warm_steps is None else self.warm_steps
        polish = (warm if self.smoothness > 0 else 0) if self.polish_steps is None else self.polish_steps
        return dataclasses.replace(self, warm_steps=warm, polish_steps=polish,
                                   warm_lr=self.lr / 8 if self.warm_lr is None else self.warm_lr)


def _check_int(name: str, v, low: int) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")


def _options(options: InversionOptions | None, overrides: dict) -> InversionOptions:
    fields = {f.name for f in dataclasses.fields(InversionOptions)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise TypeError(f"invert() got unknown option(s) {unknown}; options are {sorted(fields)}")
    if options is not None and not isinstance(options, InversionOptions):
        raise TypeError(f"options must be an InversionOptions, got {type(options).__name__}")
    return dataclasses.replace(options or InversionOptions(), **overrides).resolved()


# --- steps -------------------------------------------------------------------------------------------------

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


def _w_stats(G: nn.Module, n: int = 2000, seed: int = 0) -> tuple[torch.Tensor, float]:
    """Average code [w_dim] (G.w_avg unless it was never set) and the spread of W, sqrt(E|w - w_avg|^2)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        w = G.mapping(torch.randn(n, G.z_dim, generator=g).to(G.device)).float()
    avg = G.w_avg.float() if bool(G.w_avg.abs().sum() > 0) else w.mean(0)
    return avg, float((w - avg).square().sum(1).mean().sqrt())


def resolve_encoder(G: nn.Module, encoder):
    """The encoder `invert` uses for G: "auto" = the built-in encoder for generators with the built-in
    generator's architecture (the built-in one and generators tuned from it), else None; a name or path is
    loaded; an encoder object is checked against G (num_ws, w_dim)."""
    from .encoders import ImageEncoder, load_encoder

    if encoder is None:
        return None
    if isinstance(encoder, str) and encoder == "auto":
        return load_encoder("builtin", device=G.device) if _is_builtin_architecture(G) else None
    if isinstance(encoder, (str, os.PathLike)):
        if str(encoder).strip().lower() == "none":
            return None
        encoder = load_encoder(encoder, device=G.device)
    if not isinstance(encoder, ImageEncoder):
        raise TypeError(f"encoder must be 'auto', None, a name / path for dc.load_encoder, or an encoder from "
                        f"it; got {type(encoder).__name__}")
    encoder.check_generator(G)
    return encoder


_BUILTIN_CONFIG: dict | None = None


def _is_builtin_architecture(G: nn.Module) -> bool:
    global _BUILTIN_CONFIG
    if _BUILTIN_CONFIG is None:
        from safetensors import safe_open

        from .checkpoints import BUILTIN_GENERATOR

        with safe_open(str(BUILTIN_GENERATOR), "pt") as f:
            _BUILTIN_CONFIG = json.loads(f.metadata()["config"])
    return getattr(G, "config", None) == _BUILTIN_CONFIG


def _validated_init(init: torch.Tensor, G: nn.Module, T: int, n_layers: int) -> torch.Tensor:
    """init codes [T or 1, L, D] (or [T, D]) -> [T, n_layers, D] on G's device."""
    init = init.detach().clone().float().to(G.device)
    if init.ndim == 2:
        init = init[:, None]
    if init.ndim != 3 or init.shape[0] not in (1, T) or init.shape[2] != G.w_dim:
        raise ValueError(f"init must have shape [T={T} or 1, L, {G.w_dim}], got {list(init.shape)}")
    if init.shape[1] not in (1, G.num_ws):
        raise ValueError(f"init has {init.shape[1]} layers; expected 1 or num_ws = {G.num_ws}")
    if n_layers == 1 and init.shape[1] != 1:
        init = init.mean(1, keepdim=True)
    return init.expand(T, n_layers, -1).clone()


def _generator_sized(frames: torch.Tensor, G: nn.Module) -> torch.Tensor:
    h, w = frames.shape[-2:]
    if (h, w) == (G.resolution, G.resolution):
        return frames
    warnings.warn(f"frames are {h}x{w} but the generator makes {G.resolution}x{G.resolution}: center-cropping to "
                  f"a square and resizing", stacklevel=4)
    return resize_frames(frames, G.resolution)


class _Pass(NamedTuple):
    frames: list[int]
    kind: str          # "anchor" (from the average code), "warm" (from solved neighbours), "refine" (from codes)
    steps: int
    lr: float


def _optimisation_plan(T: int, o: InversionOptions) -> list[_Pass]:
    if not o.warm_start:
        return [_Pass(list(range(T)), "anchor", o.steps, o.lr)]
    plan = [_Pass(p, "warm" if i else "anchor", o.warm_steps if i else o.steps, o.warm_lr if i else o.lr)
            for i, p in enumerate(bisection_passes(T))]
    if o.polish_steps > 0 and T > 1:
        plan.append(_Pass(list(range(T)), "refine", o.polish_steps, o.warm_lr))
    return plan


def _lr_factor(step: int, n_steps: int, warmup: bool) -> float:
    """Cosine ramp-down over the last quarter (and a 5 % warm-up for long anchor runs)."""
    t = step / max(1, n_steps - 1)
    ramp = min(1.0, (1 - t) / 0.25) if n_steps > 4 else 1.0
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    ramp *= min(1.0, t / 0.05) if (warmup and n_steps > 20) else 1.0
    return max(ramp, 0.02)


class _Run:
    """State shared by the passes of one inversion: generator, targets, losses, progress."""

    def __init__(self, G, target, o: InversionOptions, total: int, progress, cancel):
        self.G, self.target, self.o, self.total = G, target, o, total
        self.progress, self.cancel, self.done = progress, cancel, 0
        self.ploss = PerceptualLoss(o.perceptual, G.device) if o.perceptual is not None else None
        self.gen = torch.Generator(device="cpu").manual_seed(o.seed)

    def tick(self) -> None:
        if self.cancel is not None and self.cancel():
            raise Cancelled(f"inversion cancelled at step {self.done} of {self.total}")

    def step_done(self) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total)

    def optimise(self, codes: torch.Tensor, idx: list[int], start: torch.Tensor, p: _Pass, noise_scale: float):
        """Adam on the codes of frames `idx` from `start`; writes the result into `codes[idx]`."""
        G, o, device = self.G, self.o, self.G.device
        w = start.clone().requires_grad_(True)
        opt = torch.optim.Adam([w], lr=p.lr, betas=(0.9, 0.999))
        tgt = self.target[idx]
        tgt_feats = None
        if self.ploss is not None:
            with torch.no_grad():
                tgt_feats = self.ploss.features_of(tgt)
        smooth = p.kind == "refine" and o.smoothness > 0 and codes.shape[0] > 1
        for step in range(p.steps):
            self.tick()
            for g in opt.param_groups:
                g["lr"] = p.lr * _lr_factor(step, p.steps, warmup=p.kind == "anchor")
            ws = w
            if noise_scale > 0:
                strength = noise_scale * max(0.0, 1 - step / max(1, p.steps - 1) / 0.75) ** 2
                ws = w + strength * torch.randn(w.shape, generator=self.gen).to(device)
            img = G.synthesis(ws, noise_mode="const")
            loss = _pyramid_mse(img, tgt)
            if self.ploss is not None:
                loss = loss + o.perceptual_weight * self.ploss.distance(self.ploss.features_of(img), tgt_feats)
            loss = loss.sum()
            if smooth:
                full = codes.detach().index_put((torch.tensor(idx, device=device),), w)
                loss = loss + o.smoothness * (full[1:] - full[:-1]).square().mean((1, 2)).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            self.step_done()
        codes[idx] = w.detach()


def _chunks(p: _Pass, batch_size: int) -> list[list[int]]:
    return [p.frames[i:i + batch_size] for i in range(0, len(p.frames), batch_size)]


def _run_plan(run: _Run, codes: torch.Tensor, plan: list[_Pass], w_avg: torch.Tensor, w_std: float) -> None:
    solved: list[int] = []
    for p in plan:
        for idx in _chunks(p, run.o.batch_size):
            if p.kind == "anchor":
                start = w_avg.view(1, 1, -1).expand(len(idx), codes.shape[1], -1)
            elif p.kind == "refine":
                start = codes[idx]
            else:
                start = torch.stack([_interpolated_start(codes, solved, i) for i in idx])
            run.optimise(codes, idx, start, p, noise_scale=0.05 * w_std if p.kind == "anchor" else 0.0)
            solved = sorted(set(solved) | set(idx))


def _encoded(encoder, frames: torch.Tensor, o: InversionOptions, n_layers: int) -> torch.Tensor:
    codes = encoder(frames, iterations=o.encoder_iterations, batch_size=o.batch_size)
    return codes.mean(1, keepdim=True) if n_layers == 1 else codes


def _describe(encoder, o: InversionOptions, init) -> dict:
    if init is not None:
        return {"inversion": "refined from init", "refine_steps": o.warm_steps}
    if encoder is not None:
        return {"inversion": "encoder + refinement", "encoder": encoder.name, "refine_steps": o.refine_steps}
    return {"inversion": "optimisation", "steps": o.steps}


# --- main --------------------------------------------------------------------------------------------------

def invert(G: nn.Module, frames: torch.Tensor, encoder="auto", options: InversionOptions | None = None, *,
           times: torch.Tensor | None = None, init: torch.Tensor | None = None,
           progress: Callable[[int, int], None] | None = None, cancel: Callable[[], bool] | None = None,
           **overrides):
    """Find codes whose images reproduce `frames`. frames [T, 3, H, W] in [-1, 1] -> a `Clip` with codes
    [T, L, D] (L = G.num_ws for space "w+", 1 for "w").

    Args:
        encoder: "auto" (default) = the built-in encoder for the built-in generator (and generators of its
            architecture, e.g. tuned from it), optimisation only for any other generator; an encoder from
            `dc.load_encoder` (or a name / path for it) starts every frame from its codes, refined by
            `refine_steps` joint steps; None = optimisation only (bisection passes, see the module docstring).
        options: an `InversionOptions`; any of its fields can also be given as a keyword (`steps=100`).
        times: the frames' times [T] for the clip (default 0, 1, 2, ...).
        init: codes [T or 1, L, D] to start from instead (skips encoder and bisection: one joint pass of
            `warm_steps`).
        progress(done, total) after every step; cancel() returning True raises `Cancelled`.

    Returns a Clip: codes on G's device, metadata with G's identity, per-frame reconstruction PSNR ("psnr",
    dB) and how the codes were found. Frames of another size are center-cropped and resized (with a
    warning); grayscale [T, 1, H, W] and RGBA [T, 4, H, W] (composited over white) are accepted. Gradients
    are enabled locally, so this also works under `torch.no_grad()` or `torch.inference_mode()`.
    """
    from .clip import Clip

    o = _options(options, overrides)
    n_layers = 1 if o.space == "w" else G.num_ws
    encoder = resolve_encoder(G, encoder) if init is None else None
    n_frames = frames.shape[0] if isinstance(frames, torch.Tensor) and frames.ndim == 4 else 1
    with torch.inference_mode(False), torch.enable_grad(), _grad_ready(G) as G, \
            thread_scope(o.threads, G.resolution, min(o.batch_size, n_frames)), reuse_freed_memory():
        device = G.device
        rgb = checked_frames(frames)
        target = _generator_sized(rgb, G).to(device)
        T = target.shape[0]
        if init is not None:
            codes = _validated_init(init, G, T, n_layers)
            plan = [_Pass(list(range(T)), "refine", o.warm_steps, o.warm_lr)]
        elif encoder is not None:
            codes = _encoded(encoder, rgb, o, n_layers).to(device)
            plan = [_Pass(list(range(T)), "refine", o.refine_steps, o.refine_lr)] if o.refine_steps else []
        else:
            codes = torch.empty(T, n_layers, G.w_dim, device=device)
            plan = _optimisation_plan(T, o)
        o = dataclasses.replace(o, batch_size=batch_size_for(G, "invert", o.memory, limit=min(o.batch_size, T)))
        total = sum(p.steps * len(_chunks(p, o.batch_size)) for p in plan)
        run = _Run(G, target, o, total, progress, cancel)
        w_avg, w_std = _w_stats(G, seed=o.seed) if any(p.kind == "anchor" for p in plan) else (None, 0.0)
        _run_plan(run, codes, plan, w_avg, w_std)
        recon = decode(G, codes, batch_size=o.batch_size).to(device)
        quality = psnr(recon, target)
    meta = {**_describe(encoder, o, init), "space": o.space, "psnr": [round(float(q), 3) for q in quality]}
    return Clip(codes, times, meta).stamped(G)
