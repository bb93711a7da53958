"""Train the built-in 64x64 cartoon-face StyleGAN2 as a decoder of the renderer's factors.

    python scripts/train_builtin.py --out runs/builtin              # train (about 90 min on 2 CPU cores)
    python scripts/train_builtin.py --out runs/builtin --export     # write the package assets from the checkpoint

What is trained (no discriminator: a regression, so it is reproducible and cheap):
- a `FactorEncoder` maps factors to a code w, and the StyleGAN2 synthesis network draws it (W space: the same w
  at every layer). Loss against `render_faces` of the same factors: MSE + L1, with the eyes-and-mouth region
  weighted ×`--region-weight` (overall PSNR alone rewards a blurry head with no features).
- the StyleGAN2 mapping network is distilled to produce the encoder's code of `factors_from_z(z)` from Gaussian z,
  so `G.mapping` samples faces like any StyleGAN2, and `w_avg` is its mean.
Data are rendered on the fly from `random_factors`, so there is no dataset to store. Fixed seeds; the learning rate
follows a cosine schedule over `--iters`.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from dynode_core.builtin.factor_encoder import FactorEncoder, factors_from_z
from dynode_core.builtin import FACTOR_NAMES, FACTOR_RANGES, face_regions, random_factors, render_faces
from dynode_core.metrics import correlation, psnr
from dynode_core.stylegan2 import Generator

CONFIG = dict(resolution=64, z_dim=128, w_dim=128, n_mlp=8, channels={4: 256, 8: 256, 16: 128, 32: 64, 64: 32})
HELD_OUT_SEED = 10_000  # training draws factors from torch's global generator seeded with --seed


def generate(G: Generator, E: FactorEncoder, factors: torch.Tensor) -> torch.Tensor:
    return G.synthesis(E(factors)[:, None], noise_mode="const")


@torch.no_grad()
def evaluate(G: Generator, E: FactorEncoder, n: int = 64) -> dict[str, float]:
    """Quality on held-out factors: PSNR overall and over eyes+mouth, and whether motion factors are visible."""
    f = random_factors(n, seed=HELD_OUT_SEED)
    out = {"psnr": float(psnr(generate(G, E, f), render_faces(f)).mean()),
           "psnr_features": float(psnr(generate(G, E, f), render_faces(f), face_regions(f) > 0.5).mean())}
    for name, lo, hi in (("mouth_open", 0.0, 1.0), ("eye_open", 0.0, 1.0)):
        a, b = f.clone(), f.clone()
        a[:, FACTOR_NAMES.index(name)], b[:, FACTOR_NAMES.index(name)] = lo, hi
        d_gen = (generate(G, E, a) - generate(G, E, b)).abs().sum(1)
        d_ren = (render_faces(a) - render_faces(b)).abs().sum(1)
        out[f"motion_corr_{name}"] = correlation(d_gen, d_ren)
    return out


def train(args: argparse.Namespace) -> None:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    G = Generator(**CONFIG)
    E = FactorEncoder(CONFIG["w_dim"])
    mapping = list(G.style.parameters())
    rest = [p for n, p in G.named_parameters() if not n.startswith("style.")] + list(E.parameters())
    # The mapping's equalized-lr multiplier (0.01) would make Adam 100x slower there; undo it for distillation.
    opt = torch.optim.Adam([{"params": rest, "lr": args.lr}, {"params": mapping, "lr": args.lr / G.lr_mlp}],
                           betas=(0.9, 0.99))
    base_lrs = [g["lr"] for g in opt.param_groups]
    log = open(out / "log.jsonl", "a")
    t0, step = time.time(), 0
    ckpt = out / "checkpoint.pt"
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=True)
        G.load_state_dict(state["G"]), E.load_state_dict(state["E"]), opt.load_state_dict(state["opt"])
        step = state["step"]
        torch.set_rng_state(state["rng"])
    while step < args.iters:
        frac = step / args.iters
        for g, lr in zip(opt.param_groups, base_lrs):
            g["lr"] = lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * frac))) * min(1.0, (step + 1) / 200)
        f = random_factors(args.batch)
        target = render_faces(f)
        weight = 1 + args.region_weight * face_regions(f)
        pred = generate(G, E, f)
        err = pred - target
        loss_img = (weight * err.square()).mean() + 0.1 * (weight * err.abs()).mean()
        z = torch.randn(args.batch, CONFIG["z_dim"])
        with torch.no_grad():
            w_target = E(factors_from_z(z))
        loss_map = (G.mapping(z) - w_target).square().mean()
        opt.zero_grad(set_to_none=True)
        (loss_img + 0.1 * loss_map).backward()
        opt.step()
        step += 1
        if step % args.eval_every == 0 or step == args.iters:
            G.eval()
            rec = {"step": step, "seconds": round(time.time() - t0, 1), "loss": loss_img.item(),
                   "loss_map": loss_map.item(), **evaluate(G, E)}
            G.train()
            print(json.dumps(rec), flush=True)
            log.write(json.dumps(rec) + "\n")
            log.flush()
            tmp = ckpt.with_suffix(".tmp")
            torch.save({"G": G.state_dict(), "E": E.state_dict(), "opt": opt.state_dict(), "step": step,
                        "rng": torch.get_rng_state()}, tmp)
            tmp.replace(ckpt)


def direction_between(E: FactorEncoder, name: str, lo: float, hi: float, n: int = 2048) -> torch.Tensor:
    """Mean change of the encoder's code when one factor goes from lo to hi, over random faces. -> [w_dim]"""
    f = random_factors(n, seed=HELD_OUT_SEED + 1)
    a, b = f.clone(), f.clone()
    a[:, FACTOR_NAMES.index(name)], b[:, FACTOR_NAMES.index(name)] = lo, hi
    with torch.no_grad():
        return (E(b) - E(a)).mean(0)


