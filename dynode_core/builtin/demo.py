"""`dynode demo`: the whole method on the built-in generator, no downloads.

Render a talking cartoon face (ground truth), keep every 4th frame as a keyframe, invert the keyframes into
W+, fit ODE dynamics, sample them ×4 between keyframes and past the last one, compare against linear
interpolation of the codes, edit the first frame and let the dynamics carry the edit (and, for comparison,
add the same offset to every frame), draw SDE variations; write videos, a contact sheet, a trajectory plot
and metrics.json.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
from PIL import Image, ImageDraw, ImageFont

from .._files import atomic_write as _atomic_write
from ..checkpoints import load_generator
from ..codes import save_codes
from ..decoding import decode
from ..dynamics._interp import locate
from ..editing import builtin_directions, edit_all, edit_initial, flicker, load_direction, temporal_consistency
from .renderer import render_clip
from ..inversion import invert
from ..metrics import psnr
from ..plotting import plot_trajectory
from ..times import keyframe_mask, sample_times
from ..video import frames_to_uint8, write_image, write_video

__all__ = ["run_demo", "DemoConfig"]


@dataclass
class DemoConfig:
    keyframes: int = 9            # sparse keyframes ...
    key_spacing: float = 0.25     # ... every 0.25 s (4 fps); the ground truth and the output are at 16 fps
    factor: int = 4
    extrapolate: float = 0.5      # seconds past the last keyframe
    steps: int = 300              # inversion: anchor steps (warm passes use their defaults)
    warm_steps: int | None = None
    fit_options: dict = field(default_factory=dict)
    sde_options: dict = field(default_factory=dict)
    sde_samples: int = 3
    edit: str = "hair_blonde"     # built-in direction (the first available one if this is missing)
    edit_strength: float = 1.0
    fps: float = 16.0


QUICK = DemoConfig(keyframes=4, steps=6, warm_steps=2, extrapolate=0.25, sde_samples=2,
                   fit_options={"iterations": 3, "neural": False}, sde_options={"iterations": 3, "neural": False})


def _lerp_codes(key_t: torch.Tensor, codes: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear interpolation of codes [K, L, D] at times t [N] (held constant outside). -> [N, L, D]"""
    left, right, a = locate(key_t.double(), t.double())
    return torch.lerp(codes[left], codes[right], a.to(codes.dtype)[:, None, None])


def _label_strip(texts: list[str], widths: list[int], height: int = 14) -> Image.Image:
    strip = Image.new("RGB", (sum(widths), height), "white")
    draw, font, x = ImageDraw.Draw(strip), ImageFont.load_default(), 0
    for text, w in zip(texts, widths):
        draw.text((x + 2, 1), text, fill="black", font=font)
        x += w
    return strip


def _side_by_side(clips: list[torch.Tensor], labels: list[str]) -> list[Image.Image]:
    """Frames of several clips [T, 3, H, W] placed left to right under a label strip."""
    pixels = [frames_to_uint8(c).numpy() for c in clips]
    h, w = pixels[0].shape[1:3]
    strip = _label_strip(labels, [w] * len(clips))
    out = []
    for t in range(len(pixels[0])):
        img = Image.new("RGB", (w * len(clips), h + strip.height), "white")
        img.paste(strip, (0, 0))
        for k, p in enumerate(pixels):
            img.paste(Image.fromarray(p[t]), (k * w, strip.height))
        out.append(img)
    return out


def _save_frames(path: Path, images: list[Image.Image], fps: float) -> None:
    fmt = {".gif": "GIF", ".webp": "WEBP"}[path.suffix]
    kw = dict(save_all=True, append_images=images[1:], loop=0, duration=round(1000 / fps), format=fmt)
    if fmt == "WEBP":
        kw.update(quality=92)
    _atomic_write(path, lambda tmp: images[0].save(tmp, **kw))


