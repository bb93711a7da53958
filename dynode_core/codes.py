"""Latent codes on disk: `.safetensors` files holding a `Clip` — `codes` [T, L, D] and `times` [T] — stamped
with the identity of the generator they belong to so that codes of one generator are not silently decoded by
another.

Metadata written (all strings): `format` ("dynode-codes/1"), `space` ("w" or "w+"), and when a generator is
given `w_dim`, `num_ws`, `resolution`, `generator` (a fingerprint of its config and weights); plus any
extra entries the caller passes (e.g. inversion PSNR).
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ._files import atomic_write as _atomic_write
from .clip import Clip, as_codes
from .errors import GeneratorMismatch

__all__ = ["save_codes", "load_codes", "generator_fingerprint", "generator_identity", "check_codes"]

FORMAT = "dynode-codes/1"
_CODE_KEYS = ("codes", "latents", "ws", "w", "latent")

CodeFile = Clip  # the name `load_codes`' result had before Clip (it unpacks the same way)


def generator_fingerprint(G: torch.nn.Module) -> str:
    """A short hex digest identifying a generator by its config and weights.

    Hashes the config and, for every tensor of the state dict, its name, shape and up to 256 leading values
    rounded to float16, so the digest is the same on any device and in float32 or float16, and differs for
    different checkpoints. It is cheap even for a 1024-px generator.
    """
    h = hashlib.sha256(json.dumps(getattr(G, "config", {}), sort_keys=True).encode())
    for name, t in sorted(G.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().flatten()[:256].to("cpu", torch.float16).numpy().tobytes())
    return h.hexdigest()[:16]


def generator_identity(G: torch.nn.Module) -> dict[str, str]:
    """The metadata entries that stamp codes as G's: w_dim, num_ws, resolution and the fingerprint."""
    return {"w_dim": str(G.w_dim), "num_ws": str(G.num_ws), "resolution": str(G.resolution),
            "generator": generator_fingerprint(G)}


