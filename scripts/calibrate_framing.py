"""Measure where the FFHQ-recipe square (from MediaPipe landmarks) lands in faces already in a generator's framing.

    python scripts/calibrate_framing.py            # prints centre / half (fractions of the crop side) per framing

ffhq: the real FFHQ-generator frames in ../shared/data (256 px); builtin: rendered faces (256 px) with no head
turn or tilt, and the angle the recipe reads against the renderer's tilt. The means are the `FRAMINGS` values.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import dynode_core as dc
from dynode_core import builtin
from dynode_core.metrics import psnr
from dynode_core.video import frames_from_uint8, frames_to_uint8
from dynode_core.alignment import detect_faces
from dynode_core.builtin import FACTOR_NAMES, random_factors, render_faces


def summary(name: str, squares: torch.Tensor, side: int) -> None:
    sq = squares.numpy()
    f = sq.copy()
    f[:, [0, 1, 3]] = (f[:, [0, 1, 3]] + np.array([0.5, 0.5, 0])) / side  # pixel centres -> edge fractions
    f[:, 3] = sq[:, 3] / side
    print(f"{name}: n={len(f)} centre=({f[:, 0].mean():.4f}, {f[:, 1].mean():.4f}) half={f[:, 3].mean():.4f} "
          f"(sd {f[:, 0].std():.4f} {f[:, 1].std():.4f} {f[:, 3].std():.4f}) angle={np.degrees(f[:, 2]).mean():.2f} deg")


def main() -> None:
    torch.set_num_threads(1)
    data = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / ".." / "shared" / "data")
    files = sorted(data.glob("talking_face_frame_*.png"))
    if files:
        frames = frames_from_uint8(np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files]))
        for i in range(len(frames)):  # one at a time: the detector tracks, these are separate photos
            sq, found = detect_faces(frames[i:i + 1])
            summary(f"ffhq {files[i].name}", sq[found], frames.shape[-1])
        sq = torch.cat([detect_faces(frames[i:i + 1])[0] for i in range(len(frames))])
        summary("ffhq (mean)", sq[~torch.isnan(sq[:, 0])], frames.shape[-1])
    f = random_factors(48, seed=1)
    f[:, FACTOR_NAMES.index("yaw")] = 0
    f[:, FACTOR_NAMES.index("roll")] = 0
    sq = torch.cat([detect_faces(render_faces(f[i:i + 1], size=256))[0] for i in range(len(f))])
    summary("builtin, upright", sq[~torch.isnan(sq[:, 0])], 256)
    for roll in (-1.0, -0.5, 0.5, 1.0):
        g = f[:12].clone()
        g[:, FACTOR_NAMES.index("roll")] = roll
        sq = torch.cat([detect_faces(render_faces(g[i:i + 1], size=256))[0] for i in range(len(g))])
        summary(f"builtin roll {roll:+.1f} (renderer tilt {np.degrees(0.3 * roll):+.1f} deg)", sq[~torch.isnan(sq[:, 0])], 256)
    for yaw in (-0.75, 0.75):
        g = f[:12].clone()
        g[:, FACTOR_NAMES.index("yaw")] = yaw
        sq = torch.cat([detect_faces(render_faces(g[i:i + 1], size=256))[0] for i in range(len(g))])
        summary(f"builtin yaw {yaw:+.2f}", sq[~torch.isnan(sq[:, 0])], 256)


if __name__ == "__main__":
    main()
