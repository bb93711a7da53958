"""`dynode demo`: the whole method on the built-in generator, no downloads.

Render a talking cartoon face moving in a larger frame (ground truth), keep every 4th frame as a keyframe,
align the face in the keyframes (the `faces` extra; without it the face is rendered straight into the
generator's framing), invert the aligned crops into
W+, fit ODE dynamics, sample them ×4 between keyframes and past the last one, compare against linear
interpolation of the codes, edit the first frame and let the dynamics carry the edit (and, for comparison,
add the same offset to every frame), draw SDE variations, paste the faces back into the frames; write videos, a contact sheet, a trajectory plot
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
from .._threads import thread_scope
from ..alignment import align_faces, faces_available, paste_faces
from ..checkpoints import load_generator
from ..codes import save_codes
from ..decoding import decode as _decode
from ..dynamics._interp import locate
from ..editing import builtin_directions, edit_all, edit_initial, flicker, load_direction, temporal_consistency
from ..inversion import invert
from ..metrics import motion_kept, psnr
from ..plotting import plot_trajectory
from ..times import keyframe_mask, sample_times
from ..video import frames_to_uint8, write_image, write_video
from ..video_pipeline import source_background
from .renderer import face_regions, render_clip, talking_clip
from .scene import scene_clip

__all__ = ["run_demo", "DemoConfig"]


def _decode_cpu(G, codes):
    """Frames on the CPU, where the demo measures and draws them (dc.decode answers on G's device)."""
    return _decode(G, codes).cpu()


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
    scene_size: tuple[int, int] = (144, 192)   # the frame the face moves in (with the faces extra)
    scene_face: int = 128                      # side of the rendered face square placed in it


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
                   last_key: float, cell: int = 64) -> Image.Image:
    """Rows of frames [N, 3, H, W], one column per time; frames are shown `cell` pixels wide (taller or
    shorter rows keep their aspect). Rows named "keyframes ..." or "input ..." are grey off the keyframes."""
    n = len(times)
    w = cell
    heights = [max(1, round(f.shape[-2] * cell / f.shape[-1])) for _, f in rows]
    label_w, head_h, gap = 150, 28, 2
    sheet = Image.new("RGB", (label_w + n * (w + gap), head_h + sum(h + gap for h in heights)), "white")
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
    y = head_h
    for (name, frames), h in zip(rows, heights):
        draw.text((4, y + h // 2 - 6), name, fill="black", font=font)
        pix = frames_to_uint8(frames).numpy()
        for j in range(n):
            x = label_w + j * (w + gap)
            if name.startswith(("keyframes", "input", "aligned")) and not key[j]:
                draw.rectangle([x, y, x + w - 1, y + h - 1], fill=(225, 225, 225))
            else:
                img = Image.fromarray(pix[j])
                sheet.paste(img if img.size == (w, h) else img.resize((w, h), Image.LANCZOS), (x, y))
        y += h + gap
    return sheet


def _no_progress(desc: str):
    return nullcontext(None)


@dataclass
class _Clip:
    """What the stages pass along: times, ground truth, and (with the faces extra) the scene and its faces."""
    key_t: torch.Tensor
    grid: torch.Tensor
    is_key: torch.Tensor
    truth: torch.Tensor                       # ground-truth crops [N, 3, 64, 64] (the renderer)
    scene: torch.Tensor | None = None         # the frames [N, 3, H, W] the face moves in (None: crop-only path)
    faces: object | None = None               # AlignedFaces of the keyframes
    crops: torch.Tensor | None = None         # what is inverted: aligned keyframe crops (or the rendered ones)
    scene_face: int = 128


def _stage_scene(cfg: DemoConfig, seed: int, size: int, with_faces: bool) -> _Clip:
    key_t = torch.arange(cfg.keyframes, dtype=torch.float32) * cfg.key_spacing
    grid = sample_times(key_t, factor=cfg.factor, extrapolate=cfg.extrapolate)
    is_key = keyframe_mask(grid, key_t)
    clip = _Clip(key_t, grid, is_key, render_clip(grid, seed=seed, size=size))
    if with_faces:
        clip.scene = scene_clip(grid, seed=seed, size=cfg.scene_size, face=cfg.scene_face)
        clip.scene_face = cfg.scene_face
    return clip


def _stage_align(clip: _Clip, size: int, progress) -> None:
    if clip.scene is None:
        clip.crops = clip.truth[clip.is_key]
        return
    clip.faces = align_faces(clip.scene[clip.is_key], size=size, framing="builtin", progress=progress)
    clip.crops = clip.faces.crops


def _stage_invert(G, clip: _Clip, cfg: DemoConfig, seed: int, progress):
    return invert(G, clip.crops, space="w+", steps=cfg.steps, warm_steps=cfg.warm_steps, seed=seed,
                  progress=progress)


def _motion_kept(G, codes: torch.Tensor, clip: _Clip, seed: int) -> float:
    """metrics.motion_kept of the inverted keyframes against the renderer's, inside the eyes+mouth mask."""
    with torch.no_grad():
        mask = face_regions(talking_clip(clip.grid[clip.is_key], seed=seed), size=G.resolution)
        return motion_kept(_decode_cpu(G, codes), clip.truth[clip.is_key].cpu(), mask)


def _stage_edit(G, dyn, codes: torch.Tensor, grid: torch.Tensor, path: torch.Tensor, frames_dyn: torch.Tensor,
                cfg: DemoConfig, log) -> tuple[str | None, torch.Tensor | None, torch.Tensor | None, dict]:
    names = builtin_directions()
    edit_name = cfg.edit if cfg.edit in names else next(iter(names), None)
    if edit_name is None:
        log("[demo] no built-in edit directions found; skipping the edit")
        return None, None, None, {}
    d = load_direction(edit_name)
    z0 = edit_initial(codes, d, cfg.edit_strength)
    # The paper's recipe: the learned dynamics alone, run from the edited first code.
    edited = dyn.sample(grid, z0=z0, keyframes=False).detach().cpu()
    frames_edit, frames_edit_all = _decode_cpu(G, edited), _decode_cpu(G, edit_all(path, d, cfg.edit_strength))
    metrics = {
        "direction": edit_name, "strength": cfg.edit_strength,
        "motion_error_propagated": temporal_consistency(frames_edit, frames_dyn),
        "motion_error_every_frame": temporal_consistency(frames_edit_all, frames_dyn),
        "change_ratio_propagated": flicker(frames_edit) / flicker(frames_dyn),
        "change_ratio_every_frame": flicker(frames_edit_all) / flicker(frames_dyn),
        "edit_size_first_frame": float((frames_edit[0] - frames_dyn[0]).abs().mean()),
    }
    return edit_name, edited, (frames_edit, frames_edit_all), metrics


def _stage_paste(clip: _Clip, crops: torch.Tensor) -> torch.Tensor:
    """Decoded crops [N, ...] at every grid time -> scene frames, over the nearest keyframe's background."""
    faces = clip.faces.interpolate(clip.key_t, clip.grid)
    back = source_background(clip.key_t, clip.grid)
    keys = clip.scene[clip.is_key]
    return paste_faces(keys[back], crops, faces)


def _paste_metrics(clip: _Clip, pasted: torch.Tensor, pasted_lin: torch.Tensor, between: torch.Tensor) -> dict:
    keys = clip.scene[clip.is_key]
    back = keys[source_background(clip.key_t, clip.grid)]
    untouched = (pasted == back).all(1)  # [N, H, W]
    mid = torch.tensor([(clip.truth.shape[-1] - 1) / 2] * 2)
    centre = lambda m: m[:, :2, :2] @ mid + m[:, :2, 2]  # noqa: E731  frame position of the crop's middle
    err = (centre(clip.faces.transforms) - centre(scene_face_transforms(clip))).norm(dim=1)
    return {
        "psnr_pasted_dynamics": float(psnr(pasted[between], clip.scene[between]).mean()),
        "psnr_pasted_linear": float(psnr(pasted_lin[between], clip.scene[between]).mean()),
        "psnr_pasted_keyframes": float(psnr(pasted[clip.is_key], clip.scene[clip.is_key]).mean()),
        "untouched_pixel_fraction": float(untouched.float().mean()),
        "alignment_centre_error_px": float(err.mean()),
        "faces_found": int(clip.faces.found.sum()),
    }


def scene_face_transforms(clip: _Clip) -> torch.Tensor:
    """The true crop -> frame transforms of the keyframes: the renderer's 64-px framing inside the scene."""
    from .scene import scene_transforms

    size = clip.truth.shape[-1]
    face = clip.scene_face
    k = face / size
    to_face = torch.tensor([[k, 0, 0.5 * k - 0.5], [0, k, 0.5 * k - 0.5], [0, 0, 1.0]])
    return scene_transforms(clip.key_t, clip.scene.shape[-2:], face) @ to_face


def _stage_write(out: Path, cfg: DemoConfig, clip: _Clip, seed: int, G, codes, path, linear, variations, edited,
                 frames: dict, edit_name: str | None) -> None:
    fps, grid, is_key, key_t = cfg.fps, clip.grid, clip.is_key, clip.key_t
    write_video(out / "ground_truth.gif", clip.truth, fps=fps)
    left, right, a = locate(key_t.double(), grid.double())
    held = codes[torch.where(a > 1 - 1e-6, right, left)]  # the latest keyframe at or before each time
    frames_held = _decode_cpu(G, held)  # each keyframe's reconstruction shown until the next keyframe
    write_video(out / "keyframes.gif", frames_held, fps=fps)
    write_video(out / "interpolated.gif", frames["dyn"], fps=fps)
    write_video(out / "interpolated.webp", frames["dyn"], fps=fps)
    write_video(out / "linear.gif", frames["lin"], fps=fps)
    clips, labels = [clip.truth, frames["dyn"], frames["lin"]], ["truth", "dynamics", "linear"]
    if "edit" in frames:
        write_video(out / "edited.gif", frames["edit"], fps=fps)
        write_video(out / "edited_every_frame.gif", frames["edit_all"], fps=fps)
        clips, labels = clips + [frames["edit"], frames["edit_all"]], labels + ["edit+dyn", "edit all"]
    comparison = _side_by_side(clips, labels)
    _save_frames(out / "comparison.gif", comparison, fps)
    _save_frames(out / "comparison.webp", comparison, fps)
    _save_frames(out / "sde_variations.gif", _side_by_side(frames["var"], [f"seed {seed + k}" for k in
                                                                        range(len(frames["var"]))]), fps)
    rows = []
    if clip.scene is not None:
        keys = torch.zeros_like(clip.scene)
        keys[is_key] = clip.scene[is_key]
        crops = torch.zeros_like(clip.truth)
        crops[is_key] = clip.crops
        rows += [("input frame", keys), ("aligned crop", crops), ("pasted back (x4)", frames["pasted"])]
        write_video(out / "pasted.gif", frames["pasted"], fps=fps)
        write_video(out / "scene_truth.gif", clip.scene, fps=fps)
        scene_cmp = _side_by_side([clip.scene, frames["pasted"]] + ([frames["pasted_edit"]] if "pasted_edit" in frames
                                                                     else []),
                                  ["scene (truth)", "pasted back"] + (["edited"] if "pasted_edit" in frames else []))
        _save_frames(out / "scene_comparison.gif", scene_cmp, fps)
        write_video(out / "pasted.mp4", frames["pasted"], fps=fps)
    rows += [("keyframes (inverted)", frames_held), ("dynamics (x4)", frames["dyn"]),
             ("linear interp.", frames["lin"]), ("ground truth", clip.truth)]
    if "edit" in frames:
        rows.append((f"edited ({edit_name})", frames["edit"]))
    if "pasted_edit" in frames:
        rows.append(("edited, pasted", frames["pasted_edit"]))
    write_image(out / "contact_sheet.png", _contact_sheet(rows, grid, is_key, float(key_t[-1])))
    paths = [path, linear, *variations] + ([edited] if edited is not None else [])
    plot_labels = ["ODE", "linear", *[f"SDE {seed + k}" for k in range(len(variations))]]
    plot_labels += ["edited"] if edited is not None else []
    write_image(out / "trajectory.png", plot_trajectory(codes, paths, plot_labels, observed_times=key_t,
                                                        size=(800, 560),
                                                        title="keyframe codes and paths, first two PCs"))


def run_demo(out: str | Path, quick: bool = False, device: str | torch.device = "cpu", seed: int = 0,
             config: DemoConfig | None = None, progress: Callable[[str], object] | None = None,
             log: Callable[[str], None] = print, faces: bool | None = None, threads: int | None = None) -> dict:
    """Run the demo, write its files into `out`, and return the metrics (also written to metrics.json).

    `progress(description)` must return a context manager yielding a `progress(done, total)` callback (or
    None); the CLI passes tqdm bars. `quick=True` uses tiny settings (a smoke test, seconds). faces: None
    uses the moving scene, alignment and paste-back when the `faces` extra is installed; False forces the
    crop-only path (the face rendered straight into the generator's framing). threads: CPU threads (default:
    the thread policy's choice for the 64-px built-in generator, one).
    """
    with thread_scope(threads, resolution=64):
        return _run_demo(out, quick, device, seed, config, progress, log, faces)


def _run_demo(out, quick, device, seed, config, progress, log, faces) -> dict:
    from ..dynamics import fit_dynamics  # the dynamics module registers itself in the package

    cfg = config or (QUICK if quick else DemoConfig())
    progress = progress or _no_progress
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    with_faces = faces_available() if faces is None else faces
    if not with_faces:
        log("[demo] the 'faces' extra (MediaPipe) is not installed: running the crop-only path, without the "
            "moving scene, alignment and paste-back (pip install \"dynode[faces]\" for those)")

    @contextmanager
    def stage(name: str, bar: bool = True):
        log(f"[demo] {name}")
        t0 = time.perf_counter()
        with (progress(name) if bar else nullcontext(None)) as cb:
            yield cb
        timings[name] = round(time.perf_counter() - t0, 2)

    t_start = time.perf_counter()
    G = load_generator("builtin", device=device)
    clip = _stage_scene(cfg, seed, G.resolution, with_faces)
    grid, is_key, key_t = clip.grid, clip.is_key, clip.key_t
    inside = grid <= key_t[-1] + 1e-6
    between, beyond = inside & ~is_key, ~inside
    if with_faces:
        with stage("align faces") as cb:
            _stage_align(clip, G.resolution, cb)
    else:
        _stage_align(clip, G.resolution, None)

    with stage("invert keyframes") as cb:
        inv = _stage_invert(G, clip, cfg, seed, cb)
    codes = inv.codes
    save_codes(out / "keyframe_codes.safetensors", codes, key_t, G=G, metadata={"psnr": inv.metadata["psnr"]})

    with stage("fit ODE dynamics") as cb:
        dyn = fit_dynamics(key_t, codes, kind="ode", progress=cb, **cfg.fit_options)
    dyn.save(out / "dynamics.safetensors")

    with stage("decode", bar=False):
        path = dyn.sample(grid).detach().cpu()
        linear = _lerp_codes(key_t, codes, grid)
        frames = {"dyn": _decode_cpu(G, path), "lin": _decode_cpu(G, linear)}
    p_dyn, p_lin = psnr(frames["dyn"], clip.truth), psnr(frames["lin"], clip.truth)

    with stage("edit first frame and propagate", bar=False):
        edit_name, edited, edit_frames, edit_metrics = _stage_edit(G, dyn, codes, grid, path, frames["dyn"], cfg, log)
    if edit_frames is not None:
        frames["edit"], frames["edit_all"] = edit_frames

    with stage("fit SDE dynamics") as cb:
        sde = fit_dynamics(key_t, codes, kind="sde", progress=cb, **cfg.sde_options)
    with stage("SDE variations", bar=False):
        variations = [sde.sample(grid, seed=seed + k).detach().cpu() for k in range(cfg.sde_samples)]
        frames["var"] = [_decode_cpu(G, v) for v in variations]

    scene_metrics = {}
    if with_faces:
        with stage("paste back", bar=False):
            frames["pasted"] = _stage_paste(clip, frames["dyn"])
            pasted_lin = _stage_paste(clip, frames["lin"])
            if "edit" in frames:
                frames["pasted_edit"] = _stage_paste(clip, frames["edit"])
            scene_metrics = _paste_metrics(clip, frames["pasted"], pasted_lin, between)

    with stage("write outputs", bar=False):
        _stage_write(out, cfg, clip, seed, G, codes, path, linear, variations, edited, frames, edit_name)

    timings["total"] = round(time.perf_counter() - t_start, 2)
    metrics = {
        "psnr_dynamics": float(p_dyn[between].mean()),
        "psnr_linear": float(p_lin[between].mean()),
        "psnr_keyframes_dynamics": float(p_dyn[is_key].mean()),
        "psnr_keyframes_inversion": float(torch.tensor(inv.metadata["psnr"]).mean()),
        "motion_kept_keyframes_inversion": _motion_kept(G, codes, clip, seed),
        "psnr_extrapolation_dynamics": float(p_dyn[beyond].mean()) if beyond.any() else None,
        "psnr_extrapolation_hold_last": float(p_lin[beyond].mean()) if beyond.any() else None,
        "scene": scene_metrics,
        "edit": edit_metrics,
        "frames": {"keyframes": int(is_key.sum()), "interpolated": int(between.sum()),
                   "extrapolated": int(beyond.sum())},
        "config": {**asdict(cfg), "quick": quick, "seed": seed, "device": str(device), "faces": with_faces},
        "seconds": timings,
        "notes": "PSNR in dB. psnr_dynamics / psnr_linear: decoded crops against the renderer's own crops (the "
                 "built-in framing), averaged over the non-keyframe frames between the first and last keyframe; "
                 "with the faces extra the crops inverted are the aligned crops of the moving scene. scene.*: "
                 "pasted-back frames against the scene's ground truth (in-between frames use the nearest "
                 "keyframe's background and the interpolated transform); untouched_pixel_fraction: pixels "
                 "bit-for-bit equal to the background frame. change_ratio_* = mean frame-to-frame change of the "
                 "edited video / that of the unedited dynamics video. motion_error_* = "
                 "dc.temporal_consistency(edited, unedited). motion_kept_keyframes_inversion = "
                 "metrics.motion_kept: correlation, inside the eyes+mouth mask, of the inverted and true "
                 "keyframes' deviations from their mean frame (1 = all the motion kept).",
    }
    _atomic_write(out / "metrics.json", lambda tmp: Path(tmp).write_text(json.dumps(metrics, indent=2)))
    return metrics