EDITS = {  # name: (factor, from, to, what strength 1 does)
    "smile": ("smile", 0.0, 1.0, "neutral mouth to a broad smile"),
    "mouth_open": ("mouth_open", 0.0, 1.0, "closed mouth to wide open"),
    "eyes_closed": ("eye_open", 1.0, 0.0, "open eyes to closed"),
    "hair_blonde": ("hair", 0.0, 0.75, "black hair to blonde"),
    "hair_red": ("hair", 0.25, 0.5, "brown hair to auburn"),
    "skin_darker": ("skin", 0.0, 1.0, "lightest skin tone to darkest"),
    "turn_right": ("yaw", 0.0, 1.0, "facing the camera to turned"),
}


def export(args: argparse.Namespace) -> None:
    from safetensors.torch import save_file

    from dynode_core.checkpoints import save_generator

    torch.set_num_threads(args.threads)
    state = torch.load(Path(args.out) / "checkpoint.pt", weights_only=True)
    G = Generator(**CONFIG)
    G.load_state_dict(state["G"])
    E = FactorEncoder(CONFIG["w_dim"])
    E.load_state_dict(state["E"])
    G.eval(), E.eval()
    G.estimate_w_avg()
    assets = Path(args.assets)
    (assets / "directions").mkdir(parents=True, exist_ok=True)
    G.load_state_dict({k: v.half().float() if v.is_floating_point() else v for k, v in G.state_dict().items()})
    metrics = evaluate(G, E)
    print(json.dumps(metrics))
    save_generator(G, assets / "builtin_generator.safetensors", metadata={
        "name": "builtin", "description": "64x64 cartoon faces (DynODE built-in), a decoder of the renderer's factors",
        "trained_steps": str(state["step"]), "factor_names": json.dumps(FACTOR_NAMES), "metrics": json.dumps(metrics)},
                   dtype=torch.float16)  # half the file; the evaluation below is of the stored weights
    save_file({k: v.contiguous() for k, v in E.state_dict().items()}, str(assets / "builtin_factor_encoder.safetensors"),
              metadata={"factor_names": json.dumps(FACTOR_NAMES), "factor_ranges": json.dumps(FACTOR_RANGES)})
    for name, (factor, lo, hi, desc) in EDITS.items():
        d = direction_between(E, factor, lo, hi)
        save_file({"direction": d.contiguous()}, str(assets / "directions" / f"{name}.safetensors"),
                  metadata={"name": name, "space": "w", "description": f"strength 1: {desc}",
                            "source": f"builtin factor encoder, mean change of '{factor}' {lo} -> {hi}"})
    contact_sheet(G, E, Path(args.sheet))
    print("exported to", assets)


@torch.no_grad()
def contact_sheet(G: Generator, E: FactorEncoder, path: Path, n: int = 10) -> None:
    """Held-out faces: renderer (top), generator (middle), and random samples of the mapping network (bottom)."""
    from dynode_core.video import frames_to_uint8, write_image

    f = random_factors(n, seed=HELD_OUT_SEED + 2)
    z = torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(1))
    rows = [render_faces(f, G.resolution), generate(G, E, f), G(z)]
    grid = torch.cat([torch.cat(list(r), dim=2) for r in rows], dim=1)
    grid = torch.nn.functional.interpolate(grid[None], scale_factor=2, mode="nearest")[0]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, grid)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/builtin", help="run folder (checkpoint, log)")
    p.add_argument("--assets", default=str(Path(__file__).resolve().parents[1] / "dynode_core" / "assets"))
    p.add_argument("--iters", type=int, default=16000)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--region-weight", type=float, default=8.0)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sheet", default=str(Path(__file__).resolve().parents[1] / "docs" / "builtin_contact_sheet.png"))
    p.add_argument("--export", action="store_true", help="only write the package assets from the checkpoint")
    args = p.parse_args()
    export(args) if args.export else train(args)


if __name__ == "__main__":
    main()
