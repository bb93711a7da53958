"""Bounds checked before anything is allocated: sizes read from files and numbers given by users.

Every limit has a name; `limit(name)` returns its value, which the environment variable `DYNODE_MAX_<NAME>`
raises (or lowers) deliberately, e.g. `DYNODE_MAX_FRAMES=100000 dynode sample ...`. An exceeded limit is a
`LimitError` (a ValueError) whose message names the value, the limit and that variable. docs/security.md
lists them all.
"""

from __future__ import annotations

import math
import os

__all__ = ["LimitError", "limit", "check", "check_tensor_layout", "check_generator_config", "LIMITS"]

# name -> (default, what it bounds)
LIMITS: dict[str, tuple[int, str]] = {
    "RESOLUTION": (4096, "generator resolution in pixels (a power of two)"),
    "N_MLP": (64, "mapping-network layers"),
    "CHANNELS": (8192, "channels of one generator or encoder layer"),
    "W_DIM": (8192, "latent width (z_dim, w_dim)"),
    "NUM_WS": (64, "W+ layers of a code"),
    "HIDDEN": (4096, "hidden width / state / rank of a dynamics network"),
    "SOLVER_STEPS": (100, "ODE/SDE solver steps per mean keyframe gap (1 / step)"),
    "DEPTH": (64, "layers of a dynamics network"),
    "TENSOR_ELEMENTS": (2**28, "elements of one tensor read from a file (2**28 float32 = 1 GiB)"),
    "FRAMES": (20000, "frames read from a clip, or times / frames a command produces"),
    "FPS": (1000, "frames per second"),
    "FRAME_PIXELS": (4096 * 4096, "pixels of one frame read from a file"),
    "CLIP_ELEMENTS": (2**28, "values of a whole clip read into memory (frames x 3 x height x width; 1 GiB as float32)"),
    "FILE_BYTES": (2**30, "bytes of a .npz / zip archive's contents once decompressed"),
    "STEPS": (1_000_000, "optimisation steps"),
    "BATCH": (4096, "batch size"),
}


class LimitError(ValueError):
    """A size or count beyond one of DynODE's safety limits (raise it with `DYNODE_MAX_<NAME>`)."""


def limit(name: str) -> int:
    """Current value of a limit: `DYNODE_MAX_<NAME>` from the environment, else the default."""
    default = LIMITS[name][0]
    raw = os.environ.get(f"DYNODE_MAX_{name}")
    if raw is None or not raw.strip():
        return default
    try:
        value = int(float(raw))
    except ValueError:
        raise LimitError(f"DYNODE_MAX_{name}={raw!r} is not a number (unset it to use the default {default})") from None
    if value < 1:
        raise LimitError(f"DYNODE_MAX_{name}={raw!r} must be >= 1")
    return value


def _message(what: str, value, name: str) -> str:
    lim = limit(name)
    return (f"{what} = {value} exceeds the limit of {lim} ({LIMITS[name][1]}); if you really mean it, raise the "
            f"limit with the environment variable DYNODE_MAX_{name}")


def check(name: str, value, what: str) -> None:
    """Raise LimitError if `value` (a number) is beyond limit `name`; `what` names the value for the user."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    if math.isnan(value) or value > limit(name):
        raise LimitError(_message(what, value, name))


def check_tensor_layout(size, stride, offset, storage_numel: int, what: str = "a tensor") -> int:
    """Validate a tensor's shape/stride/offset against the storage it views, before building it.

    Refuses negative or non-integer sizes, strides and offsets, more elements than TENSOR_ELEMENTS, and views
    reaching past the end of their storage (which torch would silently grow with uninitialised memory).
    Returns the number of elements.
    """
    size, stride = tuple(size), tuple(stride)
    if len(size) != len(stride) or len(size) > 16:
        raise ValueError(f"{what} has a malformed layout (shape {size[:8]}, strides {stride[:8]})")
    for v in (*size, *stride, offset):
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise ValueError(f"{what} has a negative or non-integer size, stride or offset ({v!r})")
    numel = math.prod(size)
    check("TENSOR_ELEMENTS", numel, f"the number of elements of {what} (shape {list(size)})")
    if numel == 0:
        return 0
    extent = offset + sum((n - 1) * s for n, s in zip(size, stride)) + 1
    if extent > storage_numel:
        raise ValueError(f"{what} (shape {list(size)}, strides {list(stride)}, offset {offset}) reaches element "
                         f"{extent} of a storage holding {storage_numel}: a damaged or forged file")
    return numel


def check_generator_config(resolution, z_dim, w_dim, n_mlp, channels: dict | None = None, what: str = "generator") -> None:
    """Bounds of a StyleGAN2 config, checked before the modules are built."""
    for name, v in (("resolution", resolution), ("z_dim", z_dim), ("w_dim", w_dim), ("n_mlp", n_mlp)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{what}: {name} must be a positive integer, got {v!r}")
    if resolution < 4 or resolution & (resolution - 1):
        raise ValueError(f"{what}: resolution must be a power of two >= 4, got {resolution}")
    check("RESOLUTION", resolution, f"{what} resolution")
    check("W_DIM", z_dim, f"{what} z_dim")
    check("W_DIM", w_dim, f"{what} w_dim")
    check("N_MLP", n_mlp, f"{what} n_mlp")
    for k, c in (channels or {}).items():
        if not isinstance(c, int) or isinstance(c, bool) or c < 1:
            raise ValueError(f"{what}: channels[{k!r}] must be a positive integer, got {c!r}")
        check("CHANNELS", c, f"{what} channels at {k}")


def check_dynamics_config(config: dict, what: str = "dynamics") -> None:
    """Bounds of a dynamics model's options (from `fit_dynamics(**options)` or a dynamics file), checked
    before the model is built: widths and rank <= HIDDEN, iterations <= STEPS, 1 / step <= SOLVER_STEPS."""
    for k, v in config.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if isinstance(v, float) and math.isnan(v):
            raise ValueError(f"{what}: option {k} is NaN")
        if k in ("iterations", "iters"):
            check("STEPS", v, f"{what} {k}")
        elif k == "step":
            if v > 0:
                check("SOLVER_STEPS", 1.0 / v, f"{what} 1 / step (solver steps per keyframe gap)")
        elif k in ("hidden", "state", "rank", "width", "channels") or "hidden" in k:
            check("HIDDEN", v, f"{what} {k}")
        elif k in ("depth", "layers"):
            check("DEPTH", v, f"{what} {k}")
