"""Latent dynamics as a viewer sees them: decoded frames of built-in clips against their ground truth.

Every clip is `talking_clip(t, seed)` (3 s of a built-in cartoon face talking, blinking and turning); its
keyframe codes are the factor encoder's codes of the TRUE factors at the keyframe times (so inversion error
plays no part), W codes [T, 1, 512]. Paths are sampled at 16 fps, decoded by the built-in generator and
compared with `render_clip` (the renderer's ground truth) by PSNR, averaged over the frames scored:

  interpolation  keyframes at 2/s and 3/s over 0..3 s, and 8 irregular ones (both ends and 6 random frames of
                 the 4/s grid, drawn per clip); the in-between frames; gain in dB over linear
                 interpolation of the codes (and a natural cubic spline's gain as a reference); "<kind>
                 spline" is the same model with between="spline", "<kind> flow chosen" 1 where
                 between="auto" chose the learned flow's bridges
  extrapolation  keyframes at 4/s over 0..3 s; the frames 0.125, 0.25, 0.375, 0.5 s past the last one; gain
                 in dB over the best of {hold the last keyframe, the mean keyframe code} per clip and horizon
  SDE            keyframes at 2/s: mean frame-to-frame change of decoded samples (4 seeds) divided by the
                 ODE path's and by the ground truth's; coverage = share of the true codes of the in-between
                 frames inside the spread (min..max) of 32 samples, in code values and basis coordinates

Clip seeds: --seeds (default 100..103, held out: the methods were tuned on seeds 0..3). Fit seconds of every
fit are printed. One thread.

    nice -n 15 python benchmarks/bench_dynamics_pixels.py            # 4 clips
    nice -n 15 python benchmarks/bench_dynamics_pixels.py --full     # 8 clips
    python benchmarks/bench_dynamics_pixels.py --seeds 0 1 2 3      # the tuning clips
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import dynode_core as dc  # noqa: E402
from dynode_core.builtin import load_factor_encoder, render_clip, talking_clip  # noqa: E402
from dynode_core.dynamics._interp import TensionSpline, locate  # noqa: E402
from dynode_core.metrics import psnr  # noqa: E402

FPS, DURATION = 16, 3.0
HORIZONS = (0.125, 0.25, 0.375, 0.5)


def linear(t, z, q):
    left, right, a = locate(t.double(), q.double())
    return torch.lerp(z[left], z[right], a.float()[:, None, None])


def cubic(t, z, q):
    w = TensionSpline((t - t[0]).double(), 0.0).weights((q - t[0]).double()).float()
    return (w @ z.flatten(1)).reshape(len(q), *z.shape[1:])


def flicker(frames):
    return float((frames[1:] - frames[:-1]).abs().mean())


class Clip:
    def __init__(self, seed, G, E):
        self.seed, self.G, self.E = seed, G, E

    def codes(self, t):
        with torch.no_grad():
            return self.E(talking_clip(t, self.seed))[:, None]

    def truth(self, t):
        return render_clip(t, seed=self.seed, size=self.G.resolution)

    def score(self, codes, truth):
        """mean PSNR [dB] of decoded codes [N, 1, D] against truth frames [N, 3, H, W]"""
        return psnr(dc.decode(self.G, codes), truth)


def fit(t, z, fit_seconds, **options):
    start, cpu = time.perf_counter(), time.process_time()
    dyn = dc.fit_dynamics(t, z, **options)
    fit_seconds.append((options.get("kind", "ode"), len(t), time.perf_counter() - start, time.process_time() - cpu))
    return dyn


def regular_keyframes(rate):
    """Times of keyframes at `rate` per second over the clip, both ends included."""
    return torch.arange(int(DURATION * rate) + 1, dtype=torch.float32) / rate


def irregular_keyframes(seed, rate=4, keep=8):
    """Times [keep] of `keep` keyframes of the `rate`/s grid over the clip: both ends and a random subset
    (seeded by the clip) of the frames between, as when frames were dropped or picked by hand."""
    full = regular_keyframes(rate)
    inner = torch.randperm(len(full) - 2, generator=torch.Generator().manual_seed(seed))[:keep - 2] + 1
    return torch.cat([full[:1], full[inner.sort().values], full[-1:]])


def interpolation(clip, key_t, fit_seconds, kinds):
    grid = torch.arange(int(DURATION * FPS) + 1, dtype=torch.float32) / FPS
    between = (grid[:, None] - key_t[None]).abs().min(1).values > 1e-6
    q = grid[between]
    z = clip.codes(key_t)
    truth = clip.truth(q)
    base = clip.score(linear(key_t, z, q), truth)
    out = {"cubic": float((clip.score(cubic(key_t, z, q), truth) - base).mean())}
    for kind in kinds:
        dyn = fit(key_t, z, fit_seconds, kind=kind)
        out[kind] = float((clip.score(dyn.sample(q, seed=0), truth) - base).mean())
        # the same model with the keyframe spline between keyframes (the path before option `between`)
        chosen, dyn.config["between"] = dyn.config["between"], "spline"
        out[f"{kind} spline"] = float((clip.score(dyn.sample(q, seed=0), truth) - base).mean())
        out[f"{kind} flow chosen"] = float(chosen == "flow")
    out["truth codes"] = float((clip.score(clip.codes(q), truth) - base).mean())
    return out


def extrapolation(clip, fit_seconds, kinds, rate=4):
    key_t = regular_keyframes(rate)
    q = key_t[-1] + torch.tensor(HORIZONS)
    z = clip.codes(key_t)
    truth = clip.truth(q)
    hold = clip.score(z[-1:].expand(len(q), -1, -1), truth)
    mean = clip.score(z.mean(0, keepdim=True).expand(len(q), -1, -1), truth)
    best = torch.maximum(hold, mean)
    out = {"hold last": (hold - best).tolist(), "mean code": (mean - best).tolist()}
    for kind in kinds:
        dyn = fit(key_t, z, fit_seconds, kind=kind)
        out[kind] = (clip.score(dyn.sample(q, seed=0), truth) - best).tolist()
    return out


def sde_figures(clip, fit_seconds, rate=2, samples=32, decoded=4):
    key_t = regular_keyframes(rate)
    grid = torch.arange(int(DURATION * FPS) + 1, dtype=torch.float32) / FPS
    between = (grid[:, None] - key_t[None]).abs().min(1).values > 1e-6
    z = clip.codes(key_t)
    ode = fit(key_t, z, fit_seconds, kind="ode")
    sde = fit(key_t, z, fit_seconds, kind="sde")
    f_ode = flicker(dc.decode(clip.G, ode.sample(grid)))
    f_truth = flicker(clip.truth(grid))
    f_sde = sum(flicker(dc.decode(clip.G, sde.sample(grid, seed=s))) for s in range(decoded)) / decoded
    paths = torch.stack([sde.sample(grid[between], seed=s).flatten(1) for s in range(samples)])
    true = clip.codes(grid[between]).flatten(1)
    inside = ((true >= paths.amin(0)) & (true <= paths.amax(0))).float().mean()
    enc = sde.basis.encode
    yp, yt = torch.stack([enc(p) for p in paths]), enc(true)
    inside_basis = ((yt >= yp.amin(0)) & (yt <= yp.amax(0))).float().mean()
    return {"flicker / ode": f_sde / f_ode, "flicker / truth": f_sde / f_truth, "ode / truth": f_ode / f_truth,
            "coverage": float(inside), "coverage basis": float(inside_basis)}


def mean(rows):
    return sum(rows) / len(rows)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=None, help="clip seeds (default 100..103)")
    ap.add_argument("--full", action="store_true", help="8 held-out clips, and the CDE too")
    ap.add_argument("--no-sde", action="store_true", help="skip the SDE section")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    seeds = args.seeds or (list(range(100, 108)) if args.full else list(range(100, 104)))
    kinds = ("ode", "sde", "cde") if args.full else ("ode",)
    G, E = dc.load_generator("builtin"), load_factor_encoder()
    fit_seconds: list = []
    t_all = time.perf_counter()
    print(f"# DynODE pixel-space dynamics benchmark: clips {seeds}, {FPS} fps, {DURATION:g} s, torch "
          f"{torch.__version__}, {torch.get_num_threads()} thread(s)")
    keyframings = [(f"keyframes at {r}/s", lambda s, r=r: regular_keyframes(r)) for r in (2, 3)]
    keyframings.append(("8 irregular keyframes (both ends and 6 random frames of the 4/s grid, per clip)",
                        irregular_keyframes))
    for what, keyframes in keyframings:
        rows = {s: interpolation(Clip(s, G, E), keyframes(s), fit_seconds, kinds) for s in seeds}
        names = list(next(iter(rows.values())))
        print(f"\n### interpolation, {what}: PSNR gain over linear [dB] of the in-between frames")
        print("| clip | " + " | ".join(names) + " |\n|---|" + "---:|" * len(names))
        for s, r in rows.items():
            print(f"| {s} | " + " | ".join(f"{r[n]:+.3f}" for n in names) + " |")
        print("| mean | " + " | ".join(f"{mean([r[n] for r in rows.values()]):+.3f}" for n in names) + " |")
        print("| worst | " + " | ".join(f"{min(r[n] for r in rows.values()):+.3f}" for n in names) + " |")
    rows = {s: extrapolation(Clip(s, G, E), fit_seconds, kinds) for s in seeds}
    print("\n### extrapolation past the last keyframe (keyframes at 4/s): PSNR minus the best of {hold last, "
          "mean code} [dB]")
    print("| method | " + " | ".join(f"+{h:g} s mean / worst" for h in HORIZONS) + " |\n|---|"
          + "---:|" * len(HORIZONS))
    for name in next(iter(rows.values())):
        cells = []
        for i in range(len(HORIZONS)):
            v = [r[name][i] for r in rows.values()]
            cells.append(f"{mean(v):+.2f} / {min(v):+.2f}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    if not args.no_sde:
        rows = {s: sde_figures(Clip(s, G, E), fit_seconds) for s in seeds}
        names = list(next(iter(rows.values())))
        print("\n### SDE (keyframes at 2/s, 16 fps): flicker = mean frame-to-frame change of decoded frames; "
              "coverage of the true in-between codes by 32 samples")
        print("| clip | " + " | ".join(names) + " |\n|---|" + "---:|" * len(names))
        for s, r in rows.items():
            print(f"| {s} | " + " | ".join(f"{r[n]:.3f}" for n in names) + " |")
        print("| mean | " + " | ".join(f"{mean([r[n] for r in rows.values()]):.3f}" for n in names) + " |")
    print("\n### fit seconds (kind, keyframes): wall mean [max], CPU mean [max]")
    groups: dict = {}
    for kind, n, sec, cpu in fit_seconds:
        groups.setdefault((kind, n), []).append((sec, cpu))
    for (kind, n), v in sorted(groups.items()):
        w, c = [x[0] for x in v], [x[1] for x in v]
        print(f"| {kind} | T = {n} | {mean(w):.2f} [{max(w):.2f}] | {mean(c):.2f} [{max(c):.2f}] |")
    print(f"\ntotal {time.perf_counter() - t_all:.0f} s")


if __name__ == "__main__":
    main()
