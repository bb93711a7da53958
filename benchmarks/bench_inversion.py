"""Clip inversion (warm-started bisection passes) against inverting every frame on its own from the average
code with the same losses, on a 16-frame clip of the built-in generator's domain (`dc.builtin.render_clip`).

Both are measured in this run, in CPU seconds of this process (one thread), which other jobs on the
machine do not inflate the way they inflate wall time. The warm-started inversion runs once and gives a mean reconstruction PSNR;
the baseline runs with growing step budgets until its mean PSNR reaches that value, and the time it would
need is interpolated (linearly in PSNR) between the two budgets that bracket it. Two baselines:
  loop:    each frame inverted alone (batch of 1), the usual per-frame projector loop;
  batched: all frames optimised in one batch, each from the average code (same per-frame problem).

    python benchmarks/bench_inversion.py [--frames 16] [--space w+] [--steps 300] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import dynode_core as dc


def _run(fn):
    """-> (result, CPU seconds of this process). CPU time, not wall time: on a shared machine other jobs
    change the wall time of a run by 2-3x, but not the work it does (run with one thread, --threads 1)."""
    t = time.process_time()
    out = fn()
    return out, time.process_time() - t


def _baseline(G, frames, target, budgets, space, batched, seed):
    """Run budgets in order until the mean PSNR reaches `target`; return [(steps, seconds, mean psnr)]."""
    rows = []
    for b in budgets:
        if batched:
            res, sec = _run(lambda: dc.invert(G, frames, space=space, steps=b, warm_start=False, seed=seed,
                                              return_psnr=True))
            p = res.psnr
        else:
            out, sec = _run(lambda: [dc.invert(G, f[None], space=space, steps=b, seed=seed, return_psnr=True)
                                     for f in frames])
            p = torch.cat([r.psnr for r in out])
        rows.append((b, sec, float(p.mean())))
        print(f"  {'batched' if batched else 'loop':8s} {b:5d} steps/frame: {sec:7.1f} CPU s, mean PSNR {p.mean():.2f} dB")
        if p.mean() >= target:
            break
    return rows


def _time_to_reach(rows, target):
    """Seconds the baseline needs for `target` dB (interpolated); (value, is_lower_bound)."""
    if rows[-1][2] < target:
        return rows[-1][1], True
    for (b0, s0, p0), (b1, s1, p1) in zip([(0, 0.0, -1e9)] + rows[:-1], rows):
        if p1 >= target:
            if p0 < -1e8:
                return s1, False
            a = (target - p0) / max(p1 - p0, 1e-9)
            return s0 + a * (s1 - s0), False
    return rows[-1][1], False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--generator", default="builtin")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--fps", type=float, default=12.0, help="frame rate of the rendered clip")
    ap.add_argument("--space", choices=("w", "w+"), default="w+")
    ap.add_argument("--steps", type=int, default=300, help="anchor steps of the warm-started inversion")
    ap.add_argument("--warm-steps", type=int, default=None)
    ap.add_argument("--polish-steps", type=int, default=None)
    ap.add_argument("--max-budget", type=int, default=2400, help="largest per-frame baseline budget tried")
    ap.add_argument("--skip-batched", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    G = dc.load_generator(args.generator)
    times = torch.arange(args.frames) / args.fps
    frames = dc.builtin.render_clip(times, seed=args.seed, size=G.resolution)
    print(f"{args.frames} frames of dc.builtin.render_clip at {args.fps:g} fps, {args.space.upper()}, "
          f"{args.threads} thread(s)")

    ours, t_ours = _run(lambda: dc.invert(G, frames, space=args.space, steps=args.steps, warm_steps=args.warm_steps,
                                          polish_steps=args.polish_steps, seed=args.seed, return_psnr=True))
    target = float(ours.psnr.mean())
    print(f"  warm-started clip inversion: {t_ours:.1f} CPU s, mean PSNR {target:.2f} dB "
          f"(min {ours.psnr.min():.2f})")

    budgets, b = [], 100
    while b <= args.max_budget:
        budgets.append(b)
        b = int(b * 1.5)
    result = {"frames": args.frames, "space": args.space, "seconds_ours": t_ours, "psnr_ours": target}
    for batched in ([False] if args.skip_batched else [False, True]):
        name = "batched" if batched else "loop"
        rows = _baseline(G, frames, target, budgets, args.space, batched, args.seed)
        sec, lower = _time_to_reach(rows, target)
        ratio = sec / t_ours
        result[f"baseline_{name}"] = {"rows": rows, "seconds_to_reach": sec, "speedup": ratio,
                                      "never_reached": lower}
        print(f"speedup vs {name} baseline: {'>' if lower else ''}{ratio:.1f}x "
              f"({sec:.1f} vs {t_ours:.1f} CPU s for {target:.2f} dB)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
