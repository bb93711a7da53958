"""A face video in, a face video out: align, invert, fit dynamics, sample at a higher frame rate, edit, decode,
paste back (`process_video`, behind `dynode video`; the demo runs the same stages on frames in memory).

Output frames are at factor x the source rate over the source's time span. A frame at a source frame's time
shows that frame with the face re-drawn from the dynamics at its transform. An in-between frame has no
source frame: its face is sampled from the dynamics at its own time and pasted at the interpolated transform
(`interpolate_transforms`), over the *nearest* source frame's background (ties to the earlier one). Nearest,
not a cross-fade, because a cross-fade ghosts whatever moves behind the face; a static background comes out
unchanged either way.
"""

from __future__ import annotations

import math
import os
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from .alignment import AlignedFaces, _crop_one, _framing, detect_faces, face_transforms, paste_one, smooth_tracks
from .decoding import Cancelled, decode
from .video import frames_from_uint8, frames_to_uint8

__all__ = ["process_video", "framing_for", "output_times", "reanimate", "source_background"]


def framing_for(G) -> str:
    """The framing a generator was trained on: "builtin" for the built-in cartoon generator (64 px, w_dim 128,
    10 ws), "ffhq" for everything else (StyleGAN2 face models are FFHQ-aligned)."""
    shape = (getattr(G, "resolution", None), getattr(G, "w_dim", None), getattr(G, "num_ws", None))
    return "builtin" if shape == (64, 128, 10) else "ffhq"


def output_times(times: torch.Tensor, fps: float, factor: int) -> torch.Tensor:
    """Output frame times [N]: every 1 / (factor x fps) seconds from the first source frame to the last."""
    t = torch.as_tensor(times, dtype=torch.float64)
    step = 1.0 / (factor * fps)
    n = int(math.floor(float(t[-1] - t[0]) / step + 1e-6)) + 1
    return (t[0] + torch.arange(n, dtype=torch.float64) * step).float()