def _contact_sheet(rows: list[tuple[str, torch.Tensor | None]], times: torch.Tensor, key: torch.Tensor,
                   last_key: float) -> Image.Image:
    """Rows of frames [N, 3, H, W] (None entries of a row's mask are left grey), one column per time."""
    n = len(times)
    h = w = rows[0][1].shape[-1]
    label_w, head_h, gap = 150, 28, 2
    sheet = Image.new("RGB", (label_w + n * (w + gap), head_h + len(rows) * (h + gap)), "white")
    draw, font = ImageDraw.Draw(sheet), ImageFont.load_default()
    for j, t in enumerate(times.tolist()):
        x = label_w + j * (w + gap)
        colour = (0, 0, 0) if key[j] else ((170, 40, 40) if t > last_key + 1e-6 else (120, 120, 120))
        if key[j] or t > last_key + 1e-6:
            draw.text((x + 2, 2), f"{t:.2f}s", fill=colour, font=font)
        if key[j]:
            draw.rectangle([x, head_h - 6, x + w - 1, head_h - 3], fill=(0, 0, 0))
    draw.text((4, 2), "time (keyframes marked)", fill="black", font=font)
    draw.text((4, 14), "red: extrapolated", fill=(170, 40, 40), font=font)
    for i, (name, frames) in enumerate(rows):
        y = head_h + i * (h + gap)
        draw.text((4, y + h // 2 - 6), name, fill="black", font=font)
        pix = frames_to_uint8(frames).numpy()
        for j in range(n):
            x = label_w + j * (w + gap)
            if name.startswith("keyframes") and not key[j]:
                draw.rectangle([x, y, x + w - 1, y + h - 1], fill=(225, 225, 225))
            else:
                sheet.paste(Image.fromarray(pix[j]), (x, y))
    return sheet


def _no_progress(desc: str):
    return nullcontext(None)


def run_demo(out: str | Path, quick: bool = False, device: str | torch.device = "cpu", seed: int = 0,
             config: DemoConfig | None = None, progress: Callable[[str], object] | None = None,
             log: Callable[[str], None] = print) -> dict:
    """Run the demo, write its files into `out`, and return the metrics (also written to metrics.json).

    `progress(description)` must return a context manager yielding a `progress(done, total)` callback (or
    None); the CLI passes tqdm bars. `quick=True` uses tiny settings (a smoke test, seconds).
    """
    from ..dynamics import fit_dynamics  # the dynamics module registers itself in the package

    cfg = config or (QUICK if quick else DemoConfig())
    progress = progress or _no_progress
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    @contextmanager
    def stage(name: str, bar: bool = True):
        log(f"[demo] {name}")
        t0 = time.perf_counter()
        with (progress(name) if bar else nullcontext(None)) as cb:
            yield cb
        timings[name] = round(time.perf_counter() - t0, 2)

    t_start = time.perf_counter()
    G = load_generator("builtin", device=device)
    key_t = torch.arange(cfg.keyframes, dtype=torch.float32) * cfg.key_spacing
    grid = sample_times(key_t, factor=cfg.factor, extrapolate=cfg.extrapolate)
    is_key = keyframe_mask(grid, key_t)
    inside = grid <= key_t[-1] + 1e-6
    between, beyond = inside & ~is_key, ~inside
    truth = render_clip(grid, seed=seed, size=G.resolution)

    with stage("invert keyframes") as cb:
        inv = invert(G, truth[is_key], space="w+", steps=cfg.steps, warm_steps=cfg.warm_steps, seed=seed,
                     progress=cb, return_psnr=True)
    codes = inv.codes
    save_codes(out / "keyframe_codes.safetensors", codes, key_t, G=G,
               metadata={"psnr": [round(float(p), 3) for p in inv.psnr]})

    with stage("fit ODE dynamics") as cb:
        dyn = fit_dynamics(key_t, codes, kind="ode", progress=cb, **cfg.fit_options)
    dyn.save(out / "dynamics.safetensors")

    with stage("decode", bar=False):
        path = dyn.sample(grid).detach().cpu()
        linear = _lerp_codes(key_t, codes, grid)
        frames_dyn = decode(G, path)
        frames_lin = decode(G, linear)
    p_dyn, p_lin = psnr(frames_dyn, truth), psnr(frames_lin, truth)

    names = builtin_directions()
    edit_name = cfg.edit if cfg.edit in names else next(iter(names), None)
    edit_metrics = {}
    if edit_name is not None:
        with stage(f"edit first frame ({edit_name}) and propagate", bar=False):
            d = load_direction(edit_name)
            z0 = edit_initial(codes, d, cfg.edit_strength)
            # The paper's recipe: the learned dynamics alone, run from the edited first code.
            edited = dyn.sample(grid, z0=z0, keyframes=False).detach().cpu()
            edited_all = edit_all(path, d, cfg.edit_strength)
            frames_edit, frames_edit_all = decode(G, edited), decode(G, edited_all)
        edit_metrics = {
            "direction": edit_name, "strength": cfg.edit_strength,
            "motion_error_propagated": temporal_consistency(frames_edit, frames_dyn),
            "motion_error_every_frame": temporal_consistency(frames_edit_all, frames_dyn),
            "change_ratio_propagated": flicker(frames_edit) / flicker(frames_dyn),
            "change_ratio_every_frame": flicker(frames_edit_all) / flicker(frames_dyn),
            "edit_size_first_frame": float((frames_edit[0] - frames_dyn[0]).abs().mean()),
        }
    else:
        log("[demo] no built-in edit directions found; skipping the edit")
        frames_edit = edited = None

    with stage("fit SDE dynamics") as cb:
        sde = fit_dynamics(key_t, codes, kind="sde", progress=cb, **cfg.sde_options)
    with stage("SDE variations", bar=False):
        variations = [sde.sample(grid, seed=seed + k).detach().cpu() for k in range(cfg.sde_samples)]
        frames_var = [decode(G, v) for v in variations]

    with stage("write outputs", bar=False):
        fps = cfg.fps
        write_video(out / "ground_truth.gif", truth, fps=fps)
        left, right, a = locate(key_t.double(), grid.double())
        held = codes[torch.where(a > 1 - 1e-6, right, left)]  # the latest keyframe at or before each time
        frames_held = decode(G, held)  # each keyframe's reconstruction shown until the next keyframe
        write_video(out / "keyframes.gif", frames_held, fps=fps)
        write_video(out / "interpolated.gif", frames_dyn, fps=fps)
        write_video(out / "interpolated.webp", frames_dyn, fps=fps)
        write_video(out / "linear.gif", frames_lin, fps=fps)
        clips, labels = [truth, frames_dyn, frames_lin], ["truth", "dynamics", "linear"]
        if frames_edit is not None:
            write_video(out / "edited.gif", frames_edit, fps=fps)
            write_video(out / "edited_every_frame.gif", frames_edit_all, fps=fps)
            clips, labels = clips + [frames_edit, frames_edit_all], labels + ["edit+dyn", "edit all"]
        comparison = _side_by_side(clips, labels)
        _save_frames(out / "comparison.gif", comparison, fps)
        _save_frames(out / "comparison.webp", comparison, fps)
        _save_frames(out / "sde_variations.gif", _side_by_side(frames_var, [f"seed {seed + k}" for k in
                                                                           range(len(frames_var))]), fps)
        rows = [("keyframes (inverted)", frames_held), ("dynamics (x4)", frames_dyn),
                ("linear interp.", frames_lin), ("ground truth", truth)]
        if frames_edit is not None:
            rows.append((f"edited ({edit_name})", frames_edit))
        write_image(out / "contact_sheet.png", _contact_sheet(rows, grid, is_key, float(key_t[-1])))
        paths = [path, linear, *variations] + ([edited] if edited is not None else [])
        plot_labels = ["ODE", "linear", *[f"SDE {seed + k}" for k in range(len(variations))]]
        plot_labels += ["edited"] if edited is not None else []
        write_image(out / "trajectory.png", plot_trajectory(codes, paths, plot_labels, observed_times=key_t,
                                                            size=(800, 560),
                                                            title="keyframe codes and paths, first two PCs"))

    timings["total"] = round(time.perf_counter() - t_start, 2)
    metrics = {
        "psnr_dynamics": float(p_dyn[between].mean()),
        "psnr_linear": float(p_lin[between].mean()),
        "psnr_keyframes_dynamics": float(p_dyn[is_key].mean()),
        "psnr_keyframes_inversion": float(inv.psnr.mean()),
        "psnr_extrapolation_dynamics": float(p_dyn[beyond].mean()) if beyond.any() else None,
        "psnr_extrapolation_hold_last": float(p_lin[beyond].mean()) if beyond.any() else None,
        "edit": edit_metrics,
        "frames": {"keyframes": int(is_key.sum()), "interpolated": int(between.sum()),
                   "extrapolated": int(beyond.sum())},
        "config": {**asdict(cfg), "quick": quick, "seed": seed, "device": str(device)},
        "seconds": timings,
        "notes": "PSNR in dB against the rendered ground truth; psnr_dynamics / psnr_linear average the "
                 "non-keyframe frames between the first and last keyframe. change_ratio_* = mean frame-to-frame "
                 "change of the edited video / that of the unedited dynamics video (1 = as much motion, > 1 "
                 "flicker added, < 1 motion lost). motion_error_* = dc.temporal_consistency(edited, unedited): "
                 "mean |change(edited) - change(unedited)| / mean |change(unedited)|, 0 = identical motion "
                 "(colour edits raise it at moving edges).",
    }
    _atomic_write(out / "metrics.json", lambda tmp: Path(tmp).write_text(json.dumps(metrics, indent=2)))
    return metrics
