"""Decode throughput of dynode_core's StyleGAN2 against NVIDIA's stylegan2-ada-pytorch on the same weights.

The reference is built from a local copy of NVlabs/stylegan2-ada-pytorch (it is never downloaded and never part
of this repository): pass its folder with `--nvidia PATH` or the environment variable DYNODE_NVIDIA_SG2ADA.
Random weights are drawn in NVIDIA's layout (config-f channels, conv_clamp 256, non-zero noise strengths and
biases), pickled the way NVIDIA pickles a snapshot and loaded through `dc.load_generator`, so the comparison also
exercises our converter. On CPU NVIDIA's custom ops use their own reference implementations. Without the folder
the NVIDIA columns are skipped and only our fused path is compared with our plain (`fused=False`) path.
`--rosinality PATH` (or DYNODE_ROSINALITY_SG2) adds rosinality/stylegan2-pytorch when its `op/` module can run on
CPU (it compiles CUDA code at import; skipped with the reason otherwise).

Timing: one thread by default, every round times each candidate once in turn (interleaved, so load from other
jobs hits all of them alike), CPU seconds of this process; the ratio reported is the median over rounds of
reference time / our time (> 1 = we are faster). Images are compared once (max abs difference).

    python benchmarks/bench_decode.py --nvidia /path/to/stylegan2-ada-pytorch [--cases 256x1,256x8,1024x1]
        [--rounds 5] [--threads 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import sys
import tempfile
import time

import torch

import dynode_core as dc


def _nvidia_generator(root: str, resolution: int, seed: int = 0):
    """NVIDIA's Generator with random weights (config-f), or raise ImportError with the reason."""
    if root not in sys.path:
        sys.path.insert(0, root)
    from training.networks import Generator  # noqa: E402  (the user's local copy)
    torch.manual_seed(seed)
    G = Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=resolution, img_channels=3,
                  mapping_kwargs=dict(num_layers=8),
                  synthesis_kwargs=dict(channel_base=32768, channel_max=512, num_fp16_res=0, conv_clamp=256))
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.copy_(torch.randn(()) * 0.1)
            elif name.endswith(".bias") and "mapping" not in name:
                p.add_(torch.randn(p.shape) * 0.1)
        G.mapping.w_avg.copy_(torch.randn(512) * 0.1)
    return G.eval().requires_grad_(False)


def _ours_from(G_nv) -> dc.Generator:
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "network-snapshot.pkl")
        with open(path, "wb") as f:
            pickle.dump({"G_ema": G_nv}, f)
        return dc.load_generator(path).eval().requires_grad_(False)


def _rosinality_generator(root: str, G: dc.Generator):
    """rosinality's Generator holding G's weights (our names are rosinality's), or raise with the reason."""
    if root not in sys.path:
        sys.path.insert(0, root)
    from model import Generator as RGen  # noqa: E402  (the user's local copy; its op/ must run on CPU)
    R = RGen(G.resolution, G.w_dim, G.n_mlp, channel_multiplier=2)
    missing, unexpected = R.load_state_dict(G.state_dict(), strict=False)
    if [k for k in missing if "kernel" not in k] or unexpected:
        raise ImportError(f"layout mismatch (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return R.eval().requires_grad_(False)


def _cpu_seconds(fn) -> float:
    t = time.process_time()
    fn()
    return time.process_time() - t


def run_case(resolution: int, batch: int, rounds: int, nvidia: str | None, rosinality: str | None,
             seed: int = 0) -> dict:
    row: dict = {"resolution": resolution, "batch": batch}
    cands = {}
    G_nv = None
    if nvidia:
        try:
            G_nv = _nvidia_generator(nvidia, resolution, seed)
        except Exception as e:  # the user's copy: report and go on without it
            row["nvidia_skipped"] = f"{type(e).__name__}: {e}"
    if G_nv is not None:
        G = _ours_from(G_nv)
    else:
        torch.manual_seed(seed)
        G = dc.Generator(resolution, conv_clamp=256.0).eval().requires_grad_(False)
    gen = torch.Generator().manual_seed(seed + 1)
    ws = torch.randn(batch, G.num_ws, G.w_dim, generator=gen)

    cands["ours"] = lambda: G.synthesis(ws, noise_mode="const")
    cands["ours_plain"] = lambda: G.synthesis(ws, noise_mode="const", fused=False)
    if G_nv is not None:
        cands["nvidia"] = lambda: G_nv.synthesis(ws, noise_mode="const", force_fp32=True)
    if rosinality:
        try:
            R = _rosinality_generator(rosinality, G)
            noise = [getattr(G.noises, f"noise_{i}") for i in range(G.num_layers)]
            cands["rosinality"] = lambda: R([ws], input_is_latent=True, noise=noise)[0]
        except Exception as e:
            row["rosinality_skipped"] = f"{type(e).__name__}: {str(e)[:200]}"

    with torch.inference_mode():
        ref = cands["ours"]()
        for name, fn in cands.items():
            if name != "ours":
                row[f"maxdiff_{name}"] = float((fn().float() - ref.float()).abs().max())
        row["image_absmax"] = float(ref.abs().max())
        times: dict[str, list[float]] = {k: [] for k in cands}
        for _ in range(rounds):
            for name, fn in cands.items():
                times[name].append(_cpu_seconds(fn))
    row["seconds"] = {k: statistics.median(v) for k, v in times.items()}
    for name in cands:
        if name != "ours":
            row[f"ratio_{name}"] = statistics.median(a / b for a, b in zip(times[name], times["ours"]))
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nvidia", default=os.environ.get("DYNODE_NVIDIA_SG2ADA"),
                    help="folder of a local NVlabs/stylegan2-ada-pytorch checkout")
    ap.add_argument("--rosinality", default=os.environ.get("DYNODE_ROSINALITY_SG2"),
                    help="folder of a local rosinality/stylegan2-pytorch checkout (its op/ must run on CPU)")
    ap.add_argument("--cases", default="256x1,256x8,1024x1", help="comma list of RESOLUTIONxBATCH")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="also write the rows here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if not args.nvidia:
        print("NVIDIA reference: skipped (no --nvidia / DYNODE_NVIDIA_SG2ADA folder given)")
    elif not os.path.isfile(os.path.join(args.nvidia, "training", "networks.py")):
        print(f"NVIDIA reference: skipped ({args.nvidia} has no training/networks.py)")
        args.nvidia = None
    rows = []
    for case in args.cases.split(","):
        res, batch = (int(v) for v in case.lower().split("x"))
        row = run_case(res, batch, args.rounds, args.nvidia, args.rosinality, args.seed)
        rows.append(row)
        sec = "  ".join(f"{k} {v:.3f} s" for k, v in row["seconds"].items())
        ratios = "  ".join(f"{k[6:]}/ours {v:.2f}x" for k, v in row.items() if k.startswith("ratio_"))
        diffs = "  ".join(f"{k[8:]} {v:.1e}" for k, v in row.items() if k.startswith("maxdiff_"))
        print(f"{res:5d} px batch {batch}: {sec}\n      throughput ratio {ratios}\n      max |diff| {diffs} "
              f"(image |max| {row['image_absmax']:.2f})")
        for k, v in row.items():
            if k.endswith("_skipped"):
                print(f"      {k}: {v}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": args.threads, "rounds": args.rounds, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
