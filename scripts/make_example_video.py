"""Write the example input video the ComfyUI video workflow loads: the built-in moving scene (a talking cartoon
face drifting, turning and scaling over a textured background), with a quiet tone as its audio track.

    python scripts/make_example_video.py [OUT.mp4] [--overwrite]   # default comfy_nodes/assets/dynode_talking_face.mp4

An existing OUT is kept unless --overwrite is given; the video is written to a temporary name and renamed when
complete (`dynode_core._files.atomic_write`, as every file the project writes).
"""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from dynode_core._files import atomic_write
from dynode_core.builtin import scene_clip
from dynode_core.video import frames_to_uint8

FPS, SECONDS, SIZE = 8, 3.0, (144, 192)


ASSET = Path(__file__).resolve().parents[1] / "comfy_nodes" / "assets" / "dynode_talking_face.mp4"


def main() -> None:
    parser = argparse.ArgumentParser(description="Write the example input video of the ComfyUI video workflow.")
    parser.add_argument("out", nargs="?", type=Path, default=ASSET, help=f"output .mp4 (default: {ASSET})")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    args = parser.parse_args()
    out = args.out
    if out.suffix.lower() != ".mp4":
        parser.error(f"OUT must end in .mp4, got {out.name!r}")
    if out.exists() and not args.overwrite:
        parser.error(f"{out} exists; pass --overwrite to replace it")
    times = torch.arange(int(FPS * SECONDS)) / FPS
    pixels = frames_to_uint8(scene_clip(times, seed=0, size=SIZE)).numpy()
    rate = 16000
    t = np.arange(int(rate * SECONDS)) / rate
    tone = (0.08 * np.sin(2 * np.pi * 220 * t) * np.minimum(1, np.minimum(t, SECONDS - t) * 8)).astype(np.float32)

    def write(tmp: str) -> None:  # raw PyAV on purpose: a video stream plus a tone, not our writer
        with av.open(str(tmp), "w") as c:
            v = c.add_stream("libx264", rate=Fraction(FPS))
            v.width, v.height, v.pix_fmt = SIZE[1], SIZE[0], "yuv420p"
            v.options = {"crf": "18"}
            a = c.add_stream("aac", rate=rate)
            a.layout = "mono"
            for p in pixels:
                for packet in v.encode(av.VideoFrame.from_ndarray(p, format="rgb24")):
                    c.mux(packet)
            for packet in v.encode():
                c.mux(packet)
            frame = av.AudioFrame.from_ndarray(tone[None], format="fltp", layout="mono")
            frame.sample_rate, frame.pts = rate, 0
            for packet in list(a.encode(frame)) + list(a.encode()):
                c.mux(packet)

    atomic_write(out, write)
    print(f"wrote {out}: {len(pixels)} frames at {FPS} fps, {SIZE[1]}x{SIZE[0]}, {out.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