def source_background(times: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Index [N] of the source frame whose background each output frame uses: the nearest in time."""
    t = torch.as_tensor(times, dtype=torch.float64)
    g = torch.as_tensor(grid, dtype=torch.float64)
    right = torch.searchsorted(t, g).clamp(0, len(t) - 1)
    left = (right - 1).clamp(min=0)
    take_right = (t[right] - g).abs() < (g - t[left]).abs() - 1e-9
    return torch.where(take_right, right, left)


def reanimate(G, dyn, faces: AlignedFaces, times: torch.Tensor, grid: torch.Tensor,
              source: Callable[[int], torch.Tensor], z0: torch.Tensor | None = None, seed: int | None = 0,
              chunk: int = 8, progress: Callable[[int, int], None] | None = None,
              cancel: Callable[[], bool] | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (output frames [n, 3, H, W], decoded crops [n, 3, S, S]) for `grid` in order, chunk by chunk.

    source(i) gives source frame i [3, H, W] in [-1, 1] (called in increasing order of i).
    """
    tr = faces.interpolate(times, grid)
    back = source_background(times, grid)
    total = len(grid)
    # One sample of the whole grid (codes are small): an SDE sampled chunk by chunk would draw a new path
    # for every chunk and jump at the chunk borders.
    path = dyn.sample(grid, z0=z0, seed=seed)
    done = 0
    for lo in range(0, total, chunk):
        if cancel is not None and cancel():
            raise Cancelled("video rendering cancelled")
        hi = min(total, lo + chunk)
        crops = decode(G, path[lo:hi]).cpu()
        frames = torch.stack([paste_one(source(int(back[k])), crops[k - lo], tr.transforms[k], faces.size,
                                        faces.framing) for k in range(lo, hi)])
        done = hi
        if progress is not None:
            progress(done, total)
        yield frames, crops


class _SourceFrames:
    """Source frame i, decoded again in order from the file (a small window kept)."""

    def __init__(self, path: Path, chunk: int = 16):
        from .video_stream import VideoReader

        self.reader = VideoReader(path)
        self.it = self.reader.chunks(chunk)
        self.base, self.buf = 0, np.zeros((0,))

    def __call__(self, i: int) -> torch.Tensor:
        while i >= self.base + len(self.buf):
            self.base += len(self.buf)
            self.buf, _ = next(self.it)
        if i < self.base:
            raise RuntimeError("source frames must be requested in increasing order")
        return frames_from_uint8(self.buf[i - self.base][None])[0]

    def close(self):
        self.reader.close()


def _no_stage(name: str):
    return nullcontext(None)


def process_video(src: str | os.PathLike, out: str | os.PathLike, G, encoder="auto", factor: int = 4,
                  edit: tuple[torch.Tensor, float] | None = None, kind: str = "ode", overwrite: bool = False,
                  invert_options: dict | None = None, fit_options: dict | None = None, framing: str | None = None,
                  max_frames: int | None = None, seed: int = 0,
                  stage: Callable[[str], object] | None = None, cancel: Callable[[], bool] | None = None,
                  log: Callable[[str], None] = lambda msg: None) -> dict:
    """Read `src`, re-draw its face through G's latent space at `factor` x its frame rate, write `out` (MP4).

    G: a generator (its resolution is the crop size; its framing from `framing_for`). encoder: as in
    `invert` ("auto", None for optimisation only, an encoder, or its name / path). edit: (direction
    [D] or [L, D], strength) applied to the first frame's code and carried by the dynamics. kind: "ode" or
    "sde" (or "cde"). stage(name) returns a context manager yielding a progress(done, total) callback (the
    CLI draws tqdm bars). Returns a summary dict (frame counts, fps, seconds per stage). `out` is written to a
    temporary name and renamed when complete; an existing `out` is refused unless `overwrite`.
    """
    from .dynamics import fit_dynamics
    from .editing import edit_initial
    from .inversion import invert
    from .video_stream import VideoError, VideoReader, VideoWriter

    src, out = Path(src), Path(out)
    if not isinstance(factor, int) or isinstance(factor, bool) or not 1 <= factor <= 16:
        raise ValueError(f"factor must be an integer from 1 to 16, got {factor!r}")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass overwrite=True (--overwrite) to replace it")
    if out.resolve() == src.resolve():
        raise ValueError("the output must not be the input file")
    stage = stage or _no_stage
    fr = _framing(framing or framing_for(G))
    size = int(G.resolution)
    seconds: dict[str, float] = {}

    @contextmanager
    def timed(name):
        log(f"[video] {name}")
        t0 = time.perf_counter()
        with stage(name) as cb:
            yield cb
        seconds[name] = round(time.perf_counter() - t0, 2)

    with VideoReader(src) as reader:
        fps, total, has_audio = reader.fps, reader.frames, reader.has_audio
        times_parts: list[np.ndarray] = []

        def frames_iter():
            for pix, t in reader.chunks(16, max_frames):
                times_parts.append(t)
                yield from pix

        with timed("find faces") as cb:
            squares, found = detect_faces(frames_iter(), progress=cb, cancel=cancel, total=total)
        frame_size = reader.size
        variable_rate = reader.variable_rate
    times = torch.from_numpy(np.concatenate(times_parts)).float()
    if len(times) < 2:
        raise VideoError(f"{src} has {len(times)} frame(s); at least 2 are needed to fit the motion")
    if not bool(found.any()):
        raise ValueError(f"no face was found in any of the {len(times)} frames of {src}")
    if not fps:
        fps = float((len(times) - 1) / max(float(times[-1] - times[0]), 1e-6))
    tracks = smooth_tracks(squares, found)
    transforms = face_transforms(tracks, size, fr)

    with timed("align") as cb:
        crops = []
        with VideoReader(src) as reader:
            for pix, _ in reader.chunks(16, max_frames):
                for p in frames_from_uint8(pix):
                    crops.append(_crop_one(p, transforms[len(crops)], size, fr).clamp(-1, 1))
                if cb:
                    cb(len(crops), len(times))
                if cancel is not None and cancel():
                    raise Cancelled("alignment cancelled")
        crops = torch.stack(crops)
    faces = AlignedFaces(crops, transforms, found, size, tuple(frame_size), fr, tracks.float())

    with timed("invert") as cb:
        clip = invert(G, crops, encoder=encoder, times=times, progress=cb, cancel=cancel, **(invert_options or {}))
        codes = clip.codes
    with timed(f"fit {kind} dynamics") as cb:
        dyn = fit_dynamics(clip, kind=kind, progress=cb, cancel=cancel, **(fit_options or {}))
    z0 = None
    if edit is not None:
        direction, strength = edit
        z0 = edit_initial(codes, direction, strength)

    grid = output_times(times, fps, factor)
    out_fps = fps * factor
    with timed("render and write") as cb:
        source = _SourceFrames(src)
        try:
            with VideoWriter(out, out_fps, audio_from=src if has_audio else None) as writer:
                for frames, _ in reanimate(G, dyn, faces, times, grid, source, z0=z0, seed=seed, progress=cb,
                                           cancel=cancel):
                    writer.write(frames_to_uint8(frames).numpy())
        finally:
            source.close()
    return {"input": str(src), "output": str(out), "frames_in": len(times), "frames_out": len(grid),
            "fps_in": fps, "fps_out": out_fps, "frame_size": list(frame_size), "faces_found": int(found.sum()),
            "variable_rate": variable_rate, "audio": has_audio, "framing": fr.name, "seconds": seconds}
