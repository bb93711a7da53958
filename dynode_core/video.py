"""Frames in and out: image folders, GIF, WebP, PNG frames, and video files through PyAV when it is installed.

Convention everywhere in DynODE: a clip is a float tensor `frames` [T, 3, H, W] with values in [-1, 1]
(the generator's output range). `frames_to_uint8` / `frames_from_uint8` convert to and from [T, H, W, 3]
uint8. Files are written to a temporary name in the destination folder and renamed over the target, so an
interrupted write never leaves a half-written file under the name asked for.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageSequence

from ._files import atomic_write as _atomic_write

__all__ = ["read_video", "write_video", "write_image", "frames_to_uint8", "frames_from_uint8", "to_rgb",
           "resize_frames"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
_PIL_ANIMATED = (".gif", ".webp")
_PYAV_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")
_FRAME_NAME = "frame_{:06d}.png"
_FRAME_RE = re.compile(r"^frame_(\d{6})\.png$")


# --- conversions -------------------------------------------------------------------------------------------

def frames_to_uint8(frames: torch.Tensor) -> torch.Tensor:
    """[T, 3, H, W] in [-1, 1] -> uint8 [T, H, W, 3] (values outside [-1, 1] are clipped)."""
    frames = to_rgb(_check_frames(frames))
    return ((frames.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1)


def frames_from_uint8(array) -> torch.Tensor:
    """uint8 [T, H, W, C] (C = 1, 3 or 4) or [T, H, W] grayscale -> float [T, 3, H, W] in [-1, 1]."""
    t = torch.as_tensor(np.asarray(array))
    if t.dtype != torch.uint8:
        raise TypeError(f"expected uint8 pixels, got {t.dtype}")
    if t.ndim == 3:
        t = t[..., None]
    if t.ndim != 4 or t.shape[-1] not in (1, 3, 4):
        raise ValueError(f"expected [T, H, W, C] with C in (1, 3, 4), got {list(t.shape)}")
    return to_rgb(t.permute(0, 3, 1, 2).float() / 127.5 - 1)


def to_rgb(frames: torch.Tensor) -> torch.Tensor:
    """[T, C, H, W] in [-1, 1] with C = 1 (gray), 3 (RGB) or 4 (RGBA) -> [T, 3, H, W].

    Grayscale is repeated on the three channels; RGBA is composited over a white background.
    """
    c = frames.shape[1]
    if c == 3:
        return frames
    if c == 1:
        return frames.expand(-1, 3, -1, -1)
    if c == 4:
        alpha = (frames[:, 3:4] + 1) / 2
        return frames[:, :3] * alpha + (1 - alpha)
    raise ValueError(f"frames must have 1, 3 or 4 channels, got {c} (shape {list(frames.shape)})")


def resize_frames(frames: torch.Tensor, size: int) -> torch.Tensor:
    """Center-crop to a square, then resize (antialiased bilinear) to `size`×`size`. [T, C, H, W] -> [T, C, size, size]."""
    _, _, h, w = frames.shape
    if h != w:
        s = min(h, w)
        top, left = (h - s) // 2, (w - s) // 2
        frames = frames[:, :, top:top + s, left:left + s]
    if frames.shape[-1] != size:
        frames = F.interpolate(frames.float(), size=(size, size), mode="bilinear", align_corners=False,
                               antialias=frames.shape[-1] > size)
    return frames


def _check_frames(frames: torch.Tensor) -> torch.Tensor:
    if not isinstance(frames, torch.Tensor):
        raise TypeError(f"frames must be a torch.Tensor [T, 3, H, W] in [-1, 1], got {type(frames).__name__}")
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[1] not in (1, 3, 4):
        raise ValueError(f"frames must have shape [T, 3, H, W] (or 1/4 channels), got {list(frames.shape)}")
    if frames.shape[0] == 0:
        raise ValueError("frames is empty (T = 0)")
    return frames


# --- reading -----------------------------------------------------------------------------------------------

def read_video(path: str | os.PathLike, max_frames: int | None = None) -> tuple[torch.Tensor, float | None]:
    """Read a clip. Returns (frames [T, 3, H, W] in [-1, 1], fps or None when the source has no frame rate).

    `path` may be a folder of images (read in natural name order), an animated GIF/WebP, a single image, or
    a video file (.mp4, .mov, .mkv, .avi, .webm; needs PyAV: `pip install av`).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: {path}")
    if path.is_dir():
        files = sorted((p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")),
                       key=lambda p: [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", p.name)])
        if not files:
            raise ValueError(f"folder {path} has no images ({', '.join(IMAGE_SUFFIXES)})")
        files = files[:max_frames] if max_frames else files
        arrays = []
        for f in files:
            with Image.open(f) as im:
                arrays.append(np.asarray(_pil_rgb(im)))
        _check_same_size(arrays, path)
        return frames_from_uint8(np.stack(arrays)), None
    suffix = path.suffix.lower()
    if suffix in _PYAV_SUFFIXES:
        return _read_pyav(path, max_frames)
    try:
        im = Image.open(path)
    except Exception as e:  # PIL raises several types for unknown formats
        raise ValueError(f"cannot read {path} as an image, GIF, WebP or video: {e}") from e
    with im:
        arrays, durations = [], []
        for frame in ImageSequence.Iterator(im):
            arrays.append(np.asarray(_pil_rgb(frame)))
            durations.append(frame.info.get("duration") or im.info.get("duration") or 0)
        comment = im.info.get("comment", b"")
    _check_same_size(arrays, path)
    fps = None
    if len(arrays) > 1 and all(d > 0 for d in durations):
        # GIF/WebP writers merge identical consecutive frames into one longer frame: expand them again, using
        # the frame rate `write_video` records in a GIF comment, else the shortest frame as one period.
        m = re.search(rb"fps=([0-9.]+)", comment if isinstance(comment, bytes) else comment.encode())
        period = 1000.0 / float(m.group(1)) if m else float(min(durations))
        arrays = [a for a, d in zip(arrays, durations) for _ in range(max(1, round(d / period)))]
        fps = 1000.0 / period
    arrays = arrays[:max_frames] if max_frames else arrays
    return frames_from_uint8(np.stack(arrays)), fps


def _pil_rgb(im: Image.Image) -> Image.Image:
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, im).convert("RGB")
    return im.convert("RGB")


def _check_same_size(arrays: list, path: Path) -> None:
    sizes = {a.shape for a in arrays}
    if len(sizes) > 1:
        raise ValueError(f"frames of {path} differ in size: {sorted(sizes)}")


def _require_av():
    try:
        import av  # noqa: F401
    except ImportError as e:
        raise ImportError("reading or writing video files (.mp4 etc.) needs PyAV: pip install av  "
                          "(or use a GIF, WebP or a folder of PNG frames)") from e
    return av


def _read_pyav(path: Path, max_frames: int | None) -> tuple[torch.Tensor, float | None]:
    av = _require_av()
    arrays = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate) if stream.average_rate else None
        for frame in container.decode(stream):
            arrays.append(frame.to_ndarray(format="rgb24"))
            if max_frames and len(arrays) >= max_frames:
                break
    if not arrays:
        raise ValueError(f"{path} has no video frames")
    return frames_from_uint8(np.stack(arrays)), fps


# --- writing -----------------------------------------------------------------------------------------------

def write_image(path: str | os.PathLike, image: torch.Tensor | Image.Image) -> Path:
    """Write one image ([3, H, W] / [1, 3, H, W] in [-1, 1], or a PIL image); format from the suffix."""
    path = Path(path)
    if isinstance(image, torch.Tensor):
        image = Image.fromarray(frames_to_uint8(image).numpy()[0])
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"unknown image suffix {path.suffix!r} for {path}")
    _atomic_write(path, lambda tmp: image.save(tmp, format=fmt))
    return path