def check_codes(codes: torch.Tensor | Clip, G: torch.nn.Module, what: str = "codes") -> torch.Tensor:
    """Validate codes [T, L, D] (or a Clip's) for generator G (L = 1 for W, G.num_ws for W+); [T, D] becomes
    [T, 1, D]. A shape that belongs to another generator raises `GeneratorMismatch` (a ValueError)."""
    if isinstance(codes, Clip):
        codes = codes.codes
    if not isinstance(codes, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor [T, L, D], got {type(codes).__name__}")
    if codes.ndim == 2:
        codes = codes[:, None]
    if codes.ndim != 3:
        raise ValueError(f"{what} must have shape [T, L, D], got {list(codes.shape)}")
    if codes.shape[0] == 0:
        raise ValueError(f"{what} is empty (T = 0)")
    if codes.shape[2] != G.w_dim:
        raise GeneratorMismatch(f"{what} have w_dim {codes.shape[2]} but the generator's w_dim is {G.w_dim}: "
                         f"these codes belong to another generator")
    if codes.shape[1] not in (1, G.num_ws):
        raise GeneratorMismatch(f"{what} have {codes.shape[1]} layers but the generator has num_ws = {G.num_ws} "
                         f"(expected 1 for W or {G.num_ws} for W+): these codes belong to another generator")
    if not torch.isfinite(codes).all():
        raise ValueError(f"{what} contain NaN or infinite values")
    return codes


def save_codes(path: str | os.PathLike, clip: Clip | torch.Tensor, times: torch.Tensor | None = None,
               G: torch.nn.Module | None = None, metadata: dict | None = None) -> Path:
    """Save a Clip (or codes [T, L, D] with times [T], default 0..T-1) to `.safetensors`.

    `save_codes(path, clip)` writes the clip's codes, times and metadata (its generator identity included);
    `save_codes(path, codes, times, G=G)` is the same with a tensor. With G, the codes are checked against it
    and stamped with its identity; `metadata` entries are added on top (non-str values JSON-encoded).
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"codes are saved as .safetensors, got {path.name!r}")
    if isinstance(clip, Clip):
        if times is not None:
            raise TypeError("save_codes(path, clip) takes the times from the clip; pass times= only with a tensor")
        codes, t, meta_in = clip.codes, clip.times, clip.metadata
    else:
        codes, meta_in = as_codes(clip), {}
        t = None if times is None else torch.as_tensor(times).flatten().float()
    codes = check_codes(codes, G) if G is not None else codes
    if codes.ndim != 3 or codes.shape[0] == 0:
        raise ValueError(f"codes must have shape [T, L, D] with T >= 1, got {list(codes.shape)}")
    t = torch.arange(codes.shape[0], dtype=torch.float32) if t is None else t
    if t.numel() != codes.shape[0]:
        raise ValueError(f"times has {t.numel()} entries but codes has {codes.shape[0]} frames")
    if not (torch.isfinite(codes).all() and torch.isfinite(t).all()):
        raise ValueError("codes or times contain NaN or infinite values; nothing was written")
    out = Clip(codes, t, {**meta_in, **(generator_identity(G) if G is not None else {}), **(metadata or {})})
    meta = {**out.json_metadata(), "format": FORMAT, "space": out.space}
    tensors = {"codes": codes.detach().float().cpu().contiguous(), "times": out.times.contiguous()}
    _atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))
    return path


def load_codes(path: str | os.PathLike, G: torch.nn.Module | None = None, strict: bool = True) -> Clip:
    """Load a Clip saved by `save_codes` (or any safetensors file with one [T, L, D] tensor, e.g. `latents`).

    The clip's metadata is the file's header (str -> str; `format` and `space` included), so the generator
    identity travels on with the codes. With G, checks that the codes fit it (w_dim, num_ws) and were made
    with it (fingerprint): a mismatch is a `GeneratorMismatch` (a ValueError), or only a warning with
    `strict=False` (e.g. the same checkpoint converted to another format). Codes come back on the CPU.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"codes file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"{path} is not a readable .safetensors file: {e}") from e
    key = next((k for k in _CODE_KEYS if k in tensors), None)
    if key is None:
        big = [k for k, v in tensors.items() if v.ndim in (2, 3)]
        if len(big) != 1:
            raise ValueError(f"{path} has no 'codes' tensor (found {sorted(tensors)}); expected codes [T, L, D]")
        key = big[0]
    codes = tensors[key].float()
    if codes.ndim == 2:
        codes = codes[:, None]
    if codes.ndim != 3:
        raise ValueError(f"{path}: '{key}' has shape {list(codes.shape)}, expected codes [T, L, D]")
    times = tensors.get("times", torch.arange(codes.shape[0])).float().flatten()
    if times.numel() != codes.shape[0]:
        raise ValueError(f"{path}: times has {times.numel()} entries but codes has {codes.shape[0]} frames")
    if codes.shape[0] == 0 or not (torch.isfinite(codes).all() and torch.isfinite(times).all()):
        raise ValueError(f"{path}: codes or times are empty or contain NaN / infinite values")
    if G is not None:
        fp = meta.get("generator")
        if "num_ws" in meta and meta["num_ws"] != str(G.num_ws) or "w_dim" in meta and meta["w_dim"] != str(G.w_dim):
            raise GeneratorMismatch(f"{path} was made with a generator of num_ws={meta.get('num_ws')}, "
                             f"w_dim={meta.get('w_dim')}, but this generator has num_ws={G.num_ws}, w_dim={G.w_dim}")
        check_codes(codes, G, what=f"codes in {path}")
        if fp is not None and fp != generator_fingerprint(G):
            msg = (f"{path} was made with another generator (fingerprint {fp}, this one is "
                   f"{generator_fingerprint(G)}); its codes would decode to different images")
            if strict:
                raise GeneratorMismatch(msg + " (pass strict=False / --force to use them anyway)")
            warnings.warn(msg, stacklevel=2)
    return Clip(codes, times, meta)
