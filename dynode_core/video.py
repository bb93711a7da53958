"""Frames in and out: image folders, GIF, WebP, PNG frames, and video files through PyAV when it is installed.

Convention everywhere in DynODE: a clip is a float tensor `frames` [T, 3, H, W] with values in [-1, 1]
(the generator's output range). `frames_to_uint8` / `frames_from_uint8` convert to and from [T, H, W, 3]
uint8. Files are written to a temporary name in the destination folder and renamed over the target, so an
interrupted write never leaves a half-written file under the name asked for.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageSequence

from ._files import atomic_folder as _atomic_folder
from ._files import atomic_write as _atomic_write
from ._limits import LimitError, check, limit

from .errors import VideoError

__all__ = ["read_video", "write_video", "write_image", "frames_to_uint8", "frames_from_uint8", "to_rgb",
           "resize_frames"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
_PIL_ANIMATED = (".gif", ".webp")
_PYAV_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")
WRITE_SUFFIXES = _PIL_ANIMATED + _PYAV_SUFFIXES  # or a folder (no suffix) for PNG frames
_FRAME_NAME = "frame_{:06d}.png"
_FRAME_RE = re.compile(r"^frame_(\d{6})\.png$")


# --- conversions -------------------------------------------------------------------------------------------

def frames_to_uint8(frames: torch.Tensor) -> torch.Tensor:
    """[T, 3, H, W] in [-1, 1] -> uint8 [T, H, W, 3] (values outside [-1, 1] are clipped)."""
    frames = to_rgb(_check_frames(frames)).detach()
    out = torch.empty((frames.shape[0], *frames.shape[2:], 3), dtype=torch.uint8)
    for i in range(0, frames.shape[0], 64):  # in chunks: no full-size float temporaries
        part = frames[i:i + 64].float().cpu().clamp(-1, 1).add_(1).mul_(127.5).round_()
        out[i:i + 64] = part.to(torch.uint8).permute(0, 2, 3, 1)
    return out


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

class _Frames:
    """Collects decoded frames under the clip limits; 8-bit frames stay uint8 until the end."""

    def __init__(self, path: Path, max_frames: int | None):
        self.path, self.items = path, []
        self.cap = max_frames if max_frames else limit("FRAMES")
        self.explicit = bool(max_frames)
        self.per_frame = None

    @property
    def full(self) -> bool:
        return len(self.items) >= self.cap

    def check_size(self, w: int, h: int) -> None:
        check("FRAME_PIXELS", w * h, f"the pixels of one frame of {self.path} ({w}x{h})")
        if self.per_frame is None:
            self.per_frame = 3 * w * h

    def add(self, array: np.ndarray, repeat: int = 1) -> None:
        for _ in range(repeat):
            if self.full:
                if not self.explicit:
                    check("FRAMES", len(self.items) + 1, f"the frames of {self.path} (read fewer with --max-frames)")
                return
            if self.per_frame:
                n = len(self.items) + 1
                check("CLIP_ELEMENTS", n * self.per_frame, f"the values of {n} frames from {self.path} "
                      "(read fewer with max_frames / --max-frames, or smaller frames)")
            self.items.append(array)

    def tensor(self) -> torch.Tensor:
        if not self.items:
            raise VideoError(f"{self.path} has no frames")
        _check_same_size(self.items, self.path)
        if all(a.dtype == np.uint8 for a in self.items):
            t = torch.from_numpy(np.stack(self.items)).permute(0, 3, 1, 2)
            return t.float().div_(127.5).sub_(1)
        t = torch.from_numpy(np.stack([_unit(a) for a in self.items])).permute(0, 3, 1, 2)
        return t.mul_(2).sub_(1).contiguous()


def _unit(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float32) / 255.0 if a.dtype == np.uint8 else a


def read_video(path: str | os.PathLike, max_frames: int | None = None) -> tuple[torch.Tensor, float | None]:
    """Read a clip. Returns (frames [T, 3, H, W] in [-1, 1], fps or None when the source has no frame rate).

    `path` may be a folder of images (read in natural name order), an animated GIF/WebP, a single image, or
    a video file (.mp4, .mov, .mkv, .avi, .webm; needs PyAV: `pip install av`). Decoding stops after
    `max_frames` frames; 16-bit and floating-point images (PNG, TIFF) keep their range (16-bit / 65535,
    float taken as [0, 1]). Sizes are bounded (docs/security.md): more than DYNODE_MAX_FRAMES frames without
    max_frames, or frames beyond DYNODE_MAX_FRAME_PIXELS, raise LimitError. Unreadable files raise VideoError.
    """
    path = Path(path)
    if max_frames is not None and (isinstance(max_frames, bool) or not isinstance(max_frames, int) or max_frames < 1):
        raise ValueError(f"max_frames must be a positive integer or None, got {max_frames!r}")
    if not path.exists():
        raise FileNotFoundError(2, "no such file or folder", str(path))
    if not (path.is_dir() or path.is_file()):  # a FIFO or device would block or never end
        raise VideoError(f"{path} is not a regular file or folder")
    out = _Frames(path, max_frames)
    if path.is_dir():
        files = sorted((p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
                        and p.is_file()),
                       key=lambda p: [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", p.name)])
        if not files:
            raise VideoError(f"folder {path} has no images ({', '.join(IMAGE_SUFFIXES)})")
        for f in files:
            if out.full:
                out.add(None)  # raises when the folder holds more than the limit and no max_frames was given
                break
            with _open_image(f) as im:
                out.check_size(*im.size)
                out.add(_pixels(im, f))
        return out.tensor(), None
    suffix = path.suffix.lower()
    if suffix in _PYAV_SUFFIXES:
        return _read_pyav(path, out)
    with _open_image(path) as im:
        out.check_size(*im.size)
        comment = im.info.get("comment", b"")
        m = re.search(rb"fps=([0-9.]+)", comment if isinstance(comment, bytes) else str(comment).encode())
        try:
            comment_fps = float(m.group(1)) if m else None
        except ValueError:
            comment_fps = None
        if comment_fps is not None and not (0 < comment_fps <= limit("FPS")):
            comment_fps = None  # not written by us; fall back to the frame durations
        raw, durations = [], []
        try:
            for frame in ImageSequence.Iterator(im):
                if len(raw) >= out.cap:  # each frame gives at least one output frame
                    if not out.explicit:
                        check("FRAMES", len(raw) + 1, f"the frames of {path} (read fewer with --max-frames)")
                    break
                out.check_size(*frame.size)
                raw.append(_pixels(frame, path))
                durations.append(frame.info.get("duration") or im.info.get("duration") or 0)
        except (VideoError, LimitError):
            raise
        except (OSError, ValueError, EOFError, SyntaxError) as e:
            if not raw:
                raise VideoError(f"cannot decode {path}: {e}") from None
            warnings.warn(f"{path}: decoding stopped after {len(raw)} frames ({e}); using those", stacklevel=2)
    fps = None
    if len(raw) > 1 and all(d > 0 for d in durations):
        # GIF/WebP writers merge identical consecutive frames into one longer frame: expand them again, using
        # the frame rate `write_video` records in a GIF comment, else the shortest frame as one period.
        period = 1000.0 / comment_fps if comment_fps else float(min(durations))
        for a, d in zip(raw, durations):
            out.add(a, repeat=max(1, round(d / period)))
            if out.full and out.explicit:
                break
        fps = 1000.0 / period
    else:
        for a in raw:
            out.add(a)
    return out.tensor(), fps


def _open_image(path: Path) -> Image.Image:
    try:
        return Image.open(path)
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError) as e:  # PIL raises several types
        raise VideoError(f"cannot read {path} as an image, GIF, WebP or video: {e}") from None


def _pixels(im: Image.Image, path: Path) -> np.ndarray:
    """[H, W, 3] uint8 for 8-bit images; float32 in [0, 1] for 16-bit / 32-bit integer and float images."""
    try:
        if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
            a = np.asarray(im).astype(np.float32)
            if im.mode == "F":
                a = np.nan_to_num(a, nan=0.0, posinf=1.0, neginf=0.0)
            else:
                a = a / (65535.0 if im.mode.startswith("I;16") or a.max(initial=0) <= 65535 else 4294967295.0)
            return np.repeat(np.clip(a, 0, 1)[..., None], 3, axis=2)
        return np.asarray(_pil_rgb(im))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise VideoError(f"cannot decode {path}: {e}") from None


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


def _read_pyav(path: Path, out: "_Frames") -> tuple[torch.Tensor, float | None]:
    av = _require_av()
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError(f"{path} has no video stream")
            stream = container.streams.video[0]
            fps = float(stream.average_rate) if stream.average_rate else None
            if fps is not None and not (0 < fps <= limit("FPS")):
                fps = None
            out.check_size(stream.codec_context.width or 1, stream.codec_context.height or 1)
            for frame in container.decode(stream):
                if out.full:
                    out.add(None)  # raises when the clip is longer than the limit and no max_frames was given
                    break
                out.check_size(frame.width, frame.height)
                out.add(frame.to_ndarray(format="rgb24"))
    except VideoError:
        raise
    except (av.error.FFmpegError if hasattr(av, "error") else OSError, OSError, ValueError) as e:
        raise VideoError(f"cannot decode {path}: {e}") from None
    if not out.items:
        raise VideoError(f"{path} has no video frames")
    return out.tensor(), fps


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
    folder. The folder is written as a whole (a temp folder renamed into place): an existing folder may only
    hold DynODE frames, which are all replaced; a folder with other files is refused.
    """
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be a positive finite number, got {fps!r}")
    check("FPS", fps, "fps")
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
    duration = max(1, round(1000.0 / fps))
    if suffix == ".gif" and duration > 65535:
        raise ValueError(f"fps {fps:g} is too low for a GIF (longest frame 65.5 s): use fps >= 0.016")
    images = [Image.fromarray(p) for p in pixels]
    if suffix == ".gif":
        kw = dict(format="GIF", loop=0, duration=duration, optimize=False, disposal=1, comment=f"dynode fps={fps:g}")
    else:
        kw = dict(format="WEBP", loop=0, duration=duration, lossless=lossless, quality=quality, method=4)
    _atomic_write(path, lambda tmp: images[0].save(tmp, save_all=True, append_images=images[1:], **kw))
    return path


def _write_png_folder(folder: Path, pixels: np.ndarray) -> Path:
    def write(tmp: Path) -> None:
        for i, p in enumerate(pixels):
            Image.fromarray(p).save(tmp / _FRAME_NAME.format(i), format="PNG")
    _atomic_folder(folder, write, _FRAME_RE)
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
