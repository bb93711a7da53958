"""Train the built-in generator's image encoder (`dc.load_encoder("builtin")`) on rendered faces.

    nice python scripts/train_builtin_encoder.py --out runs/builtin_encoder            # train (resumes)
    python scripts/train_builtin_encoder.py --out runs/builtin_encoder --export        # write the package asset

Data are rendered on the fly from `random_factors`, so every face comes with its true factors and its true code
(the factor encoder's w of those factors). A `FactorCNN` reads factors off the frame; the frozen factor encoder
turns them into w. Losses, from the first step: factor MSE (ranges scaled to [0, 1], motion factors weighted
up) and code MSE against the true code. From `--pixel-from` of the run on, the frozen generator also draws the
predicted W+ codes (w + the CNN's per-layer residual) and a pixel loss (eyes and mouth weighted up) trains the
whole network, the residual included. Cosine learning rate, fixed seeds; checkpoints every `--eval-every` steps
(atomic), so the run can be stopped and resumed at any time.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from dynode_core.builtin import (FACTOR_NAMES, MOTION_FACTORS, face_regions, factor_bounds, load_factor_encoder,
                                 random_factors, render_faces)
from dynode_core.checkpoints import load_generator
from dynode_core.encoders.builtin import BuiltinImageEncoder, FactorCNN
from dynode_core.metrics import psnr

HELD_OUT_SEED = 20_000


def _factor_weights() -> torch.Tensor:
    return torch.tensor([3.0 if n in MOTION_FACTORS else 1.0 for n in FACTOR_NAMES])


@torch.no_grad()
def evaluate(G, enc: BuiltinImageEncoder, n: int = 64) -> dict[str, float]:
    f = random_factors(n, seed=HELD_OUT_SEED)
    frames = render_faces(f)
    lo, hi = factor_bounds()
    pred_f, _ = enc.cnn(frames)
    codes = enc(frames)
    true_w = enc.factor_encoder(f)
    rec, oracle = G.synthesis(codes), G.synthesis(true_w[:, None])
    m = face_regions(f) > 0.5
    out = {"factor_mae": float(((pred_f - f) / (hi - lo)).abs().mean()),
           "psnr": float(psnr(rec, frames).mean()), "psnr_oracle": float(psnr(oracle, frames).mean()),
           "psnr_features": float(psnr(rec, frames, m).mean()),
           "psnr_features_oracle": float(psnr(oracle, frames, m).mean())}
    for name in ("eye_open", "mouth_open"):
        i = FACTOR_NAMES.index(name)
        out[f"mae_{name}"] = float((pred_f[:, i] - f[:, i]).abs().mean())
    return {k: round(v, 4) for k, v in out.items()}


def build(G) -> BuiltinImageEncoder:
    return BuiltinImageEncoder(FactorCNN(G.num_ws, G.w_dim), load_factor_encoder())


def train(args: argparse.Namespace) -> None:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    G = load_generator("builtin").eval().requires_grad_(False)
    enc = build(G)
    enc.factor_encoder.requires_grad_(False)
    opt = torch.optim.Adam(enc.cnn.parameters(), lr=args.lr, betas=(0.9, 0.99))
    lo, hi = factor_bounds()
    fw = _factor_weights()
    ckpt = out / "checkpoint.pt"
    step, seconds = 0, 0.0
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=True)
        enc.cnn.load_state_dict(state["cnn"]), opt.load_state_dict(state["opt"])
        step, seconds = state["step"], state["seconds"]
        torch.set_rng_state(state["rng"])
    log = open(out / "log.jsonl", "a")
    pixel_from = int(args.pixel_from * args.iters)
    t0 = time.process_time()
    enc.cnn.train()
    while step < args.iters:
        frac = step / args.iters
        for g in opt.param_groups:
            g["lr"] = args.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * frac))) * min(1.0, (step + 1) / 200)
        f = random_factors(args.batch)
        clean = render_faces(f)
        frames = clean + args.noise * torch.rand(args.batch, 1, 1, 1) * torch.randn_like(clean)
        pred_f, residual = enc.cnn(frames)
        loss_f = (((pred_f - f) / (hi - lo)).square() * fw).mean()
        with torch.no_grad():
            true_w = enc.factor_encoder(f)
        w = enc.factor_encoder(pred_f)
        loss_w = (w - true_w).square().mean()
        loss = loss_f + args.code_weight * loss_w
        loss_px = torch.zeros(())
        if step >= pixel_from:
            k = args.pixel_batch
            rec = G.synthesis(w[:k, None] + residual[:k])
            weight = 1 + args.region_weight * face_regions(f[:k])
            err = rec - clean[:k]
            loss_px = (weight * err.square()).mean()
            loss = loss + args.pixel_weight * loss_px + args.residual_decay * residual.square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if step % args.eval_every == 0 or step == args.iters:
            enc.cnn.eval()
            now = time.process_time()
            seconds, t0 = seconds + now - t0, now
            rec = {"step": step, "cpu_seconds": round(seconds, 1), "loss_factors": round(loss_f.item(), 5),
                   "loss_code": round(loss_w.item(), 5), "loss_pixels": round(loss_px.item(), 5), **evaluate(G, enc)}
            enc.cnn.train()
            print(json.dumps(rec), flush=True)
            log.write(json.dumps(rec) + "\n")
            log.flush()
            tmp = ckpt.with_suffix(".tmp")
            torch.save({"cnn": enc.cnn.state_dict(), "opt": opt.state_dict(), "step": step, "seconds": seconds,
                        "rng": torch.get_rng_state()}, tmp)
            tmp.replace(ckpt)
            t0 = time.process_time()


def export(args: argparse.Namespace) -> None:
    from safetensors.torch import save_file

    from dynode_core.encoders import BUILTIN_ENCODER

    torch.set_num_threads(args.threads)
    state = torch.load(Path(args.out) / "checkpoint.pt", weights_only=True)
    G = load_generator("builtin").eval()
    enc = build(G)
    sd = {k: v.half().float() for k, v in state["cnn"].items()}
    enc.cnn.load_state_dict(sd)
    enc.eval()
    metrics = evaluate(G, enc, n=256)
    print(json.dumps(metrics))
    save_file({k: v.half().contiguous() for k, v in sd.items()}, str(BUILTIN_ENCODER), metadata={
        "format": "dynode-builtin-encoder", "num_ws": str(G.num_ws), "w_dim": str(G.w_dim),
        "factor_names": json.dumps(FACTOR_NAMES), "trained_steps": str(state["step"]),
        "train_cpu_seconds": str(round(state["seconds"])), "metrics": json.dumps(metrics)})
    print("exported to", BUILTIN_ENCODER)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/builtin_encoder", help="run folder (checkpoint, log)")
    p.add_argument("--iters", type=int, default=3000)
    p.add_argument("--batch", type=int, default=24)
    p.add_argument("--pixel-batch", type=int, default=8, help="faces of each batch drawn by the generator")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--noise", type=float, default=0.03, help="largest std of Gaussian noise added to inputs")
    p.add_argument("--code-weight", type=float, default=1.0)
    p.add_argument("--pixel-from", type=float, default=0.6, help="fraction of the run after which pixels count")
    p.add_argument("--pixel-weight", type=float, default=1.0)
    p.add_argument("--region-weight", type=float, default=8.0)
    p.add_argument("--residual-decay", type=float, default=0.01)
    p.add_argument("--eval-every", type=int, default=200)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--export", action="store_true", help="only write the package asset from the checkpoint")
    args = p.parse_args()
    export(args) if args.export else train(args)


if __name__ == "__main__":
    main()
