"""Inversion on built-in clips with ground truth: the default (built-in encoder + short W+ refinement) against
optimisation only (`encoder=None`) and the oracle (the factor encoder's codes of the TRUE factors, a W code the
generator was trained to draw), then pivotal tuning on half of each clip's frames.

Everything is measured in this run, one thread, in CPU seconds of this process (other jobs on a shared
machine do not inflate CPU time the way they inflate wall time). For every clip (12 frames at 6 fps of
`builtin.talking_clip(seed)`): whole-image PSNR, eyes+mouth PSNR (`builtin.face_regions`) and motion kept
(`metrics.motion_kept`: correlation inside the eyes+mouth mask of the reconstruction's and the truth's
deviations from their mean frame). Ratios are of means over the clips.

    python benchmarks/bench_inversion.py [--clips 6] [--frames 12] [--fps 6] [--tune-steps 300] [--json out.json]
                                         [--picture docs/inversion_rows.png]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import dynode_core as dc
from dynode_core import builtin
from dynode_core.metrics import motion_kept, psnr


def _run(fn):
    t = time.process_time()
    out = fn()
    return out, time.process_time() - t


def _quality(G, codes, truth, mask) -> dict:
    with torch.no_grad():
        rec = G.synthesis(codes.to(G.device)).cpu()
    return {"psnr": float(psnr(rec, truth).mean()), "psnr_eyes_mouth": float(psnr(rec, truth, mask).mean()),
            "motion_kept": motion_kept(rec, truth, mask)}, rec


def _mean(rows: list[dict], key: str) -> float:
    return sum(r[key] for r in rows) / len(rows)


def _picture(path, G, rows: dict[str, torch.Tensor]) -> None:
    """One row per method (ground truth, oracle, default, optimisation only), labelled, 2x nearest."""
    from PIL import Image, ImageDraw

    from dynode_core.video import frames_to_uint8

    scale, label_w = 2, 150
    strips = []
    for name, frames in rows.items():
        strip = torch.cat(list(frames.clamp(-1, 1)), dim=2)
        strip = torch.nn.functional.interpolate(strip[None], scale_factor=scale, mode="nearest")[0]
        img = Image.fromarray(frames_to_uint8(strip[None])[0].numpy())
        canvas = Image.new("RGB", (img.width + label_w, img.height), "white")
        canvas.paste(img, (label_w, 0))
        ImageDraw.Draw(canvas).text((6, img.height // 2 - 6), name, fill="black")
        strips.append(canvas)
    sheet = Image.new("RGB", (strips[0].width, sum(s.height for s in strips)), "white")
    y = 0
    for s in strips:
        sheet.paste(s, (0, y))
        y += s.height
    sheet.save(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=6)
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--fps", type=float, default=6.0)
    ap.add_argument("--first-seed", type=int, default=100, help="clip seeds are first-seed, first-seed + 1, ...")
    ap.add_argument("--tune-steps", type=int, default=300, help="0 skips the tuning section")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--picture", help="write GT / oracle / default / optimisation-only rows of the first clip here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    G = dc.load_generator("builtin")
    factor_encoder = builtin.load_factor_encoder()
    t = torch.arange(args.frames) / args.fps
    per = {"oracle": [], "default": [], "optimisation only": [], "tuning": []}
    for k in range(args.clips):
        seed = args.first_seed + k
        f = builtin.talking_clip(t, seed=seed)
        truth = builtin.render_faces(f, size=G.resolution)
        mask = builtin.face_regions(f, size=G.resolution) > 0.5
        with torch.no_grad():
            oracle_codes = factor_encoder(f)[:, None]
        q_o, rec_o = _quality(G, oracle_codes, truth, mask)
        clip, sec_d = _run(lambda: dc.invert(G, truth))
        q_d, rec_d = _quality(G, clip.codes, truth, mask)
        opt, sec_n = _run(lambda: dc.invert(G, truth, encoder=None))
        q_n, rec_n = _quality(G, opt.codes, truth, mask)
        per["oracle"].append({**q_o, "seconds": 0.0})
        per["default"].append({**q_d, "seconds": sec_d})
        per["optimisation only"].append({**q_n, "seconds": sec_n})
        print(f"clip {seed}: default {q_d['psnr']:.2f} / {q_d['psnr_eyes_mouth']:.2f} dB, motion {q_d['motion_kept']:.3f}, "
              f"{sec_d:.1f} s | optimisation only {q_n['psnr']:.2f} / {q_n['psnr_eyes_mouth']:.2f} dB, motion "
              f"{q_n['motion_kept']:.3f}, {sec_n:.1f} s | oracle {q_o['psnr']:.2f} / {q_o['psnr_eyes_mouth']:.2f} dB, "
              f"motion {q_o['motion_kept']:.3f}", flush=True)
        if args.picture and k == 0:
            _picture(args.picture, G, {"ground truth": truth, "oracle (true factors)": rec_o,
                                       "default (encoder+refine)": rec_d, "optimisation only": rec_n})
        if args.tune_steps:
            seen, unseen = torch.arange(0, args.frames, 2), torch.arange(1, args.frames, 2)
            G2, sec_t = _run(lambda: dc.tune_generator(G, truth[seen], clip.codes[seen], steps=args.tune_steps))
            with torch.no_grad():
                gain = [float(psnr(H.synthesis(clip.codes[i]), truth[i]).mean()) for H in (G2, G) for i in (seen, unseen)]
                # locality: random mapping samples, and codes halfway between the clip's and those samples,
                # drawn by the tuned generator against the original (PSNR, higher = less changed)
                gz = torch.Generator().manual_seed(seed)
                w_rand = G.mapping(torch.randn(16, G.z_dim, generator=gz))[:, None].expand(-1, G.num_ws, -1)
                w_mid = torch.lerp(clip.codes[torch.randint(args.frames, (16,), generator=gz)], w_rand, 0.5)
                loc = [float(psnr(G2.synthesis(w), G.synthesis(w)).mean()) for w in (w_rand, w_mid)]
            per["tuning"].append({"gain_seen": gain[0] - gain[2], "gain_unseen": gain[1] - gain[3],
                                  "locality_random": loc[0], "locality_halfway": loc[1], "seconds": sec_t})
            print(f"  tuned on {len(seen)} frames ({sec_t:.1f} s): +{gain[0] - gain[2]:.2f} dB on them, "
                  f"+{gain[1] - gain[3]:.2f} dB on the other {len(unseen)}; tuned vs original G: {loc[0]:.1f} dB on "
                  f"random samples, {loc[1]:.1f} dB halfway to them", flush=True)

    summary = {name: {key: _mean(rows, key) for key in rows[0]} for name, rows in per.items() if rows}
    d, n, o = summary["default"], summary["optimisation only"], summary["oracle"]
    print(f"\n{args.clips} clips x {args.frames} frames at {args.fps:g} fps, one thread, CPU seconds per clip")
    print(f"{'':22s} {'PSNR':>7s} {'eyes+mouth':>11s} {'motion kept':>12s} {'CPU s':>7s}")
    for name in ("default", "optimisation only", "oracle"):
        r = summary[name]
        print(f"{name:22s} {r['psnr']:7.2f} {r['psnr_eyes_mouth']:11.2f} {r['motion_kept']:12.3f} {r['seconds']:7.1f}")
    ratios = {"time_default_over_optimisation": d["seconds"] / n["seconds"],
              "psnr_default_minus_oracle": d["psnr"] - o["psnr"],
              "eyes_mouth_default_minus_oracle": d["psnr_eyes_mouth"] - o["psnr_eyes_mouth"],
              "motion_default_minus_oracle": d["motion_kept"] - o["motion_kept"]}
    print("ratios: " + ", ".join(f"{k} {v:+.3f}" if "minus" in k else f"{k} {v:.3f}" for k, v in ratios.items()))
    if "tuning" in summary:
        tu = summary["tuning"]
        print(f"tuning ({args.tune_steps} steps on every other frame): +{tu['gain_seen']:.2f} dB on the tuned frames, "
              f"+{tu['gain_unseen']:.2f} dB on the others, {tu['seconds']:.1f} CPU s; tuned vs original G "
              f"{tu['locality_random']:.1f} dB on random samples, {tu['locality_halfway']:.1f} dB halfway")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "per_clip": per, "summary": summary, "ratios": ratios}, fh, indent=2)


if __name__ == "__main__":
    main()
