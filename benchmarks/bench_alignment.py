"""Face alignment measured on real photos warped by known transforms (and on the cartoon renderer).

    python benchmarks/bench_alignment.py [--data ../shared/data]

For each real FFHQ-generator frame (256 px, already in FFHQ framing) and a few known similarities (scale 0.8-1.8,
turn -25..25 degrees, shifts), the photo is placed into a 560x480 canvas over a smooth random background and
aligned. Printed, in canvas pixels (largest distance over the crop's 4 corners and its middle):
  invariance  transform(canvas) vs T @ transform(photo)   (the detector's equivariance)
  recovery    transform(canvas) vs T                      (includes how far the photo's own FFHQ square is
                                                           from its frame: the MediaPipe recipe per photo)
plus the crop PSNR against the photo's own crop (inner 160 px), the round trip PSNR of paste(align(x).crops)
against x, whether pixels outside the paste mask stay bit-for-bit equal, the jitter of a still face with sensor
noise (std of the crop centre over 24 frames, px) and the lag of a steadily moving face.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import dynode_core as dc
from dynode_core import builtin
from dynode_core.builtin.scene import place_image, smooth_background
from dynode_core.metrics import psnr
from dynode_core.video import frames_from_uint8


def similarity(scale, angle, tx, ty) -> torch.Tensor:
    c, s = scale * math.cos(angle), scale * math.sin(angle)
    return torch.tensor([[c, -s, tx], [s, c, ty], [0, 0, 1.0]])


def corner_error(a, b, size) -> float:
    pts = torch.tensor([[0, size - 1, 0, size - 1, (size - 1) / 2], [0, 0, size - 1, size - 1, (size - 1) / 2],
                        [1, 1, 1, 1, 1.0]]).double()
    return float((a.double() @ pts - b.double() @ pts)[:2].norm(dim=0).max())


def centre(m, size):
    mid = torch.tensor([(size - 1) / 2] * 2)
    return m[..., :2, :2] @ mid + m[..., :2, 2]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", default=str(Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))
    args = p.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    files = sorted(Path(args.data).glob("talking_face_frame_*.png"))
    if not files:
        sys.exit(f"no talking_face_frame_*.png in {args.data}")
    transforms = [similarity(1.5, 0.3, 70, 50), similarity(0.8, -0.2, 200, 150), similarity(1.8, 0.44, 120, 10),
                  similarity(1.2, -0.44, 60, 140)]
    inv, rec, crop_psnr, rt_psnr, untouched = [], [], [], [], []
    t0 = time.perf_counter()
    for k, f in enumerate(files):
        img = frames_from_uint8(np.array(Image.open(f).convert("RGB"))[None])
        base = dc.align_faces(img, size=256)
        for j, T in enumerate(transforms):
            canvas = place_image(img, T, smooth_background(480, 560, 10 * k + j))
            a = dc.align_faces(canvas, size=256)
            inv.append(corner_error(a.transforms[0], T @ base.transforms[0], 256))
            rec.append(corner_error(a.transforms[0], T, 256))
            crop_psnr.append(float(psnr(a.crops[..., 48:208, 48:208], base.crops[..., 48:208, 48:208])))
            back = dc.paste_faces(canvas, a.crops, a)
            rt_psnr.append(float(psnr(back, canvas)))
            other = dc.paste_faces(canvas, -a.crops, a)
            changed = (other != canvas).any(1)[0]
            ys, xs = torch.nonzero(changed, as_tuple=True)
            c = centre(a.transforms[0], 256)
            radius = 256 * math.sqrt(abs(float(torch.det(a.transforms[0, :2, :2])))) * 0.5
            untouched.append(bool((torch.hypot(xs - c[0], ys - c[1]) < radius).all()))
    n = len(inv)

    def stat(v):
        return f"mean {statistics.mean(v):.2f}, median {statistics.median(v):.2f}, min {min(v):.2f}, max {max(v):.2f}"

    print(f"real photos: {len(files)} x {len(transforms)} transforms = {n} alignments, {time.perf_counter() - t0:.1f} s")
    print(f"  invariance error (px, canvas): {stat(inv)}")
    print(f"  recovery error   (px, canvas): {stat(rec)}")
    print(f"  crop PSNR vs the photo's own crop (inner 160 px): {stat(crop_psnr)} dB")
    print(f"  round trip PSNR paste(align(x).crops) vs x: {stat(rt_psnr)} dB")
    print(f"  changes only inside the crop's inscribed circle: {sum(untouched)}/{n}")

    img = frames_from_uint8(np.array(Image.open(files[0]).convert("RGB"))[None])
    T = similarity(1.2, 0.1, 120, 60)
    g = torch.Generator().manual_seed(0)
    still = place_image(img, T, smooth_background(480, 560, 99)).expand(24, -1, -1, -1)
    still = (still + 0.02 * torch.randn(still.shape, generator=g)).clamp(-1, 1)
    for sm in (0.0, 3.0):
        a = dc.align_faces(still, size=256, smoothing=sm)
        print(f"  still photo + noise, smoothing {sm:g}: crop-centre std {float(centre(a.transforms, 256).std(0).norm()):.3f} px, "
              f"scale std {float(torch.det(a.transforms[:, :2, :2]).sqrt().std() / torch.det(a.transforms[:, :2, :2]).sqrt().mean() * 100):.3f} %")
    moves = [similarity(1.2, 0.1, 60 + 8 * k, 40 + 4 * k) for k in range(24)]
    moving = torch.cat([place_image(img, m, smooth_background(480, 560, 99)) for m in moves])
    for sm in (0.0, 3.0):
        a = dc.align_faces(moving, size=256, smoothing=sm)
        rel = torch.stack([torch.linalg.inv(moves[k]) @ a.transforms[k] for k in range(24)])
        c = centre(rel, 256)
        print(f"  photo moving 8.9 px/frame, smoothing {sm:g}: crop centre in the photo's frame: std "
              f"{float(c.std(0).norm()):.3f} px, lag (first-to-last drift) {float((c[-4:].mean(0) - c[:4].mean(0)).norm()):.3f} px")

    f = builtin.random_factors(32, seed=5)
    f[:, builtin.FACTOR_NAMES.index("yaw")] = 0
    big, small = builtin.render_faces(f, size=256), builtin.render_faces(f, size=64)
    a = torch.cat([dc.align_faces(big[i:i + 1], size=64, framing="builtin", smoothing=0).crops for i in range(len(f))])
    print(f"cartoon faces (32, any tilt, no turn), 256 px -> built-in framing 64 px: PSNR vs the 64-px render "
          f"{stat([float(x) for x in psnr(a, small)])} dB")


if __name__ == "__main__":
    main()
