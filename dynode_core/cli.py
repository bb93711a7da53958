"""The `dynode` command: the demo, and invert / fit / sample / edit / decode / convert for your own
generator and clip. Run `dynode <command> -h` for the options of each."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from . import _guard as g
from ._limits import check as _check_limit
from ._threads import thread_scope
from .clip import IDENTITY_KEYS as _IDENTITY

__all__ = ["main"]


class CLIError(ValueError):
    """A user mistake reported as one line, without a traceback."""


# --- helpers ------------------------------------------------------------------------------------------------

def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA, then Apple MPS, then the CPU; an explicit device must be available."""
    name = name.lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise CLIError("--device cuda: no CUDA device is available (use --device cpu or auto)")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise CLIError("--device mps: Apple MPS is not available (use --device cpu or auto)")
    if name not in ("cpu", "cuda", "mps"):
        raise CLIError(f"--device must be auto, cpu, cuda or mps, got {name!r}")
    return torch.device(name)


@contextmanager
def progress_bar(desc: str, quiet: bool = False):
    """Yield a `progress(done, total)` callback drawing a tqdm bar (or nothing when quiet)."""
    if quiet:
        yield None
        return
    from tqdm import tqdm

    bar = tqdm(desc=desc, unit="step", leave=True, dynamic_ncols=True, file=sys.stderr)

    def update(done: int, total: int) -> None:
        if bar.total != total:
            bar.total = total
        bar.update(done - bar.n)

    try:
        yield update
    finally:
        bar.close()


OPTION_HELP = ("a fit_dynamics option (repeatable), e.g. between=flow (the learned dynamics between keyframes), "
               "extrapolation=flow (the learned flow past the ends), tension=0 (natural cubic), iterations=600; "
               "every option: docs/dynamics.md")


def _parse_options(pairs: list[str]) -> dict:
    """['iters=200', 'kind=x'] -> {'iters': 200, 'kind': 'x'} (values read as JSON when they parse)."""
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise CLIError(f"--option expects key=value, got {pair!r}")
        k, v = pair.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)
        except (json.JSONDecodeError, RecursionError):
            out[k.strip()] = v
        if isinstance(out[k.strip()], float) and not math.isfinite(out[k.strip()]):
            raise CLIError(f"--option {pair!r}: the value must be a finite number")
    return out


def _parse_layers(text: str | None) -> slice | list[int] | None:
    """--layers in the library's syntax (`editing.parse_layers`): '0:4', '4:', '1,3,5'."""
    from .editing import parse_layers

    if text and len(text) > 4096:
        raise CLIError("--layers is too long")
    try:
        layers = parse_layers(text)
    except ValueError as e:
        raise CLIError(f"--{e}") from None
    if isinstance(layers, slice) and (layers.start or 0) < 0:
        raise CLIError(f"--layers {text!r}: layer indices start at 0")
    if isinstance(layers, list):
        _check_limit("NUM_WS", len(layers), "the number of --layers")
    return layers


def _parse_times(text: str | None) -> list[float] | None:
    """--times in the library's syntax (`times.parse_times`), the same as the Sample Times node's."""
    from .times import parse_times

    if text:
        _check_limit("FRAMES", text.count(",") + text.count(";") + 1, "the number of --times")
    try:
        return parse_times(text)
    except ValueError as e:
        raise CLIError(f"--{e}") from None


