"""Dynamics speed: fit CPU seconds per kind and clip length, cold and warm, and CDE sampling of 10,000 times.

Every figure is measured in a fresh process (`cold`: the first fit after `import dynode_core`, what a CLI run or
a script pays, one-time costs included) and again in the same process (`warm`: a second fit of the same clip).
Clips: the 11 real FFHQ W+ codes of ../shared/data/talking_face_wplus.safetensors (T = 11), and built-in
talking clips at 8 fps (W codes of the factor encoder, T = 50 and 200). Default options, CPU, one thread.
The growth per frame is the slope between the two built-in lengths. CPU seconds: the machine may be shared.

    python benchmarks/bench_fit_speed.py                 # ode, sde, cde at T = 11 / 50 / 200
    python benchmarks/bench_fit_speed.py --kinds ode --lengths 11
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "talking_face_wplus.safetensors"

_CHILD = r"""
import json, sys, time
import torch
import dynode_core as dc
kind, T, data = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if T == 11:
    from safetensors.torch import load_file
    d = load_file(data)
    codes, times = d["latents"].float(), d["times"].float()
else:
    from dynode_core.builtin import load_factor_encoder, talking_clip
    times = torch.arange(T, dtype=torch.float32) / 8
    with torch.no_grad():
        codes = load_factor_encoder()(talking_clip(times, 0))[:, None]
out = {}
for name in ("cold", "warm"):
    start = time.process_time()
    dyn = dc.fit_dynamics(times, codes, kind=kind)
    out[name] = time.process_time() - start
if kind == "cde":
    q = torch.linspace(float(times[0]) - 1, float(times[-1]) + 1, 10_000)
    start = time.process_time()
    dyn.sample(q)
    out["sample 10k"] = time.process_time() - start
print(json.dumps(out))
"""


def run(kind: str, T: int) -> dict:
    env = {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    res = subprocess.run([sys.executable, "-c", _CHILD, kind, str(T), str(DATA)], capture_output=True,
                         text=True, env=env, cwd=ROOT)
    if res.returncode:
        raise RuntimeError(f"{kind} T={T} failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kinds", default="ode,sde,cde")
    ap.add_argument("--lengths", default="11,50,200")
    args = ap.parse_args(argv)
    lengths = [int(n) for n in args.lengths.split(",")]
    if 11 in lengths and not DATA.is_file():
        sys.exit(f"missing {DATA} (T = 11 uses the real codes)")
    print("| kind | T | fit CPU s, cold | fit CPU s, warm | CDE sampling of 10,000 times, CPU s |")
    print("|---|---:|---:|---:|---:|")
    for kind in args.kinds.split(","):
        warm = {}
        for T in lengths:
            r = run(kind, T)
            warm[T] = r["warm"]
            s = f"{r['sample 10k']:.2f}" if "sample 10k" in r else ""
            print(f"| {kind} | {T} | {r['cold']:.2f} | {r['warm']:.2f} | {s} |", flush=True)
        built_in = sorted(T for T in warm if T != 11)
        if len(built_in) >= 2:
            a, b = built_in[0], built_in[-1]
            print(f"| {kind} | growth | | {(warm[b] - warm[a]) / (b - a):.3f} s per frame ({a} -> {b}) | |")


if __name__ == "__main__":
    main()
