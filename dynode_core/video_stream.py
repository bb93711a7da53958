"""Video files through PyAV, streamed: read frames in chunks with their timestamps, write H.264 MP4 with the
source's audio track. A long or large video never has to fit in memory as floats.

`VideoReader(path)`: `.fps` (average rate), `.size` (H, W), `.frames` (count from the container, may be an
estimate), `.has_audio`, `.chunks(n)` -> (uint8 [n, H, W, 3], times [n] seconds from the first frame).
`VideoWriter(path, fps, audio_from=...)`: context manager, `.write(uint8 [n, H, W, 3] or frames in [-1, 1])`;
written to a temporary name and renamed on success, deleted on error or Ctrl-C.
"""

from __future__ import annotations

import os
import warnings
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

__all__ = ["VideoError", "VideoReader", "VideoWriter", "probe_video"]

from ._limits import check
from .video import VideoError


def _av():
    try:
        import av
    except ImportError as e:  # PyAV is a regular dependency; this only happens in a broken install
        raise ImportError("reading and writing video files needs PyAV: pip install av") from e
    return av


class VideoReader:
    """Frames of a video file, decoded in chunks. Raises VideoError for files that are not videos, videos with
    no frames, or frames whose size changes part-way (DynODE needs one frame size per clip)."""

    def __init__(self, path: str | os.PathLike):
        av = _av()
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no such video file: {self.path}")
        try:
            self._container = av.open(str(self.path))
        except (av.FFmpegError, UnicodeDecodeError, ValueError) as e:
            raise VideoError(f"{self.path} is not a video file PyAV/FFmpeg can read ({e})") from None
        if not self._container.streams.video:
            self._container.close()
            raise VideoError(f"{self.path} has no video stream")
        self._stream = self._container.streams.video[0]
        st = self._stream
        rate = st.average_rate or st.guessed_rate or st.base_rate
        self.fps = float(rate) if rate else None
        self.size = (int(st.codec_context.height or 0), int(st.codec_context.width or 0))
        self.frames = int(st.frames or 0) or None
        if self.frames is None and st.duration and st.time_base and self.fps:
            self.frames = max(1, round(float(st.duration * st.time_base) * self.fps))
        self.has_audio = bool(self._container.streams.audio)
        self.variable_rate = False

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def chunks(self, n: int = 32, max_frames: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (uint8 [k, H, W, 3], times [k] float64 seconds, the first frame at 0), k <= n."""
        av = _av()
        self._container.seek(0)
        buf, times, count, t0, size, last = [], [], 0, None, None, 0.0
        steps: list[float] = []
        try:
            for frame in self._container.decode(self._stream):
                if count == 0:  # bounds before decoding (docs/security.md)
                    check("FRAME_PIXELS", frame.width * frame.height, f"the pixels of a frame of {self.path}")
                if not max_frames:
                    check("FRAMES", count + 1, f"the frames of {self.path} (read fewer with max_frames / --max-frames)")
                img = frame.to_ndarray(format="rgb24")
                if size is None:
                    size = img.shape[:2]
                    self.size = size
                elif img.shape[:2] != size:
                    raise VideoError(f"{self.path}: the frame size changes from {size[1]}x{size[0]} to "
                                     f"{img.shape[1]}x{img.shape[0]} at frame {count}; split the video where the "
                                     f"size changes or rescale it to one size first (e.g. ffmpeg -vf scale=W:H)")
                t = float(frame.time) if frame.time is not None else count / (self.fps or 25.0)
                t0 = t if t0 is None else t0
                if count:
                    steps.append(t - last)
                last = t
                buf.append(img)
                times.append(t - t0)
                count += 1
                if len(buf) == n or (max_frames and count >= max_frames):
                    yield np.stack(buf), np.array(times)
                    buf, times = [], []
                if max_frames and count >= max_frames:
                    break
        except av.FFmpegError as e:
            raise VideoError(f"{self.path}: the video could not be decoded after {count} frame(s) ({e})") from None
        if buf:
            yield np.stack(buf), np.array(times)
        if count == 0:
            raise VideoError(f"{self.path} has no video frames")
        if len(steps) >= 2:
            st = np.array(steps)
            med = float(np.median(st))
            if med > 0 and (st.max() - st.min()) > 0.25 * med:
                if not self.variable_rate:
                    warnings.warn(f"{self.path} has a variable frame rate (frame steps {st.min() * 1000:.1f}-"
                                  f"{st.max() * 1000:.1f} ms): frames are used at their own timestamps",
                                  stacklevel=2)
                self.variable_rate = True
            if not self.fps and med > 0:
                self.fps = 1.0 / med

    def read(self, max_frames: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """All frames at once: (uint8 [T, H, W, 3], times [T])."""
        parts = list(self.chunks(64, max_frames))
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def probe_video(path: str | os.PathLike) -> dict:
    """fps, size (H, W), frame count (None if unknown) and whether there is audio, without decoding."""
    with VideoReader(path) as r:
        return {"fps": r.fps, "size": r.size, "frames": r.frames, "has_audio": r.has_audio}


class VideoWriter:
    """Write an H.264 (yuv420p) MP4, or another container PyAV knows from the suffix, frame by frame.

    Odd sizes are padded by one edge pixel (yuv420p needs even sizes). `audio_from`: a video file whose audio
    track is copied over (packets remuxed, not re-encoded; dropped with a warning if the container refuses
    the codec). The file appears under its name only when the writer closes without an error.
    """

    _FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".avi": "avi", ".webm": "webm"}

    def __init__(self, path: str | os.PathLike, fps: float, audio_from: str | os.PathLike | None = None,
                 crf: int = 18):
        if not (fps and fps > 0):
            raise ValueError(f"fps must be positive, got {fps!r}")
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in self._FORMATS:
            raise ValueError(f"unsupported video suffix {suffix!r}: use one of {', '.join(self._FORMATS)}")
        self.fps, self.crf, self.audio_from = fps, crf, audio_from
        self._suffix = suffix
        self._tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp{suffix}")
        self._container = None
        self._stream = None
        self.frames = 0

    def __enter__(self) -> "VideoWriter":
        av = _av()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(self._tmp), mode="w", format=self._FORMATS[self._suffix])
        self._audio = None
        if self.audio_from is not None:
            self._add_audio()
        return self

    def _open_stream(self, h: int, w: int) -> None:
        codec = "libvpx-vp9" if self._suffix == ".webm" else "libx264"
        st = self._container.add_stream(codec, rate=Fraction(self.fps).limit_denominator(1001))
        st.width, st.height, st.pix_fmt = w + w % 2, h + h % 2, "yuv420p"
        if codec == "libx264":
            st.options = {"crf": str(self.crf), "preset": "medium"}
        self._stream, self._hw = st, (h, w)

    def write(self, frames) -> None:
        """frames: uint8 [n, H, W, 3] (numpy or torch), or float [n, 3, H, W] in [-1, 1]."""
        av = _av()
        if isinstance(frames, torch.Tensor) and frames.dtype != torch.uint8:
            from .video import frames_to_uint8
            frames = frames_to_uint8(frames)
        pix = np.asarray(frames.cpu() if isinstance(frames, torch.Tensor) else frames)
        if pix.ndim == 3:
            pix = pix[None]
        if self._stream is None:
            self._open_stream(*pix.shape[1:3])
        if pix.shape[1:3] != self._hw:
            raise ValueError(f"frame size changed from {self._hw} to {pix.shape[1:3]} while writing {self.path}")
        h, w = self._hw
        if h % 2 or w % 2:
            pix = np.pad(pix, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        for p in pix:
            for packet in self._stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(p), format="rgb24")):
                self._container.mux(packet)
            self.frames += 1

    def _add_audio(self) -> None:
        """Add the source's audio stream before anything is muxed (the header lists every stream)."""
        av = _av()
        self._audio = None
        try:
            src = av.open(str(self.audio_from))
        except (av.FFmpegError, OSError):
            return
        if not src.streams.audio:
            src.close()
            return
        a_in = src.streams.audio[0]
        try:
            add = getattr(self._container, "add_stream_from_template", None)
            a_out = add(a_in) if add else self._container.add_stream(template=a_in)
        except (ValueError, av.FFmpegError) as e:
            src.close()
            warnings.warn(f"the audio track ({a_in.codec_context.name}) cannot go into {self._suffix}; "
                          f"it was dropped ({e})", stacklevel=3)
            return
        self._audio = (src, a_in, a_out)

    def _copy_audio(self) -> None:
        if not self._audio:
            return
        src, a_in, a_out = self._audio
        for packet in src.demux(a_in):
            if packet.dts is None:
                continue
            packet.stream = a_out
            self._container.mux(packet)

    def __exit__(self, exc_type, exc, tb) -> None:
        ok = exc_type is None
        try:
            if ok:
                if self._stream is None:
                    raise ValueError(f"no frames were written to {self.path}")
                for packet in self._stream.encode():
                    self._container.mux(packet)
                self._copy_audio()
        except BaseException:
            ok = False
            raise
        finally:
            try:
                self._container.close()
                if self._audio:
                    self._audio[0].close()
            finally:
                if ok:
                    os.replace(self._tmp, self.path)
                else:
                    self._tmp.unlink(missing_ok=True)