def _need_file(path: str, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise CLIError(f"{what} not found: {p}")
    return p


def _grid(args, keyframe_times: torch.Tensor) -> torch.Tensor:
    from .times import sample_times

    explicit = _parse_times(getattr(args, "times", None))
    if explicit is not None and args.factor == 1 and args.extrapolate == 0:
        return sample_times(times=explicit)
    return sample_times(keyframe_times, factor=args.factor, extrapolate=args.extrapolate, times=explicit)


def _load_generator(spec: str, device: torch.device):
    from .checkpoints import load_generator

    if spec != "builtin":
        _need_file(spec, "generator checkpoint")
    return load_generator(spec, device=device)


# --- commands -----------------------------------------------------------------------------------------------

def cmd_demo(args) -> None:
    from .builtin.demo import run_demo

    metrics = run_demo(args.out, quick=args.quick, device=resolve_device(args.device), seed=args.seed,
                       progress=lambda desc: progress_bar(desc, args.quiet), log=_log(args))
    _log(args)(f"psnr_dynamics {metrics['psnr_dynamics']:.2f} dB, psnr_linear {metrics['psnr_linear']:.2f} dB; "
               f"outputs in {args.out}")


def _read_frames(args):
    from .video import read_video

    frames, fps = read_video(_need_file(args.input, "input clip"), max_frames=args.max_frames)
    fps = args.fps or fps
    index = torch.arange(0, frames.shape[0], args.every)
    times = index.float() / fps if fps else index.float()
    return frames[index], times, fps


def _encoder_arg(spec: str | None):
    """--encoder: 'auto' (default), 'none', 'builtin' or an encoder checkpoint path."""
    name = (spec or "auto").strip()
    if name.lower() == "none":
        return None
    if name.lower() in ("auto", "builtin"):
        return name.lower()
    return _need_file(name, "encoder checkpoint")


def _check_perceptual(args) -> None:
    if args.perceptual:  # fail before any long work
        from .perceptual import load_perceptual_weights
        load_perceptual_weights(args.perceptual)


def _invert(args, G, frames, times, log):
    from .inversion import invert

    encoder = _encoder_arg(getattr(args, "encoder", None))
    with progress_bar("invert", args.quiet) as bar:
        clip = invert(G, frames, encoder=encoder, times=times, space=args.space, steps=args.steps,
                      warm_steps=args.warm_steps, smoothness=args.smoothness, perceptual=args.perceptual,
                      batch_size=args.batch_size, memory=args.memory, seed=args.seed, progress=bar)
    q = torch.tensor(clip.metadata["psnr"])
    log(f"inverted {len(frames)} frames ({clip.metadata['inversion']}"
        f"{', encoder ' + clip.metadata['encoder'] if 'encoder' in clip.metadata else ''}): reconstruction PSNR "
        f"mean {q.mean():.2f} dB (min {q.min():.2f})")
    return clip


def cmd_invert(args) -> None:
    from .codes import save_codes

    device = resolve_device(args.device)
    _check_perceptual(args)
    frames, times, fps = _read_frames(args)
    G = _load_generator(args.generator, device)
    log = _log(args)
    log(f"inverting {len(frames)} frames of {args.input} into {args.space.upper()} "
        f"({'times in seconds at ' + format(fps, '.3g') + ' fps' if fps else 'times in frame numbers'})")
    clip = _invert(args, G, frames, times, log)
    save_codes(args.out, clip.codes.cpu(), times, G=G,
               metadata={k: clip.metadata[k] for k in ("psnr", "inversion", "encoder") if k in clip.metadata}
               | {"source": Path(args.input).name})
    log(f"wrote {args.out}: codes {list(clip.codes.shape)}")


def cmd_tune(args) -> None:
    from .checkpoints import save_generator
    from .codes import generator_fingerprint, load_codes
    from .tuning import tune_generator

    device = resolve_device(args.device)
    _check_perceptual(args)
    frames, times, _ = _read_frames(args)
    G = _load_generator(args.generator, device)
    log = _log(args)
    if args.codes:
        clip = load_codes(_need_file(args.codes, "codes file"), G, strict=not getattr(args, "force", False))
        if clip.codes.shape[0] != frames.shape[0]:
            raise CLIError(f"--codes holds {clip.codes.shape[0]} codes but {frames.shape[0]} frames were read from "
                           f"{args.input} (use the same --every / --max-frames as for `dynode invert`)")
        codes = clip.codes
    else:
        codes = _invert(args, G, frames, times, log).codes
    log(f"tuning the generator on {len(frames)} frames ({args.tune_steps} steps)")
    with progress_bar("tune", args.quiet) as bar:
        G2 = tune_generator(G, frames, codes, steps=args.tune_steps, lr=args.lr, locality=args.locality,
                            perceptual=args.perceptual, seed=args.seed, progress=bar, memory=args.memory)
    save_generator(G2, args.out, metadata={"tuned_from": generator_fingerprint(G), "tuned_on": Path(args.input).name,
                                           "tune_steps": str(args.tune_steps)})
    log(f"wrote {args.out} (a tuned copy; {args.generator} is unchanged)")


def cmd_fit(args) -> None:
    from . import fit_dynamics
    from .codes import load_codes

    f = load_codes(_need_file(args.codes, "codes file"))
    options = _parse_options(args.option)
    _check_fit_options(args.kind, options)
    if args.seed is not None:
        options.setdefault("seed", args.seed)
    log = _log(args)
    log(f"fitting {args.kind} dynamics to {f.codes.shape[0]} codes {list(f.codes.shape[1:])}")
    t0 = time.perf_counter()
    with progress_bar(f"fit {args.kind}", args.quiet) as bar:
        # the clip's generator identity becomes dyn.metadata, so `dynode sample` stamps its output
        dyn = fit_dynamics(f.to(resolve_device(args.device)), kind=args.kind, progress=bar, **options)
    dyn.save(args.out)
    log(f"wrote {args.out} ({time.perf_counter() - t0:.1f} s)")


def _check_fit_options(kind: str, options: dict) -> None:
    """Names and value types of --option against fit_dynamics' defaults (before the fit starts)."""
    from . import dynamics_options
    from ._limits import check_dynamics_config
    from .dynamics.kinds import kind_class
    from .dynamics.options import ALIASES, check_options

    defaults = dynamics_options(kind)
    for k, v in options.items():
        name = ALIASES.get(k, k)
        if name not in defaults:
            raise CLIError(f"--option {k}: unknown option for --kind {kind}; valid: {', '.join(sorted(defaults))}")
        d = defaults[name]
        number = isinstance(v, (int, float)) and not isinstance(v, bool)
        if isinstance(d, bool) and not isinstance(v, bool):
            raise CLIError(f"--option {k}={v!r}: expected true or false")
        if isinstance(d, (int, float)) and not isinstance(d, bool) and not number:
            raise CLIError(f"--option {k}={v!r}: expected a number")
        if not isinstance(d, (bool, int, float, str)) and d is not None and not isinstance(v, type(d)):
            raise CLIError(f"--option {k}={v!r}: expected a value like {d!r}")
    check_dynamics_config(options, "--option")
    try:  # the values too (choices, ranges), before any work starts
        check_options(kind_class(kind), dict(options))
    except (TypeError, ValueError) as e:
        raise CLIError(f"--option: {e}") from None


def _check_identity(a: dict, b: dict, a_name: str, b_name: str, force: bool) -> None:
    """Generator stamps of two files must agree where both have them (unless --force)."""
    diff = [k for k in _IDENTITY if k in a and k in b and str(a[k]) != str(b[k])]
    if diff and not force:
        raise CLIError(f"{a_name} and {b_name} belong to different generators ({diff[0]} {a[diff[0]]} vs "
                       f"{b[diff[0]]}); pass --force to combine them anyway")


def _load_dyn(path: str):
    from . import load_dynamics

    return load_dynamics(_need_file(path, "dynamics file"))


def cmd_sample(args) -> None:
    from .codes import load_codes, save_codes
    from .trajectory import sample_clip

    dyn = _load_dyn(args.dynamics)
    src = load_codes(_need_file(args.codes, "codes file")) if args.codes else None
    meta = dyn.metadata
    if src is not None:
        _check_identity(src.metadata, dyn.metadata, f"--codes {args.codes}", f"dynamics {args.dynamics}", args.force)
        meta = {**src.metadata, **dyn.metadata} if not args.force else src.metadata
    z0 = None
    if args.z0:
        zf = load_codes(_need_file(args.z0, "z0 codes file"))
        _check_identity(zf.metadata, dyn.metadata, f"--z0 {args.z0}", f"dynamics {args.dynamics}", args.force)
        z0 = zf.codes[:1]
        meta = {**zf.metadata, **dyn.metadata} if not args.force else zf.metadata
    times = _grid(args, src.times if src is not None else dyn.times)
    out = sample_clip(dyn, times, z0=z0, seed=args.seed, keyframes=args.keyframes)
    save_codes(args.out, out.replace(metadata={k: meta[k] for k in _IDENTITY if k in meta}))
    _log(args)(f"wrote {args.out}: codes {list(out.codes.shape)} at {len(times)} times "
               f"[{float(times[0]):.3g} .. {float(times[-1]):.3g}]")


def cmd_edit(args) -> None:
    from .codes import load_codes, save_codes
    from .editing import edit_all, edit_initial, load_direction
    from .trajectory import sample_clip

    f = load_codes(_need_file(args.codes, "codes file"))
    d = load_direction(args.direction, index=args.index, normalize=args.normalize)
    layers = _parse_layers(args.layers)
    if args.mode == "all":
        out = edit_all(f, d, args.strength, layers=layers)
    else:
        if not args.dynamics:
            raise CLIError("--mode initial carries the edit through the clip with the fitted dynamics: "
                           "give --dynamics DYN.safetensors (or use --mode all)")
        dyn = _load_dyn(args.dynamics)
        _check_identity(f.metadata, dyn.metadata, f"codes {args.codes}", f"--dynamics {args.dynamics}", args.force)
        z0 = edit_initial(f, d, args.strength, layers=layers)
        out = sample_clip(dyn, _grid(args, f.times), z0=z0, seed=args.seed, keyframes=args.keyframes)
    save_codes(args.out, out.replace(metadata={**f.identity, "edit": Path(str(args.direction)).stem,
                                               "strength": args.strength, "edit_mode": args.mode}))
    _log(args)(f"wrote {args.out}: edited codes {list(out.codes.shape)}")


def cmd_decode(args) -> None:
    from .codes import load_codes
    from .decoding import decode
    from .video import write_video

    G = _load_generator(args.generator, resolve_device(args.device))
    f = load_codes(_need_file(args.codes, "codes file"), G, strict=not args.force)
    with progress_bar("decode", args.quiet) as bar:
        frames = decode(G, f.codes, batch_size=args.batch_size, progress=bar)
    fps = args.fps
    if fps is None:
        dt = torch.diff(f.times.double())
        fps = float(1 / dt.median()) if len(dt) and dt.median() > 0 else 12.0
    write_video(args.out, frames, fps=fps)
    _log(args)(f"wrote {args.out}: {len(frames)} frames at {fps:.3g} fps")


def _parse_edit(text: str | None):
    """'NAME_OR_FILE:STRENGTH' -> (direction, strength)."""
    from .editing import load_direction

    if not text:
        return None
    name, sep, strength = text.rpartition(":")
    if not sep or not name:
        raise CLIError(f"--edit expects NAME_OR_FILE:STRENGTH (e.g. smile:1.5), got {text!r}")
    try:
        value = float(strength)
    except ValueError:
        raise CLIError(f"--edit strength must be a number, got {strength!r} in {text!r}") from None
    if not math.isfinite(value):
        raise CLIError(f"--edit strength must be finite, got {strength!r}")
    return load_direction(name), value


def cmd_video(args) -> None:
    from .video_pipeline import process_video

    src, out = _need_file(args.input, "input video"), Path(args.out)
    if out.suffix.lower() not in (".mp4", ".m4v", ".mov", ".mkv"):
        raise CLIError(f"--out must be a video file (.mp4, .mov, .mkv), got {out}")
    if out.exists() and not args.overwrite:
        raise CLIError(f"{out} exists; pass --overwrite to replace it")
    if args.kind not in ("ode", "sde"):
        raise CLIError(f"--kind must be ode or sde, got {args.kind!r}")
    edit = _parse_edit(args.edit)
    fit_options = _parse_options(args.option)
    _check_fit_options(args.kind, fit_options)
    device = resolve_device(args.device)
    G = _load_generator(args.generator, device)
    summary = process_video(src, out, G, encoder=_encoder_arg(args.encoder), factor=args.factor, edit=edit, kind=args.kind,
                            overwrite=args.overwrite, invert_options={"steps": args.steps}, fit_options=fit_options,
                            seed=args.seed,
                            max_frames=args.max_frames, stage=lambda name: progress_bar(name, args.quiet),
                            log=_log(args))
    _log(args)(f"wrote {out}: {summary['frames_out']} frames at {summary['fps_out']:g} fps from "
               f"{summary['frames_in']} at {summary['fps_in']:g} fps (face found in {summary['faces_found']}); "
               f"{sum(summary['seconds'].values()):.1f} s")


def cmd_convert(args) -> None:
    from .checkpoints import convert_checkpoint

    out = convert_checkpoint(_need_file(args.src, "checkpoint"), args.dst)
    _log(args)(f"wrote {out}")


def cmd_convert_perceptual(args) -> None:
    from .perceptual import convert_perceptual

    out = convert_perceptual(_need_file(args.src, "perceptual weights"), args.dst, overwrite=args.overwrite)
    _log(args)(f"wrote {out} (tensors only; nothing in {args.src} was run)")


def _log(args):
    return (lambda msg: None) if getattr(args, "quiet", False) else (lambda msg: print(msg, file=sys.stderr))


# --- parser -------------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = g.Parser(prog="dynode", description=__doc__)
    p.add_argument("--traceback", action="store_true", help="show full tracebacks on errors")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(sp, device=True):
        sp.add_argument("-q", "--quiet", action="store_true", help="no progress bars or messages")
        sp.add_argument("--threads", type=int, default=None,
                        help="CPU threads (default: one for images up to 128 px, else torch's default)")
        if device:
            sp.add_argument("--device", default="auto", help="auto (default), cpu, cuda or mps")

    def grid(sp):
        sp.add_argument("--factor", type=g.frame_count, default=1, help="×k frames between consecutive keyframes")
        sp.add_argument("--extrapolate", type=g.nonneg_float, default=0.0,
                        help="seconds to continue past the last keyframe")
        sp.add_argument("--times", help="explicit comma-separated times (added to the grid)")

    sp = sub.add_parser("demo", help="the whole pipeline on the built-in generator (no downloads)")
    sp.add_argument("--out", required=True, help="output folder")
    sp.add_argument("--quick", action="store_true", help="tiny settings that finish in seconds (smoke test)")
    sp.add_argument("--seed", type=g.nonneg_int, default=0)
    common(sp)
    sp.set_defaults(func=cmd_demo, out_folder_ok=True)

    def clip_input(sp):
        sp.add_argument("generator", help="checkpoint (.safetensors / rosinality .pt / NVIDIA .pkl / pSp-e4e-ReStyle "
                        ".pt: its decoder) or 'builtin'")
        sp.add_argument("input", help="image folder, GIF, WebP or video file (video needs PyAV)")
        sp.add_argument("--fps", type=g.fps, help="frame rate of the input (read from the file when it has one)")
        sp.add_argument("--every", type=g.frame_count, default=1, help="keep every k-th frame (sparse keyframes)")
        sp.add_argument("--max-frames", type=g.frame_count, help="read at most this many frames")

    def inversion(sp):
        sp.add_argument("--encoder", default="auto",
                        help="auto (default: the built-in encoder for the built-in generator, else none), builtin, "
                             "none (optimisation only) or a pSp / e4e / ReStyle checkpoint .pt")
        sp.add_argument("--space", choices=("w", "w+"), default="w+")
        sp.add_argument("--steps", type=g.step_count, default=300,
                        help="optimisation only: steps of the anchor frames")
        sp.add_argument("--warm-steps", type=g.step_count, default=None, help="steps of each warm-started pass")
        sp.add_argument("--smoothness", type=g.nonneg_float, default=0.0,
                        help="weight of the temporal smoothness term")
        sp.add_argument("--perceptual", help="local VGG16 weights (.safetensors, see `dynode convert-perceptual`) "
                        "for a perceptual loss (never downloaded)")
        sp.add_argument("--batch-size", type=g.batch_size, default=16)
        sp.add_argument("--memory", default=None, help="memory budget, e.g. 8GB (default: 70%% of the free RAM or "
                        "VRAM); fewer frames are optimised at once when --batch-size would not fit")
        sp.add_argument("--seed", type=g.nonneg_int, default=0)

    sp = sub.add_parser("invert", help="video/GIF/image folder -> codes .safetensors")
    clip_input(sp)
    sp.add_argument("--out", required=True, help="codes file to write (.safetensors)")
    inversion(sp)
    common(sp)
    sp.set_defaults(func=cmd_invert, out_suffixes=(".safetensors",))

    sp = sub.add_parser("tune", help="pivotal tuning: video + its codes -> a tuned generator .safetensors")
    clip_input(sp)
    sp.add_argument("--out", required=True, help="generator file to write (.safetensors)")
    sp.add_argument("--codes", help="codes of the same frames from `dynode invert` (default: invert them first)")
    sp.add_argument("--force", action="store_true", help="use --codes even if they are stamped with another generator")
    sp.add_argument("--tune-steps", type=g.step_count, default=300, help="tuning steps")
    sp.add_argument("--lr", type=g.positive_float, default=2e-3, help="tuning learning rate")
    sp.add_argument("--locality", type=g.nonneg_float, default=0.1,
                    help="weight of the term that keeps codes other than the clip's decoding as before")
    inversion(sp)
    common(sp)
    sp.set_defaults(func=cmd_tune, out_suffixes=(".safetensors",))

    sp = sub.add_parser("fit", help="codes -> fitted dynamics .safetensors")
    sp.add_argument("codes", help="codes file from `dynode invert`")
    sp.add_argument("--out", required=True, help="dynamics file to write (.safetensors)")
    sp.add_argument("--kind", choices=("ode", "cde", "sde"), default="ode")
    sp.add_argument("--option", action="append", metavar="KEY=VALUE", help=OPTION_HELP)
    sp.add_argument("--seed", type=g.nonneg_int, default=None)
    common(sp)
    sp.set_defaults(func=cmd_fit, out_suffixes=(".safetensors",))

    sp = sub.add_parser("sample", help="fitted dynamics -> codes on a time grid")
    sp.add_argument("dynamics", help="dynamics file from `dynode fit`")
    sp.add_argument("--out", required=True, help="codes file to write (.safetensors)")
    sp.add_argument("--codes", help="the fitted clip's codes file: its times make the grid (default: the times "
                    "the dynamics were fitted at)")
    sp.add_argument("--z0", help="start from the first code of this codes file instead (e.g. another face)")
    sp.add_argument("--seed", type=g.nonneg_int, default=None, help="SDE sample seed")
    sp.add_argument("--force", action="store_true",
                    help="use --codes / --z0 even if their generator stamp differs from the dynamics file's")
    sp.add_argument("--keyframes", action=argparse.BooleanOptionalAction, default=None,
                    help="--keyframes: the path passes through the observed codes (moved by --z0's offset); "
                         "--no-keyframes: the pure initial-value model, the dynamics alone from the first code "
                         "(or --z0). Default: as the dynamics were fitted (their keyframes option)")
    grid(sp)
    common(sp, device=False)
    sp.set_defaults(func=cmd_sample, out_suffixes=(".safetensors",))

    sp = sub.add_parser("edit", help="move codes along a direction (first frame + dynamics, or every frame)")
    sp.add_argument("codes", help="codes file")
    sp.add_argument("--direction", required=True, help="direction file (.safetensors/.npy/.npz/.pt) or a built-in name")
    sp.add_argument("--strength", type=g.finite_float, required=True)
    sp.add_argument("--index", type=g.nonneg_int, help="component index in files holding several directions (GANSpace)")
    sp.add_argument("--normalize", action="store_true", help="scale the direction to unit norm first")
    sp.add_argument("--layers", help="W+ layers to edit: start:stop or a comma list (default all)")
    sp.add_argument("--mode", choices=("initial", "all"), default="initial",
                    help="initial: edit the first code and run the dynamics from it (needs --dynamics); "
                         "all: the same offset on every code")
    sp.add_argument("--dynamics", help="dynamics file from `dynode fit` (for --mode initial)")
    sp.add_argument("--keyframes", action=argparse.BooleanOptionalAction, default=False,
                    help="--mode initial: --keyframes pins the path to the observed codes moved by the edit; "
                         "--no-keyframes (default) runs the learned dynamics alone from the edited first code "
                         "(the paper's recipe)")
    sp.add_argument("--out", required=True, help="codes file to write (.safetensors)")
    sp.add_argument("--seed", type=g.nonneg_int, default=None)
    sp.add_argument("--force", action="store_true",
                    help="use --dynamics even if its generator stamp differs from the codes file's")
    grid(sp)
    common(sp, device=False)
    sp.set_defaults(func=cmd_edit, out_suffixes=(".safetensors",))

    sp = sub.add_parser("decode", help="codes -> video (GIF, WebP, MP4 with PyAV, or a PNG folder)")
    sp.add_argument("generator", help="checkpoint or 'builtin'")
    sp.add_argument("codes", help="codes file")
    sp.add_argument("--out", required=True, help=".gif, .webp, .mp4 or a folder for PNG frames")
    sp.add_argument("--fps", type=g.fps, help="default: from the codes' times")
    sp.add_argument("--batch-size", type=g.batch_size, default=8)
    sp.add_argument("--force", action="store_true", help="decode codes made with another generator anyway")
    common(sp)
    sp.set_defaults(func=cmd_decode, out_folder_ok=True, out_suffixes=_video_suffixes(), out_folder_files=_frame_names())

    sp = sub.add_parser("video", help="face video -> the same video re-drawn through the generator at a higher "
                        "frame rate, optionally edited (MP4 in, MP4 out)",
                        description="Read a face video, align the face in every frame, invert the crops into the "
                        "generator's latent space, fit latent dynamics, sample them at FACTOR x the frame rate, "
                        "optionally edit the first frame and let the dynamics carry the edit, decode, paste the "
                        "faces back into the frames and write an MP4 at FACTOR x the frame rate, the same frame "
                        "size, with the source's audio. In-between frames show the nearest source frame's "
                        "background with the face pasted at the interpolated position. Needs the 'faces' extra "
                        "(pip install \"dynode[faces]\").")
    sp.add_argument("input", help="input video file (MP4, MOV, MKV, WebM, AVI)")
    sp.add_argument("--out", required=True, help="output video file (.mp4); written to a temporary name and "
                    "renamed when complete")
    sp.add_argument("--generator", default="builtin", help="StyleGAN2 checkpoint (.safetensors, rosinality .pt, "
                    "NVIDIA .pkl; FFHQ-aligned face models) or 'builtin' (default: the built-in cartoon generator, "
                    "aligned with its own framing)")
    sp.add_argument("--encoder", default="auto", help="image encoder whose codes start the inversion: 'auto' "
                    "(default: the built-in encoder for the built-in generator, else none), 'builtin', 'none' "
                    "(optimisation only) or a pSp / e4e / ReStyle checkpoint PATH")
    sp.add_argument("--factor", type=int, default=4, help="output frame rate = FACTOR x the input's (default 4)")
    sp.add_argument("--edit", metavar="NAME_OR_FILE:STRENGTH", help="edit the first frame along a direction (a "
                    "built-in name such as smile, or a direction file) by STRENGTH and let the dynamics carry it")
    sp.add_argument("--kind", default="ode", choices=("ode", "sde"), help="latent dynamics: ode (default) or sde")
    sp.add_argument("--option", action="append", metavar="KEY=VALUE", help=OPTION_HELP)
    sp.add_argument("--steps", type=int, default=300, help="inversion steps of the anchor frames (default 300)")
    sp.add_argument("--max-frames", type=int, help="use at most this many frames of the input")
    sp.add_argument("--seed", type=int, default=0, help="seed of the SDE sample (default 0)")
    sp.add_argument("--overwrite", action="store_true", help="replace --out if it exists (refused otherwise)")
    common(sp)
    sp.set_defaults(func=cmd_video, out_suffixes=(".mp4", ".m4v", ".mov", ".mkv"))

    sp = sub.add_parser("convert", help="rosinality .pt / NVIDIA .pkl -> DynODE .safetensors")
    sp.add_argument("src")
    sp.add_argument("dst")
    common(sp, device=False)
    sp.set_defaults(func=cmd_convert, out_suffixes=(".safetensors",))

    sp = sub.add_parser("convert-perceptual", help="VGG16 weights (e.g. NVIDIA's TorchScript vgg16.pt) -> "
                        ".safetensors for --perceptual, reading tensors only (nothing in the file is run)")
    sp.add_argument("src")
    sp.add_argument("dst")
    common(sp, device=False)
    sp.set_defaults(func=cmd_convert_perceptual, out_suffixes=(".safetensors",))
    g.add_overwrite_flags(sub)
    g.harden(sub)  # every plain int / float option of every command (also ones added later) gets checked
    return p


def _frame_names():
    from .video import _FRAME_RE

    return _FRAME_RE


def _video_suffixes() -> tuple[str, ...]:
    from .video import WRITE_SUFFIXES

    return WRITE_SUFFIXES


def main(argv: list[str] | None = None) -> int:
    """Run one command. Exit codes: 0 done, 2 a problem with the input or the command line (one line on
    stderr, no traceback; --traceback shows it), 130 interrupted (Ctrl-C or SIGTERM), 1 a bug (traceback)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    g.install_signal_handlers()
    g.one_line_warnings()
    try:
        g.check_outputs(args)  # before any long work
        with thread_scope(getattr(args, "threads", None)):
            args.func(args)
    except KeyboardInterrupt:
        print("dynode: interrupted; files being written were left untouched", file=sys.stderr)
        return 130
    except Exception as e:
        msg = g.user_error(e)
        if msg is None or args.traceback:
            raise
        print(f"dynode {args.command}: error: {msg}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