def write_video(path: str | os.PathLike, frames: torch.Tensor, fps: float = 12.0, lossless: bool = False,
                quality: int = 90) -> Path:
    """Write a clip [T, 3, H, W] in [-1, 1].

    The suffix chooses the format: `.gif`, `.webp` (animated; `lossless=True` keeps pixels exact), `.mp4`/`.mov`/
    `.mkv`/`.webm` (needs PyAV), or no suffix / an existing folder: PNG frames `frame_000000.png`, ... in that
    folder (stale `frame_*.png` files with higher numbers from an earlier, longer clip are removed).
    """
    if not (fps > 0):
        raise ValueError(f"fps must be positive, got {fps!r}")
    path = Path(path)
    pixels = frames_to_uint8(frames).numpy()
    suffix = path.suffix.lower()
    if path.is_dir() or suffix == "":
        return _write_png_folder(path, pixels)
    if suffix in _PYAV_SUFFIXES:
        _atomic_write(path, lambda tmp: _write_pyav(tmp, pixels, fps, suffix))
        return path
    if suffix not in _PIL_ANIMATED:
        raise ValueError(f"unsupported video suffix {suffix!r} for {path}: use .gif, .webp, "
                         f"{', '.join(_PYAV_SUFFIXES)} (PyAV), or a folder for PNG frames")
    images = [Image.fromarray(p) for p in pixels]
    duration = max(1, round(1000.0 / fps))
    if suffix == ".gif":
        kw = dict(format="GIF", loop=0, duration=duration, optimize=False, disposal=1, comment=f"dynode fps={fps:g}")
    else:
        kw = dict(format="WEBP", loop=0, duration=duration, lossless=lossless, quality=quality, method=4)
    _atomic_write(path, lambda tmp: images[0].save(tmp, save_all=True, append_images=images[1:], **kw))
    return path


def _write_png_folder(folder: Path, pixels: np.ndarray) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, p in enumerate(pixels):
        write_image(folder / _FRAME_NAME.format(i), Image.fromarray(p))
    for f in folder.iterdir():
        m = _FRAME_RE.match(f.name)
        if m and int(m.group(1)) >= len(pixels):
            f.unlink()
    return folder


def _write_pyav(tmp: Path, pixels: np.ndarray, fps: float, suffix: str) -> None:
    av = _require_av()
    from fractions import Fraction

    t, h, w, _ = pixels.shape
    if h % 2 or w % 2:  # yuv420p needs even sizes
        pixels = np.pad(pixels, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    fmt = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".avi": "avi", ".webm": "webm"}[suffix]
    codec = "libvpx-vp9" if suffix == ".webm" else "libx264"
    with av.open(str(tmp), mode="w", format=fmt) as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = pixels.shape[2], pixels.shape[1], "yuv420p"
        for p in pixels:
            for packet in stream.encode(av.VideoFrame.from_ndarray(p, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
