"""Thread policy: wall time of the default (`threads=None`) against every explicit thread count, per workload.

Each run is a fresh process with torch's own default thread pool (nothing pinned by the environment), so the
default is what a user gets. Rounds interleave the settings (default, 1, 2, ... threads), so load from other
jobs hits them alike; the figure per workload is the median over rounds of default / best count, where the best
count is the one with the least median time: <= 1.1 means the default is within 10 % of the best setting on this
machine as it is now. The policy reads the machine's load at the start of each call, so on a busy machine its
default for large images is fewer threads than on an idle one.

Workloads: `demo` (dynode demo --quick on the built-in 64-px generator), `invert64` (16 frames of the built-in
domain, 60 anchor steps), `decode256` (8 frames of a random config-f 256-px generator, batch 8).

    python benchmarks/bench_threads.py [--workloads demo,invert64,decode256] [--counts 1,2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

_CHILD = r"""
import sys, time, tempfile
import torch
import dynode_core as dc
work, threads = sys.argv[1], (None if sys.argv[2] == "auto" else int(sys.argv[2]))
if work == "demo":
    from dynode_core.builtin.demo import run_demo
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        run_demo(d, quick=True, log=lambda m: None, threads=threads)
elif work == "invert64":
    G = dc.load_generator("builtin")
    from dynode_core.builtin import render_clip
    frames = render_clip(torch.arange(16) / 12.0, seed=0, size=G.resolution)
    t = time.perf_counter()
    dc.invert(G, frames, steps=60, warm_steps=8, threads=threads)
elif work == "decode256":
    torch.manual_seed(0)
    G = dc.Generator(256, conv_clamp=256.0).eval()
    codes = torch.randn(8, G.num_ws, G.w_dim)
    t = time.perf_counter()
    dc.decode(G, codes, batch_size=8, threads=threads)
else:
    raise SystemExit(f"unknown workload {work}")
print(time.perf_counter() - t, torch.get_num_threads())
"""


def run(work: str, threads: str) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "DYNODE_THREADS")}
    out = subprocess.run([sys.executable, "-c", _CHILD, work, threads], capture_output=True, text=True, env=env,
                         cwd=tempfile.gettempdir())
    if out.returncode:
        raise RuntimeError(f"{work} threads={threads} failed:\n{out.stderr[-2000:]}")
    return float(out.stdout.split()[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workloads", default="demo,invert64,decode256")
    ap.add_argument("--counts", default=None, help="explicit counts to compare (default 1..cores)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json")
    args = ap.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    counts = args.counts.split(",") if args.counts else [str(n) for n in range(1, cores + 1)]
    settings = ["auto"] + counts
    rows = []
    for work in args.workloads.split(","):
        times: dict[str, list[float]] = {s: [] for s in settings}
        for _ in range(args.rounds):
            for s in settings:
                times[s].append(run(work, s))
        med = {s: statistics.median(v) for s, v in times.items()}
        best = min(counts, key=lambda s: med[s])
        ratio = statistics.median(a / b for a, b in zip(times["auto"], times[best]))
        rows.append({"workload": work, "seconds": times, "best": best, "default_vs_best": ratio,
                     "load_average": os.getloadavg()[0]})
        print(f"{work:10s} " + "  ".join(f"{s}: {med[s]:.1f} s" for s in settings)
              + f"   default/best ({best} threads) {ratio:.2f}   load {os.getloadavg()[0]:.1f} on {cores} cores")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
