"""Reading and writing StyleGAN2 generator checkpoints.

Formats read by `load_generator` (detected from the file's bytes, not its extension):

* DynODE `.safetensors`: `Generator.state_dict()` tensors plus metadata
  `{"format": "dynode-stylegan2", "format_version": "1", "config": <json of G.config>, ...}`.
* rosinality/stylegan2-pytorch `.pt` (added below).
* NVIDIA stylegan2-ada-pytorch `.pkl` (added below).

`save_generator` writes the first; `convert_checkpoint` converts any readable file to it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .stylegan2 import Generator

FORMAT_NAME = "dynode-stylegan2"
FORMAT_VERSION = "1"
BUILTIN_GENERATOR = Path(__file__).resolve().parent / "assets" / "builtin_generator.safetensors"
_SUPPORTED = (
    "supported formats: DynODE .safetensors (written by save_generator / `dynode convert`), "
    "rosinality/stylegan2-pytorch .pt (converted {'g_ema', 'latent_avg'} or training checkpoints "
    "{'g', 'g_ema', 'd', 'args', ...}), NVIDIA stylegan2-ada-pytorch network snapshot .pkl "
    "({'G', 'D', 'G_ema', ...}, unconditional)"
)


class CheckpointError(ValueError):
    """A file that is not a generator checkpoint this module can read."""


def _fail(path: str | os.PathLike, what: str) -> CheckpointError:
    return CheckpointError(f"cannot load {str(path)!r}: {what}. {_SUPPORTED}.")


def _atomic_write(path: Path, write) -> None:
    """Call `write(tmp_path)` on a temp file in `path`'s folder, then move it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def save_generator(G: Generator, path: str | os.PathLike, metadata: dict | None = None) -> Path:
    """Write `G` as a DynODE `.safetensors` file (weights, noise buffers, `w_avg`, config).

    `metadata` values are stored as strings (non-strings as JSON). The file is written to a temp name in the
    same folder and moved into place, so an existing file is never left half-written. Returns the path.
    """
    path = Path(path)
    meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()}
    meta.update({"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "config": json.dumps(G.config)})
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in G.state_dict().items()}
    _atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))
    return path


def _resolve(path_or_name: str | os.PathLike) -> Path:
    if isinstance(path_or_name, str) and path_or_name.strip().lower() == "builtin":
        if not BUILTIN_GENERATOR.is_file():
            raise CheckpointError(
                f"the built-in generator is missing: expected {str(BUILTIN_GENERATOR)!r} inside the installed "
                "dynode_core package (reinstall the package, or train it with the script in scripts/)")
        return BUILTIN_GENERATOR
    path = Path(path_or_name).expanduser()
    if not path.exists():
        raise _fail(path, "no such file (the only built-in name is 'builtin')")
    if path.is_dir():
        raise _fail(path, "it is a directory, not a checkpoint file")
    return path


def _finish(G: Generator, device, dtype) -> Generator:
    G = G.to(device=device, dtype=dtype) if dtype is not None else G.to(device)
    G.eval().requires_grad_(False)
    return G


def _read_safetensors(path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises its own error types for damaged headers / truncated data
        raise _fail(path, f"damaged or truncated safetensors file ({e})") from None
    return meta, tensors


def _load_safetensors(path: Path) -> Generator:
    meta, tensors = _read_safetensors(path)
    if meta.get("format") != FORMAT_NAME:
        raise _fail(path, f"a safetensors file without DynODE generator metadata (format={meta.get('format')!r})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise _fail(path, f"DynODE format_version {meta.get('format_version')!r}; this version reads "
                          f"{FORMAT_VERSION!r}")
    try:
        config = json.loads(meta["config"])
        G = Generator(**config)
    except Exception as e:
        raise _fail(path, f"DynODE safetensors with an unusable config ({e})") from None
    _load_state(G, tensors, path)
    return G


def _load_state(G: Generator, tensors: dict[str, torch.Tensor], path) -> None:
    own = G.state_dict()
    missing = sorted(set(own) - set(tensors))
    extra = sorted(set(tensors) - set(own))
    bad = [f"{k}: {list(tensors[k].shape)} vs {list(v.shape)}" for k, v in own.items()
           if k in tensors and tensors[k].shape != v.shape]
    if missing or extra or bad:
        parts = []
        if missing:
            parts.append(f"missing tensors {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        if extra:
            parts.append(f"unexpected tensors {extra[:5]}{' ...' if len(extra) > 5 else ''}")
        if bad:
            parts.append(f"wrong shapes {bad[:5]}")
        raise _fail(path, "tensors do not match the generator layout: " + "; ".join(parts))
    G.load_state_dict({k: v.to(own[k].dtype) for k, v in tensors.items()})


def _sniff(path: Path) -> str:
    size = path.stat().st_size
    if size == 0:
        raise _fail(path, "the file is empty")
    with open(path, "rb") as f:
        head = f.read(64)
    n = int.from_bytes(head[:8], "little") if len(head) >= 8 else 0
    if len(head) >= 9 and 0 < n <= size - 8 and head[8:9] == b"{":
        return "safetensors"
    if len(head) >= 9 and head[8:9] == b"{" and n > size - 8:
        raise _fail(path, "a truncated safetensors file (header longer than the file)")
    if head.startswith(b"PK\x03\x04"):
        return "torch-zip"
    if head[:1] == b"\x80":
        return "pickle"
    raise _fail(path, f"unrecognised file contents (first bytes {head[:16]!r})")


def load_generator(path_or_name: str | os.PathLike = "builtin", device: str | torch.device = "cpu",
                   dtype: torch.dtype | None = None) -> Generator:
    """Load a StyleGAN2 generator from a checkpoint file, or the shipped one with `"builtin"`.

    Every size is read from the file. The result is in eval mode with gradients off; `dtype` (e.g.
    `torch.bfloat16`) is opt-in, float32 otherwise. Raises `CheckpointError` for anything it cannot read.
    """
    path = _resolve(path_or_name)
    kind = _sniff(path)
    if kind == "safetensors":
        G = _load_safetensors(path)
    else:
        raise _fail(path, f"a {kind} file (not yet supported)")
    return _finish(G, device, dtype)
