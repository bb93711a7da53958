"""Latent edits of a clip: move codes along a direction, either only the first one (then let the learned
dynamics carry the edit through the clip, the paper's method: `dyn.sample(times, z0=edit_initial(...))`)
or every code by the same offset; plus temporal-consistency figures to compare the two.

Directions are [D] (one W direction, applied to every layer or to `layers`) or [L, D] (one per W+ layer).
"""

from __future__ import annotations

import os
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from safetensors import SafetensorError, safe_open

from ._limits import check
from ._torchzip import scan_torch_zip

from .clip import Clip
from .errors import MissingEntry, OutOfRange

__all__ = ["load_direction", "builtin_directions", "edit_initial", "edit_all", "parse_layers", "layer_range", "flicker",
           "temporal_consistency"]

_DIRECTIONS = Path(__file__).resolve().parent / "assets" / "directions"
# Keys tried, in order, in multi-tensor files: our own format, InterFaceGAN, GANSpace (latent components).
_KEYS = ("direction", "boundary", "lat_comp", "components", "comp", "directions")


def builtin_directions() -> dict[str, Path]:
    """Edit directions shipped for the built-in generator: {name: path}."""
    return {p.stem: p for p in sorted(_DIRECTIONS.glob("*.safetensors"))}


def load_direction(path: str | os.PathLike, index: int | None = None, key: str | None = None,
                   normalize: bool = False) -> torch.Tensor:
    """Read an edit direction -> float32 [D] or [L, D].

    `path` is a file, or the name of a built-in direction (see `builtin_directions()`). Formats:
      - `.safetensors`: a tensor `direction` [L, D] or [D] (DynODE's format), or the file's only tensor;
      - `.npy`: an array (InterFaceGAN boundaries are [1, D] and come out as [D]);
      - `.npz` / `.pt` / `.pth`: an array/tensor, or a dict of them: `key` picks one, else the first of
        direction / boundary / lat_comp (GANSpace) / components / comp / directions that is present.
    Component files hold several directions along the first axis ([N, D] or GANSpace's [N, 1, D]):
    `index` picks one. Without `index` a 2-D result is read as per-layer [L, D].
    `normalize=True` scales the direction to unit norm.
    """
    p = _resolve_direction(path)
    try:
        data = _read_direction(p)
    except (ValueError, OSError):
        raise
    except (SafetensorError, zipfile.BadZipFile, EOFError, pickle.UnpicklingError, RuntimeError, TypeError,
            KeyError, struct.error) as e:
        raise ValueError(f"{p} is not a readable direction file ({type(e).__name__}: {str(e)[:200]})") from None

    if isinstance(data, dict):
        arrays = {k: v for k, v in data.items() if isinstance(v, (torch.Tensor, np.ndarray))}
        if key is not None:
            if key not in arrays:
                raise MissingEntry(f"{p} has no entry {key!r}; it has {sorted(arrays)}")
            data = arrays[key]
        elif len(arrays) == 1:
            data = next(iter(arrays.values()))
        else:
            found = next((k for k in _KEYS if k in arrays), None)
            if found is None:
                raise ValueError(f"{p} holds several arrays {sorted(arrays)}; choose one with key=")
            data = arrays[found]
    elif isinstance(data, (list, tuple)) and data and all(isinstance(v, (torch.Tensor, np.ndarray)) for v in data):
        data = torch.stack([torch.as_tensor(np.asarray(v)).flatten() for v in data])
    if not isinstance(data, (torch.Tensor, np.ndarray)):
        raise ValueError(f"{p} does not hold a direction array (found {type(data).__name__})")
    d = torch.as_tensor(np.asarray(data) if isinstance(data, np.ndarray) else data).float()

    if index is not None:
        if d.ndim < 2:
            raise ValueError(f"{p} holds a single direction of shape {list(d.shape)}; index= is for component files")
        if not -d.shape[0] <= index < d.shape[0]:
            raise OutOfRange(f"{p} has {d.shape[0]} components; index {index} is out of range")
        d = d[index]
    while d.ndim > 1 and d.shape[0] == 1:  # [1, D] InterFaceGAN boundary, [1, 1, D] GANSpace component
        d = d[0]
    if d.ndim not in (1, 2) or d.numel() == 0:
        raise ValueError(f"a direction must be [D] or [L, D], {p} gives {list(d.shape)}"
                         + ("" if index is not None else " (a component file? pick one with index=)"))
    if not torch.isfinite(d).all():
        raise ValueError(f"{p} holds NaN or infinite values")
    if normalize:
        d = d / d.norm().clamp_min(1e-12)
    return d


