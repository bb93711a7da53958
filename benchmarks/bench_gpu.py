"""GPU figures: decode images/s at 1024 px in float32 / bfloat16 / float16, inversion and generator tuning seconds
per frame, and peak VRAM of each. Skips (exit 0, one line) when CUDA is not available.

The generator is a config-f StyleGAN2 (1024 px, 512-d W, conv_clamp 256) with random weights unless
`--generator PATH` names a checkpoint (any format `dc.load_generator` reads). Times are wall seconds after
`torch.cuda.synchronize()`, median of `--rounds`, after one warm-up; peak VRAM is
`torch.cuda.max_memory_allocated()` with the counter reset before each measurement. Decode also runs our plain
(`fused=False`) path in float32 in the same rounds, for the fused/plain ratio.

    python benchmarks/bench_gpu.py [--generator PATH] [--resolution 1024] [--batch 8] [--frames 4] [--steps 20]
        [--rounds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

import dynode_core as dc

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _timed(fn, rounds: int) -> tuple[float, int]:
    """(median wall seconds, peak bytes allocated) of fn() on the current CUDA device, after a warm-up."""
    fn()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times), torch.cuda.max_memory_allocated()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--generator", help="checkpoint file (default: random config-f weights)")
    ap.add_argument("--resolution", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=8, help="decode batch")
    ap.add_argument("--frames", type=int, default=4, help="frames inverted / tuned on")
    ap.add_argument("--steps", type=int, default=20, help="optimisation steps per frame for inversion and tuning")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("bench_gpu: skipped (CUDA is not available on this machine)")
        return
    dev = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    if args.generator:
        G = dc.load_generator(args.generator, device=dev)
    else:
        torch.manual_seed(0)
        G = dc.Generator(args.resolution, conv_clamp=256.0).to(dev)
    G = G.eval().requires_grad_(False)
    gen = torch.Generator().manual_seed(1)
    codes = (G.w_avg.cpu() + torch.randn(args.batch, G.num_ws, G.w_dim, generator=gen) * 0.5).to(dev)
    rows: dict = {"device": torch.cuda.get_device_name(dev), "resolution": G.resolution, "batch": args.batch}
    print(f"{rows['device']}, {G.resolution} px, torch {torch.__version__}")

    for name, dtype in DTYPES.items():
        if dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
            print(f"decode {name:8s}: skipped (not supported by this GPU)")
            continue
        Gd = G.to(dtype)
        with torch.inference_mode():
            sec, peak = _timed(lambda: Gd.synthesis(codes.to(dtype)), args.rounds)
        rows[f"decode_{name}"] = {"images_per_s": args.batch / sec, "peak_vram": peak}
        print(f"decode {name:8s}: {args.batch / sec:7.1f} img/s   peak VRAM {peak / 2**30:.2f} GiB")
    G = G.float()
    with torch.inference_mode():
        sec_plain, _ = _timed(lambda: G.synthesis(codes, fused=False), args.rounds)
    rows["decode_float32_plain_images_per_s"] = args.batch / sec_plain
    print(f"decode float32 plain path: {args.batch / sec_plain:7.1f} img/s "
          f"(fused/plain {rows['decode_float32']['images_per_s'] * sec_plain / args.batch:.2f}x)")

    with torch.inference_mode():
        frames = G.synthesis(codes[: args.frames]).float()
    sec, peak = _timed(lambda: dc.invert(G, frames, steps=args.steps, warm_start=False, batch_size=args.frames),
                       max(1, args.rounds // 2))
    rows["invert"] = {"seconds_per_frame": sec / args.frames, "steps": args.steps, "peak_vram": peak}
    print(f"invert  : {sec / args.frames:6.2f} s/frame at {args.steps} steps   peak VRAM {peak / 2**30:.2f} GiB")

    tune = getattr(dc, "tune_generator", None)
    if tune is None:
        print("tune    : skipped (this version has no dc.tune_generator)")
    else:
        init = codes[: args.frames].cpu()
        try:
            sec, peak = _timed(lambda: tune(G, frames, init, steps=args.steps), max(1, args.rounds // 2))
        except TypeError as e:  # its signature changed: report rather than guess
            print(f"tune    : skipped ({e})")
        else:
            rows["tune"] = {"seconds_per_frame": sec / args.frames, "steps": args.steps, "peak_vram": peak}
            print(f"tune    : {sec / args.frames:6.2f} s/frame at {args.steps} steps   peak VRAM {peak / 2**30:.2f} GiB")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
