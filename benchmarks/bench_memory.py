"""Peak memory of inversion per frame, measured, against the estimate `batch_size_for` sizes batches with.

Each measurement is a fresh subprocess (one thread) that builds a config-f generator of the given size with random
weights, inverts `batch` random frames for `--steps` steps in one batch and reports its peak resident memory
(`resource.getrusage(RUSAGE_SELF).ru_maxrss`); the per-frame cost is the slope between two batch sizes, so the
process's fixed memory (Python, torch, weights) drops out. `--plain` also measures the unfused synthesis path.

    python benchmarks/bench_memory.py [--sizes 256,1024] [--batches 1,3] [--steps 2] [--plain] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

_CHILD = r"""
import functools, resource, sys, time
import torch
torch.set_num_threads(1)
import dynode_core as dc
from dynode_core._memory import frame_bytes
res, batch, steps, plain = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
torch.manual_seed(0)
G = dc.Generator(res, conv_clamp=256.0).eval()
if plain:
    G.synthesis = functools.partial(G.synthesis, fused=False)
frames = torch.rand(batch, 3, res, res) * 2 - 1
before = resource.getrusage(resource.RUSAGE_SELF)
t = time.perf_counter()
dc.invert(G, frames, steps=steps, warm_start=False, batch_size=batch)
after = resource.getrusage(resource.RUSAGE_SELF)
print(after.ru_maxrss * 1024, time.perf_counter() - t, after.ru_minflt - before.ru_minflt,
      after.ru_stime - before.ru_stime, after.ru_utime - before.ru_utime, frame_bytes(G, "invert")[0])
"""


def measure(res: int, batch: int, steps: int, plain: bool) -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD, str(res), str(batch), str(steps), "1" if plain else "0"],
                         capture_output=True, text=True, check=True, env={"OMP_NUM_THREADS": "1", **_env()})
    rss, sec, faults, sys_s, user_s, est = out.stdout.split()
    return {"resolution": res, "batch": batch, "plain": plain, "peak_rss": int(rss), "seconds": float(sec),
            "minor_faults": int(faults), "system_s": float(sys_s), "user_s": float(user_s), "estimate": int(est)}


def _env() -> dict:
    import os
    return dict(os.environ)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="256,1024")
    ap.add_argument("--batches", default="1,3", help="two batch sizes; the slope between them is per frame")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--plain", action="store_true", help="also measure the unfused synthesis path")
    ap.add_argument("--json")
    args = ap.parse_args()
    b0, b1 = (int(b) for b in args.batches.split(","))
    rows = []
    for res in (int(s) for s in args.sizes.split(",")):
        for plain in ((False, True) if args.plain else (False,)):
            lo, hi = measure(res, b0, args.steps, plain), measure(res, b1, args.steps, plain)
            per = (hi["peak_rss"] - lo["peak_rss"]) / (b1 - b0)
            row = {"resolution": res, "plain": plain, "per_frame": per, "estimate": lo["estimate"],
                   "fixed": lo["peak_rss"] - b0 * per, "runs": [lo, hi]}
            rows.append(row)
            print(f"{res:5d} px {'plain' if plain else 'fused'}: {per / 2**30:.2f} GiB per frame measured, "
                  f"{row['estimate'] / 2**30:.2f} GiB estimated; fixed {row['fixed'] / 2**30:.2f} GiB; "
                  f"batch {b1}: {hi['seconds']:.1f} s, {hi['minor_faults']} page faults, "
                  f"{hi['system_s']:.1f} s system / {hi['user_s']:.1f} s user CPU")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
