"""The dynamics file format: one `.safetensors` file per fitted model.

Tensors: `key_times` [T] float64, `key_codes` [T, L, D], `state.<name>` for every other entry of the model's
state dict. Metadata: `format` = FORMAT, `kind`, `config` (JSON, every option as resolved at fit time) and
`metadata` (JSON strings about the codes' origin).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .._files import atomic_write
from .._limits import check_dynamics_config
from ._bridge import BETWEEN

FORMAT = "dynode-dynamics/1"

# options added after the format was first written: their value for files written before they existed
OLD_FILE_OPTIONS = {"pace": False, "extrapolation": "flow", "between": "spline"}


def save_dynamics(model, path: str | os.PathLike) -> Path:
    """Write `model` (a `Dynamics`) to `path` atomically (temp file + rename). -> the path"""
    path = Path(path)
    tensors = {"key_times": model.key_times, "key_codes": model.key_codes}
    tensors.update({f"state.{k}": v for k, v in model.state_dict().items() if k != "key_codes"})
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    meta = {"format": FORMAT, "kind": model.kind, "config": json.dumps(model.config),
            "metadata": json.dumps({str(k): str(v) for k, v in model.metadata.items()})}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))
    return path


def read_dynamics(path: str | os.PathLike, kinds) -> tuple[str, dict, dict[str, torch.Tensor], dict]:
    """Read and check a dynamics file -> (kind, config, tensors, metadata); `kinds`: the known kind names."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no dynamics file at {str(path)!r}")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"cannot read {str(path)!r} as a .safetensors dynamics file: {e}") from None
    if meta.get("format") != FORMAT:
        raise ValueError(f"{str(path)!r} is not a DynODE dynamics file (format {meta.get('format')!r}, "
                         f"expected {FORMAT!r})")
    kind = meta.get("kind")
    if kind not in kinds:
        raise ValueError(f"{str(path)!r} holds dynamics of unknown kind {kind!r}")
    try:  # checked before any module is built: a forged `hidden` must not allocate gigabytes
        config = json.loads(meta["config"])
        metadata = json.loads(meta.get("metadata", "{}"))
        if not isinstance(config, dict) or not isinstance(metadata, dict):
            raise TypeError("config / metadata are not JSON objects")
    except (KeyError, TypeError, ValueError, RecursionError) as e:
        raise ValueError(f"{str(path)!r} is a damaged DynODE dynamics file ({type(e).__name__}: {e})") from None
    check_dynamics_config(config, f"dynamics file {path.name}")
    if kind == "cde" and "between" not in config:
        config["between"] = "flow"  # the CDE's own path with its keyframe correction, as before the option
    for k, v in OLD_FILE_OPTIONS.items():
        config.setdefault(k, v)
    _check_resolved(config, path)
    return kind, config, tensors, metadata


def _number(v, low: float = 0.0) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v) and v >= low


def _check_resolved(config: dict, path: Path) -> None:
    """The choices a fit resolved (tension per direction, continuation) must be plain finite numbers."""
    t = config.get("tension")
    ok = _number(t) or (isinstance(t, list) and len(t) > 0 and all(_number(p) for p in t))
    c = config.get("continuation")
    if c is not None:
        ok = ok and isinstance(c, dict) and _number(c.get("reversion"), 1e-9) and _number(c.get("momentum")) \
            and _number(c.get("target")) and c["target"] <= 1 \
            and (c.get("envelope") is None or _number(c["envelope"], 1e-9))  # no envelope in older files
    ok = ok and config.get("extrapolation") in ("auto", "flow") and config.get("between") in BETWEEN[1:]
    if not ok:
        raise ValueError(f"{str(path)!r} is a damaged DynODE dynamics file (tension {t!r}, continuation {c!r}, "
                         f"extrapolation {config.get('extrapolation')!r}, between {config.get('between')!r})")
