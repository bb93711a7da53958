"""Latent dynamics benchmark: held-out MSE and fit time of every kind against simple baselines, in one run.

Data: ../shared/data/talking_face_wplus.safetensors (11 real W+ codes [11, 18, 512] of a talking-head clip,
times 0..10). Every protocol trains on some frames and predicts the others:

  interpolation  even->odd (0,2,..,10 -> 1,3,..,9) and three irregular spacings, plus 16 random splits
                 (summarised by their geometric mean) and 200 more for the keyframe path alone (which does not
                 depend on the learned field), on the clip and on the clip played backwards; ratios are against
                 linear interpolation of the codes
  extrapolation  0..7 -> 8..10, 0..5 -> 6..8 and, backwards, 3..10 -> 0..2, then from every start and end
                 (train 0..k or 10-k..10 for k = 4..8, predict up to 3 frames beyond); ratios against holding
                 the nearest observed frame (the last one, or the first one backwards)

Baselines: linear interpolation, a natural cubic spline, the nearest frame / hold, and the original DynODE
recipe re-implemented (a 5-layer MLP velocity field on the whole 9216-d code, output normalised to unit norm,
random 5-frame subsets, dopri5, Adam) trained for a fixed wall-clock budget (--budget, 60 s) on even->odd and
0..7 -> 8..10 only. The SDE is also scored by how often held-out code values fall inside the spread
(min..max) of 32 samples. A synthetic section repeats the main protocols on a smooth motion (a damped
rotation plus a slow drift, embedded in [11, 18, 512] with small noise).

    nice -n 15 python benchmarks/bench_dynamics.py            # ~15 minutes on 2 CPU cores
    python benchmarks/bench_dynamics.py --quick               # a smoke run (fewer protocols, 10 s budget)
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import dynode_core as dc  # noqa: E402
from dynode_core.dynamics._interp import TensionSpline  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "talking_face_wplus.safetensors"


# ------------------------------------------------------------------------------------------------ baselines


def linear(t, z, q):
    """Piecewise-linear interpolation of z [T, F] at q, held constant outside."""
    q = q.clamp(t[0], t[-1])
    i = torch.searchsorted(t, q, right=True).clamp(1, len(t) - 1)
    a = ((q - t[i - 1]) / (t[i] - t[i - 1]))[:, None]
    return z[i - 1] + a * (z[i] - z[i - 1])


def cubic(t, z, q):
    """Natural cubic spline (a spline under zero tension), held constant outside."""
    return TensionSpline((t - t[0]).double(), 0.0).weights((q - t[0]).double()).float() @ z


def nearest(t, z, q):
    return z[(q[:, None] - t[None]).abs().argmin(1)]


class _RecipeField(torch.nn.Module):
    """The original recipe's velocity: a 5-layer MLP whose output is normalised to unit norm."""

    def __init__(self, dim, hidden=512):
        super().__init__()
        layers, d = [], dim
        for _ in range(4):
            layers += [torch.nn.Linear(d, hidden), torch.nn.LeakyReLU(0.2)]
            d = hidden
        layers.append(torch.nn.Linear(d, dim))
        self.net = torch.nn.Sequential(*layers)
        self.nfe = 0

    def forward(self, t, z):
        self.nfe += 1
        v = self.net(z)
        return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-8)