def _resolve_direction(path: str | os.PathLike) -> Path:
    """A built-in name (no folder, no suffix) always means the built-in direction, whatever the working
    directory holds (write ./smile for a local file of that name); anything else must be a file."""
    named = builtin_directions()
    text = str(path)
    if isinstance(path, str) and text in named and "/" not in text and os.sep not in text:
        return named[text]
    p = Path(path)
    if not p.exists():
        hint = f" Built-in directions: {', '.join(named)}." if named else ""
        raise FileNotFoundError(2, f"direction file not found.{hint}", str(path))
    if not p.is_file():
        raise IsADirectoryError(21, "a direction must be a regular file (not a folder, FIFO or device)", str(path))
    return p


def _read_direction(p: Path):
    suffix = p.suffix.lower()
    if suffix == ".safetensors":
        with safe_open(str(p), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}
    if suffix == ".npy":
        try:  # memory-mapped: the header's shape must fit the file before anything is allocated
            return np.array(np.load(p, allow_pickle=False, mmap_mode="r"))
        except ValueError as e:
            raise ValueError(f"{p} is not a readable .npy direction ({e})") from None
    if suffix == ".npz":
        with zipfile.ZipFile(p) as z:  # no zip bombs: sizes from the archive's directory, before decompressing
            total = sum(i.file_size for i in z.infolist())
            check("FILE_BYTES", total, f"the decompressed size of {p.name}")
        with np.load(p, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    if suffix in (".pt", ".pth"):
        with open(p, "rb") as f:
            is_zip = f.read(4) == b"PK\x03\x04"
        if is_zip and scan_torch_zip(p):
            raise ValueError(f"{p} is a TorchScript archive; directions are read as tensors only")
        return torch.load(p, map_location="cpu", weights_only=True)
    raise ValueError(f"unsupported direction file {p.name!r}: use .safetensors, .npy, .npz, .pt or .pth")


def _offset(codes: torch.Tensor, direction: torch.Tensor, strength: float,
            layers: Sequence[int] | slice | range | None) -> torch.Tensor:
    """The offset [1 or L, D] added to codes [N, L, D]."""
    direction = torch.as_tensor(direction).to(codes.device, codes.dtype)
    n_layers, dim = codes.shape[1:]
    if direction.shape[-1] != dim:
        raise ValueError(f"direction has size {direction.shape[-1]} but codes have w_dim {dim}")
    if direction.ndim == 2 and direction.shape[0] == 1:
        direction = direction[0]
    if direction.ndim == 2 and direction.shape[0] != n_layers:
        raise ValueError(f"direction is per-layer with {direction.shape[0]} layers but codes have {n_layers} "
                         f"(W codes [N, 1, D] take a [D] direction; expand them to W+ for per-layer edits)")
    if direction.ndim not in (1, 2):
        raise ValueError(f"direction must be [D] or [L, D], got {list(direction.shape)}")
    offset = strength * (direction[None] if direction.ndim == 1 else direction)  # [1 or L, D]
    if layers is None:
        return offset
    if n_layers == 1:
        raise ValueError("layers= needs W+ codes [N, num_ws, D]; these are W codes [N, 1, D] "
                         "(expand them: codes.expand(-1, G.num_ws, -1))")
    mask = torch.zeros(n_layers, 1, dtype=codes.dtype, device=codes.device)
    idx = range(n_layers)[layers] if isinstance(layers, slice) else list(layers)
    for i in idx:
        if not -n_layers <= i < n_layers:
            raise OutOfRange(f"layer {i} is out of range for codes with {n_layers} layers")
        mask[i] = 1
    return offset * mask


def _as_codes(codes: torch.Tensor) -> tuple[torch.Tensor, int]:
    if not isinstance(codes, torch.Tensor):
        raise TypeError(f"codes must be a torch.Tensor, got {type(codes).__name__}")
    if codes.ndim not in (2, 3) or codes.shape[0] == 0:
        raise ValueError(f"expected codes [T, L, D] or a single code [L, D], got {list(codes.shape)}")
    return codes, codes.ndim


def edit_initial(codes_or_z0: torch.Tensor | Clip, direction: torch.Tensor, strength: float,
                 layers: Sequence[int] | slice | range | None = None) -> torch.Tensor | Clip:
    """The first code moved along `direction`: codes [T, L, D] (or a single code z0 [L, D]) -> [1, L, D].

    Feed the result to the dynamics to carry the edit through the clip: `dyn.sample(times, z0=edited)`.
    `layers` (indices, a range or a slice of W+ layers) limits the edit, e.g. range(0, 4) for coarse layers.
    Given a Clip, returns a one-frame Clip (the first time, the clip's metadata).
    """
    if isinstance(codes_or_z0, Clip):
        first = codes_or_z0.select(0)
        return first.with_codes(edit_initial(first.codes, direction, strength, layers))
    codes, ndim = _as_codes(codes_or_z0)
    z0 = codes[:1] if ndim == 3 else codes[None]
    return z0 + _offset(z0, direction, strength, layers)


def edit_all(codes: torch.Tensor | Clip, direction: torch.Tensor, strength: float,
             layers: Sequence[int] | slice | range | None = None) -> torch.Tensor | Clip:
    """Every code moved by the same offset. codes [T, L, D] -> [T, L, D] (a Clip gives a Clip)."""
    if isinstance(codes, Clip):
        return codes.with_codes(edit_all(codes.codes, direction, strength, layers))
    codes, ndim = _as_codes(codes)
    if ndim != 3:
        raise ValueError(f"edit_all needs codes [T, L, D], got {list(codes.shape)}")
    return codes + _offset(codes, direction, strength, layers)


def parse_layers(text: str | None) -> slice | list[int] | None:
    """W+ layers written as text (the CLI's --layers): 'start:stop' (either end may be left out, stop
    exclusive) -> slice; '1,3,5' -> [1, 3, 5]; '' or None -> None (every layer)."""
    if text is None or not str(text).strip():
        return None
    text = str(text).replace(" ", "")
    try:
        if ":" in text:
            a, b = text.split(":", 1)
            return slice(int(a) if a else None, int(b) if b else None)
        return [int(x) for x in text.split(",") if x]
    except ValueError:
        raise ValueError(f"layers must be start:stop or a comma list of layer indices (e.g. 0:4 or 1,3,5), "
                         f"got {text!r}") from None


def layer_range(first: int, last: int, n_layers: int) -> range | None:
    """Layers first..last inclusive (last = -1: the last layer) of codes with `n_layers` layers -> a range, or
    None when that is every layer. Bounds outside the codes raise ValueError."""
    stop = n_layers if last < 0 else last + 1
    if first < 0 or first >= stop or stop > n_layers:
        raise ValueError(f"layers {first}..{last} do not fit codes with {n_layers} layers "
                         f"(valid: 0..{n_layers - 1}, -1 = last)")
    return None if (first == 0 and stop == n_layers) else range(first, stop)


def flicker(frames: torch.Tensor) -> float:
    """Mean absolute frame-to-frame change of a clip [T, C, H, W] (pixel units of [-1, 1])."""
    if frames.ndim != 4 or frames.shape[0] < 2:
        raise ValueError(f"flicker needs a clip [T >= 2, C, H, W], got {list(frames.shape)}")
    return float((frames[1:].float() - frames[:-1].float()).abs().mean())


def temporal_consistency(edited: torch.Tensor, reference: torch.Tensor) -> float:
    """How far an edited clip's motion departs from the reference clip's: the mean absolute difference of
    their frame-to-frame changes, relative to the reference's mean change. 0 = the edited clip moves exactly
    like the reference; larger = added flicker or lost motion. Both [T, C, H, W] of one shape."""
    if edited.shape != reference.shape:
        raise ValueError(f"clips differ in shape: {list(edited.shape)} vs {list(reference.shape)}")
    de = edited[1:].float() - edited[:-1].float()
    dr = reference[1:].float() - reference[:-1].float()
    return float((de - dr).abs().mean() / dr.abs().mean().clamp_min(1e-8))