def original_recipe(t, z, budget, seed=0):
    """Train for `budget` seconds; returns (predict(q) -> [N, F], iterations, mean NFE per iteration).

    Time is measured in units of the clip's mean speed (path length / duration of the training frames), so that
    a unit-norm velocity can cover the clip at all; the path starts at the first frame (initial-value model).
    """
    from torchdiffeq import odeint

    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    speed = float((z[1:] - z[:-1]).norm(dim=1).sum() / (t[-1] - t[0]))
    s = (t - t[0]) * speed
    field = _RecipeField(z.shape[1])
    opt = torch.optim.Adam(field.parameters(), lr=1e-4)
    start, iters, nfe = time.perf_counter(), 0, 0
    while time.perf_counter() - start < budget:
        idx = torch.randperm(len(t), generator=g)[:5].sort().values
        field.nfe = 0
        pred = odeint(field, z[idx[0]][None], s[idx], method="dopri5", rtol=1e-5, atol=1e-6)[:, 0]
        loss = ((pred - z[idx]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        iters, nfe = iters + 1, nfe + field.nfe

    def predict(q):
        with torch.no_grad():
            sq = (q - t[0]) * speed
            order = torch.argsort(sq)
            grid = torch.cat([s[:1], sq[order]])
            out = odeint(field, z[:1], grid, method="dopri5", rtol=1e-5, atol=1e-6)[1:, 0]
            return out[torch.argsort(order)]

    return predict, iters, nfe / max(iters, 1)


# ------------------------------------------------------------------------------------------------ protocols


def protocols(n_random, seed=0):
    interp = {
        "even->odd": ([0, 2, 4, 6, 8, 10], [1, 3, 5, 7, 9]),
        "irregular A": ([0, 1, 3, 6, 10], [2, 4, 5, 7, 8, 9]),
        "irregular B": ([0, 2, 3, 7, 10], [1, 4, 5, 6, 8, 9]),
        "irregular C": ([0, 4, 5, 9, 10], [1, 2, 3, 6, 7, 8]),
    }
    g = torch.Generator().manual_seed(seed)
    randoms = {}
    for r in range(n_random):
        m = int(torch.randint(3, 7, (1,), generator=g))
        mid = (torch.randperm(9, generator=g)[:m] + 1).tolist()
        train = sorted([0, 10] + mid)
        randoms[f"random {r}"] = (train, [i for i in range(11) if i not in train])
    extrap = {
        "0..7 -> 8..10": (list(range(8)), [8, 9, 10]),
        "0..5 -> 6..8": (list(range(6)), [6, 7, 8]),
        "3..10 -> 0..2": (list(range(3, 11)), [0, 1, 2]),
    }
    more_extrap = {}  # every start and end of the clip, 5..9 training frames, up to 3 predicted
    for k in range(4, 9):
        more_extrap[f"0..{k} -> {k + 1}.."] = (list(range(k + 1)), list(range(k + 1, min(11, k + 4))))
        more_extrap[f"{10 - k}..10 -> ..{9 - k}"] = (list(range(10 - k, 11)), list(range(max(0, 7 - k), 10 - k)))
    return interp, randoms, extrap, more_extrap


METHODS = {  # name -> fit options (None = a baseline)
    "ode": dict(kind="ode"),
    "ode between=spline": dict(kind="ode", between="spline"),
    "ode between=flow": dict(kind="ode", between="flow"),
    "ode pace=False": dict(kind="ode", pace=False),
    "ode keyframes=False": dict(kind="ode", keyframes=False),
    "ode neural=True": dict(kind="ode", neural=True),
    "ode tension=0 (cubic)": dict(kind="ode", tension=0.0),
    "cde": dict(kind="cde"),
    "cde between=spline": dict(kind="cde", between="spline"),
    "sde (one sample)": dict(kind="sde"),
    # inside the observed range the default keyframe path does not depend on the learned field: these give
    # the default ODE's interpolation in a fraction of a second (used for the many-split summary)
    "ode keyframe path": dict(kind="ode", iterations=1, neural=False),
    "ode keyframe path, pace=False": dict(kind="ode", iterations=1, neural=False, pace=False),
}


def mse(a, b):
    return float(((a - b) ** 2).mean())


def evaluate(times, codes, train, test, fits, extrapolating, recipe_budget=None):
    """Rows (method, mse, seconds, note) for one protocol."""
    t, z = times[train], codes[train].flatten(1)
    q, truth = times[test], codes[test].flatten(1)
    rows = [("linear interpolation", mse(linear(t, z, q), truth), 0.0, ""),
            ("cubic spline", mse(cubic(t, z, q), truth), 0.0, ""),
            ("hold / nearest frame", mse(nearest(t, z, q), truth), 0.0, "")]
    if extrapolating:  # the other simple predictors: the frame at the far end, the mean of the observed codes
        far = z[-1] if float(q.mean()) < float(t.mean()) else z[0]
        rows += [("hold the far end", mse(far.expand_as(truth), truth), 0.0, ""),
                 ("mean code", mse(z.mean(0).expand_as(truth), truth), 0.0, "")]
    for name, opts in fits.items():
        start = time.process_time()
        dyn = dc.fit_dynamics(t, codes[train], **opts)
        seconds = time.process_time() - start  # CPU seconds: the machine may be shared
        tension = dyn.config["tension"]
        note = "tension " + (f"{tension:g}" if not isinstance(tension, list) else
                             "[" + ", ".join(f"{p:g}" for p in tension[:3]) + (", ..]" if len(tension) > 3 else "]"))
        if dyn.config.get("continuation"):
            c = dyn.config["continuation"]
            note += f", continuation {c['reversion']:g}/{c['momentum']:g}/{c['target']:g}"
            note += f" E {c['envelope']:g}" if c.get("envelope") else " unbounded"
        if "neural" in dyn.config:
            note += f", neural {dyn.config['neural']}"
        note += f", between {dyn.config['between']}"
        rows.append((name, mse(dyn.sample(q, seed=0).flatten(1), truth), seconds, note))
        if opts["kind"] == "sde":
            samples = torch.stack([dyn.sample(q, seed=s).flatten(1) for s in range(32)])
            inside = ((truth >= samples.amin(0)) & (truth <= samples.amax(0))).float().mean()
            # the same in the model's own coordinates (noise acts only inside the clip's motion subspace)
            enc = dyn.basis.encode
            ys, yt = torch.stack([enc(s) for s in samples]), enc(truth)
            inside_basis = ((yt >= ys.amin(0)) & (yt <= ys.amax(0))).float().mean()
            rows.append(("sde mean of 32", mse(samples.mean(0), truth), seconds,
                         f"inside 32-sample spread: {100 * inside:.0f}% of code values, "
                         f"{100 * inside_basis:.0f}% of basis coordinates"))
    if recipe_budget:
        predict, iters, nfe = original_recipe(t, z, recipe_budget)
        rows.append((f"original recipe ({recipe_budget:g} s)", mse(predict(q), truth), recipe_budget,
                     f"{iters} iterations, {nfe:.0f} evaluations each"))
    return rows


def print_table(title, rows, reference):
    ref = dict((r[0], r[1]) for r in rows)[reference]
    print(f"\n### {title}  (ratio vs {reference})")
    print(f"| method | held-out MSE | ratio | fit CPU s | notes |\n|---|---:|---:|---:|---|")
    for name, value, seconds, note in rows:
        print(f"| {name} | {value:.4f} | {value / ref:.3f} | {seconds:.1f} | {note} |")


def smooth_codes(times, seed=0):
    """A smooth synthetic motion embedded in [T, 18, 512]: a damped rotation plus a slow drift, small noise."""
    g = torch.Generator().manual_seed(seed)
    t = times.double()
    y = torch.stack([2 * torch.exp(-0.05 * t) * torch.cos(0.5 * t), 2 * torch.exp(-0.05 * t) * torch.sin(0.5 * t),
                     0.15 * t], 1)
    basis = torch.linalg.qr(torch.randn(18 * 512, 3, generator=g, dtype=torch.float64))[0]
    z = y @ basis.T * 20 + torch.randn(18 * 512, generator=g, dtype=torch.float64)
    z = z + 0.01 * torch.randn(z.shape, generator=g, dtype=torch.float64)
    return z.float().reshape(len(t), 18, 512)


def summarise(title, times, codes, splits, methods, extrapolating, reference):
    """One row per method over many splits: geometric mean of the ratios against `reference`, range, wins."""
    ratios = {}
    for train, test in splits.values():
        rows = evaluate(times, codes, train, test, {k: METHODS[k] for k in methods}, extrapolating)
        ref = dict((r[0], r[1]) for r in rows)[reference]
        for r in rows:
            ratios.setdefault(r[0], []).append(r[1] / ref)
    if extrapolating:  # and against the best of the simple predictors on each split
        simple = ("hold / nearest frame", "hold the far end", "mean code")
        best = [min(ratios[n][i] for n in simple) for i in range(len(splits))]
        ratios["best simple predictor"] = best
        for k in list(ratios):
            ratios[f"{k} / best simple"] = [a / b for a, b in zip(ratios[k], best)] if k not in simple + (
                "best simple predictor",) and "/" not in k else None
        ratios = {k: v for k, v in ratios.items() if v is not None}
    print(f"\n### {title}: ratio vs {reference}, geometric mean [min, max], wins")
    for k, v in ratios.items():
        v = torch.tensor(v)
        print(f"| {k} | {float(v.log().mean().exp()):.3f} | [{float(v.min()):.3f}, {float(v.max()):.3f}] | "
              f"{int((v < 1).sum())}/{len(v)} |")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer protocols and a 10 s recipe budget")
    ap.add_argument("--budget", type=float, default=60.0, help="seconds of training for the original recipe")
    ap.add_argument("--random", type=int, default=16, help="random interpolation splits")
    ap.add_argument("--many", type=int, default=200, help="random interpolation splits for the keyframe path")
    ap.add_argument("--part", choices=("all", "interpolation", "extrapolation"), default="all",
                    help="run only the interpolation protocols (with the synthetic ones) or only extrapolation")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if not DATA.is_file():
        sys.exit(f"missing {DATA}")
    from safetensors.torch import load_file

    data = load_file(str(DATA))
    codes, times = data["latents"].float(), data["times"].float()
    interp, randoms, extrap, more_extrap = protocols(2 if args.quick else args.random)
    budget = 10.0 if args.quick else args.budget
    if args.quick:
        interp = {k: interp[k] for k in ("even->odd", "irregular B")}
        extrap = {k: extrap[k] for k in ("0..7 -> 8..10",)}
    print(f"# DynODE dynamics benchmark: {DATA.name} {list(codes.shape)}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s); original recipe budget {budget:g} s")
    t_all = time.perf_counter()
    full = {k: v for k, v in METHODS.items() if "keyframe path" not in k}
    if args.part == "extrapolation":
        interp, randoms, args.many = {}, {}, 0
    extrap_run = {} if args.part == "interpolation" else extrap
    if args.part == "interpolation":
        more_extrap = {}
    for name, (train, test) in interp.items():
        rows = evaluate(times, codes, train, test, full, False, budget if name == "even->odd" else None)
        print_table(f"interpolation {name}: train {train}, predict {test}", rows, "linear interpolation")
    if randoms:
        summarise(f"interpolation, {len(randoms)} random splits (endpoints kept, 3-6 frames between)", times, codes,
              randoms, ("ode", "ode pace=False", "cde"), False, "linear interpolation")
    if not args.quick and args.many:
        many = protocols(args.many, seed=1)[1]
        for direction, clip in (("forwards", codes), ("backwards", codes.flip(0))):
            summarise(f"interpolation, {args.many} more random splits (seed 1), keyframe path only, the clip "
                      f"{direction}", times, clip, many, ("ode keyframe path", "ode keyframe path, pace=False"),
                      False, "linear interpolation")
    for name, (train, test) in extrap_run.items():
        rows = evaluate(times, codes, train, test, full, True, budget if name == "0..7 -> 8..10" else None)
        print_table(f"extrapolation {name}: train {train}, predict {test}", rows, "hold / nearest frame")
    if not args.quick and more_extrap:
        summarise(f"extrapolation from every start and end ({', '.join(more_extrap)})", times, codes, more_extrap,
                  ("ode", "sde (one sample)", "cde"), True, "hold / nearest frame")
    # synthetic smooth motion
    synth = smooth_codes(times)
    named, _, named_extrap, _ = protocols(0)  # the splits themselves, whichever --part trimmed above
    syn = {"even->odd": named["even->odd"], "irregular B": named["irregular B"],
           "0..7 -> 8..10": named_extrap["0..7 -> 8..10"]}
    if args.part == "extrapolation":
        syn = {k: v for k, v in syn.items() if "8..10" in k}
    if args.part == "interpolation":
        syn = {k: v for k, v in syn.items() if "8..10" not in k}
    for name, (train, test) in syn.items():
        fits = {k: METHODS[k] for k in ("ode", "ode between=spline", "ode between=flow", "ode keyframes=False",
                                        "ode neural=True", "cde", "cde between=spline")}
        rows = evaluate(times, synth, train, test, fits, "->" in name and "8..10" in name)
        ref = "hold / nearest frame" if name == "0..7 -> 8..10" else "linear interpolation"
        print_table(f"synthetic smooth motion, {name}", rows, ref)
    print(f"\ntotal {time.perf_counter() - t_all:.0f} s")


if __name__ == "__main__":
    main()
