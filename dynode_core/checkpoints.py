"""Reading and writing StyleGAN2 generator checkpoints.

Formats read by `load_generator` (detected from the file's bytes, not its extension):

* DynODE `.safetensors`: `Generator.state_dict()` tensors plus metadata
  `{"format": "dynode-stylegan2", "format_version": "1", "config": <json of G.config>, ...}`.
* rosinality/stylegan2-pytorch `.pt`: `{'g_ema', 'latent_avg'}` (converted weights) or a training checkpoint
  `{'g', 'g_ema', 'd', 'g_optim', 'd_optim', 'args'}`. Read with `torch.load(weights_only=True)`; the only extra
  global allowed is `argparse.Namespace`.
* NVIDIA stylegan2-ada-pytorch network snapshots `.pkl` (`{'G', 'D', 'G_ema', 'augment_pipe', ...}`). Read with
  a restricted unpickler that resolves only the few globals such files reference; the Python source they embed
  is never executed (the pickled module state is turned back into a state dict instead).

Every size is inferred from the tensors. `save_generator` writes the first format; `convert_checkpoint`
converts any readable file to it.
"""

from __future__ import annotations

import argparse
import codecs
import collections
import io
import json
import os
import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ._files import atomic_write as _atomic_write
from ._limits import LimitError, check_generator_config, check_tensor_layout
from ._torchzip import scan_torch_zip
from .errors import CheckpointError
from .stylegan2 import Generator

FORMAT_NAME = "dynode-stylegan2"
FORMAT_VERSION = "1"
BUILTIN_GENERATOR = Path(__file__).resolve().parent / "assets" / "builtin_generator.safetensors"
_SUPPORTED = (
    "Supported formats: DynODE .safetensors (written by save_generator / `dynode convert`); "
    "rosinality/stylegan2-pytorch .pt (converted {'g_ema', 'latent_avg'} or training checkpoints "
    "{'g', 'g_ema', 'd', 'args', ...}); NVIDIA stylegan2-ada-pytorch network snapshot .pkl "
    "({'G', 'D', 'G_ema', ...}, unconditional, 'skip' architecture)"
)
_W_AVG_SAMPLES = 10000
_DEFAULT_BLUR = (1, 3, 3, 1)


def _fail(path: str | os.PathLike, what: str) -> CheckpointError:
    return CheckpointError(f"cannot load {str(path)!r}: {what}. {_SUPPORTED}.")


# ----------------------------------------------------------------------------------------------- writing




def save_generator(G: Generator, path: str | os.PathLike, metadata: dict | None = None,
                   dtype: torch.dtype | None = None) -> Path:
    """Write `G` as a DynODE `.safetensors` file (weights, noise buffers, `w_avg`, config).

    `metadata` values are stored as strings (non-strings as JSON). `dtype` (e.g. torch.float16) stores the
    floating-point tensors at that precision to halve the file; loading always computes in float32. The file is written to a temp name in the
    same folder and moved into place, so an existing file is never left half-written. Returns the path.
    """
    path = Path(path)
    meta = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()}
    meta.update({"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "config": json.dumps(G.config)})
    tensors = {k: v.detach().to("cpu", dtype if dtype and v.is_floating_point() else v.dtype).contiguous().clone()
               for k, v in G.state_dict().items()}
    _atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))
    return path


# ----------------------------------------------------------------------------------------------- entry points


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
    if not path.is_file():  # a FIFO or device would block or never end
        raise _fail(path, "not a regular file")
    return path


_TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19."


def _sniff(path: Path) -> str:
    size = path.stat().st_size
    if size == 0:
        raise _fail(path, "the file is empty (0 bytes)")
    with open(path, "rb") as f:
        head = f.read(64)
    n = int.from_bytes(head[:8], "little") if len(head) >= 8 else 0
    if len(head) >= 9 and head[8:9] == b"{" and n > 0:
        if n > size - 8:
            raise _fail(path, "a truncated safetensors file (its header is longer than the file)")
        return "safetensors"
    if head.startswith(b"PK\x03\x04") or head.startswith(_TORCH_LEGACY_MAGIC):
        return "torch"
    if head[:1] == b"\x80" or head[:1] in (b"c", b"(", b"}", b"]"):  # protocol 2+ / protocol 0-1 openings
        return "pickle"
    raise _fail(path, f"unrecognised file contents (first bytes {head[:16]!r})")


def _load_any(path: Path) -> tuple[Generator, dict]:
    """(generator, info) with info["source_format"], info["w_avg"]; warns about what it had to guess."""
    kind = _sniff(path)
    try:
        if kind == "safetensors":
            return _load_safetensors(path), {"source_format": FORMAT_NAME}
        G, info = _load_rosinality(path) if kind == "torch" else _load_nvidia(path)
    except (CheckpointError, LimitError):
        raise
    except (KeyError, IndexError, TypeError, AttributeError, ValueError, OverflowError, RecursionError) as e:
        # the file's contents drove one of the readers off its expected layout
        raise _fail(path, f"a malformed checkpoint ({type(e).__name__}: {str(e)[:200]})") from None
    if info["w_avg"] == "estimated":
        warnings.warn(f"{str(path)!r} has no stored truncation centre (latent_avg / w_avg): estimated w_avg as the "
                      f"mean of the mapping network over {_W_AVG_SAMPLES} random z (seed 0)", stacklevel=3)
    return G, info


def load_generator(path_or_name: str | os.PathLike = "builtin", device: str | torch.device = "cpu",
                   dtype: torch.dtype | None = None) -> Generator:
    """Load a StyleGAN2 generator from a checkpoint file, or the shipped one with `"builtin"`.

    Reads DynODE `.safetensors`, rosinality `.pt` and NVIDIA stylegan2-ada `.pkl` files (see module doc);
    every size is read from the file. The result is in eval mode with gradients off, float32 unless `dtype`
    (e.g. `torch.bfloat16`, opt-in) is given. Raises `CheckpointError` for anything it cannot read; warns
    (`UserWarning`) when it had to estimate something the file lacks (the truncation centre `w_avg`).
    """
    G, _ = _load_any(_resolve(path_or_name))
    G = G.to(device=device, dtype=dtype) if dtype is not None else G.to(device)
    G.eval().requires_grad_(False)
    return G


def convert_checkpoint(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Convert a rosinality `.pt`, NVIDIA `.pkl` (or DynODE file) to DynODE `.safetensors` at `dst`.

    Raises `CheckpointError` if `src` cannot be read; `dst` is written atomically. Returns `dst`.
    """
    src_path = _resolve(src)
    if Path(dst).resolve() == src_path.resolve():
        raise CheckpointError(f"refusing to convert {str(src_path)!r} onto itself; choose another output path")
    G, info = _load_any(src_path)
    return save_generator(G, dst, {"source": src_path.name, **info})


# ----------------------------------------------------------------------------------------------- safetensors


def _load_safetensors(path: Path) -> Generator:
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises its own error types for damaged headers / truncated data
        raise _fail(path, f"a damaged or truncated safetensors file ({e})") from None
    if meta.get("format") != FORMAT_NAME:
        raise _fail(path, f"a safetensors file without DynODE generator metadata (format={meta.get('format')!r}, "
                          f"{len(tensors)} tensors)")
    if meta.get("format_version") != FORMAT_VERSION:
        raise _fail(path, f"DynODE format_version {meta.get('format_version')!r}, but this version reads "
                          f"{FORMAT_VERSION!r}")
    try:
        config = json.loads(meta["config"])
        if not isinstance(config, dict):
            raise TypeError("config is not a JSON object")
        ch = config.get("channels") or {}
        check_generator_config(config.get("resolution"), config.get("z_dim", 512), config.get("w_dim", 512),
                               config.get("n_mlp", 8), {str(k): v for k, v in ch.items()} if isinstance(ch, dict) else
                               {"?": ch}, what=f"{path.name} config")
        G = Generator(**config)
    except LimitError:
        raise
    except Exception as e:
        raise _fail(path, f"a DynODE safetensors file with an unusable config ({e})") from None
    _load_state(G, tensors, path)
    return G


def _load_state(G: Generator, tensors: dict[str, torch.Tensor], path) -> None:
    own = G.state_dict()
    missing = sorted(set(own) - set(tensors))
    extra = sorted(set(tensors) - set(own))
    bad = [f"{k}: {list(tensors[k].shape)} (expected {list(v.shape)})" for k, v in own.items()
           if k in tensors and tensors[k].shape != v.shape]
    if missing or extra or bad:
        parts = []
        if missing:
            parts.append(f"missing tensors {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        if extra:
            parts.append(f"unexpected tensors {extra[:5]}{' ...' if len(extra) > 5 else ''}")
        if bad:
            parts.append(f"wrong shapes {bad[:5]}")
        raise _fail(path, "tensors that do not match a StyleGAN2 generator layout: " + "; ".join(parts))
    G.load_state_dict({k: v.to(own[k].dtype) for k, v in tensors.items()})


# ----------------------------------------------------------------------------------------------- shared


def _blur_kernel_from(k2d: torch.Tensor | None, path) -> tuple[float, ...]:
    """The 1-D taps of a (separable) resampling filter, [kh, kw] or [k]; the default if it matches."""
    if k2d is None:
        return _DEFAULT_BLUR
    k2d = k2d.detach().double()
    taps = k2d if k2d.ndim == 1 else k2d.sum(1)
    if k2d.ndim == 2 and not torch.allclose(torch.outer(taps, taps) / taps.sum() ** 2, k2d / k2d.sum(), atol=1e-6):
        raise _fail(path, "a non-separable resampling filter, which this generator does not implement")
    default = torch.tensor(_DEFAULT_BLUR, dtype=torch.float64)
    if taps.shape == default.shape and torch.allclose(taps / taps.sum(), default / default.sum(), atol=1e-6):
        return _DEFAULT_BLUR
    return tuple(float(t) for t in taps / taps.sum())


def _build(state: dict[str, torch.Tensor], w_avg: torch.Tensor | None, path, lr_mlp: float = 0.01,
           conv_clamp: float | None = None, blur_kernel: tuple = _DEFAULT_BLUR) -> tuple[Generator, bool]:
    """A Generator for a state dict in our (= rosinality's) names; sizes read from the tensors.

    Returns (G, w_avg_was_estimated)."""
    def need(key: str) -> torch.Tensor:
        if key not in state:
            raise _fail(path, f"a StyleGAN2 state dict without {key!r}")
        return state[key]

    n_mlp = sum(1 for k in state if re.fullmatch(r"style\.\d+\.weight", k))
    first = need("style.1.weight")
    w_dim, z_dim = first.shape
    for i in range(2, n_mlp + 1):
        if need(f"style.{i}.weight").shape[1] != w_dim or state[f"style.{i}.weight"].shape[0] != w_dim:
            raise _fail(path, f"a mapping network whose layers are not all {w_dim} wide (style.{i}.weight is "
                              f"{list(state[f'style.{i}.weight'].shape)}); only width == w_dim is supported")
    n_convs = sum(1 for k in state if re.fullmatch(r"convs\.\d+\.conv\.weight", k))
    if n_convs % 2:
        raise _fail(path, f"a generator with an odd number of convolution layers ({n_convs})")
    log = n_convs // 2 + 2
    if log > 16:
        raise _fail(path, f"a generator with {n_convs} convolution layers (resolution 2**{log})")
    if need("to_rgb1.conv.weight").shape[1] != 3:
        raise _fail(path, f"a generator whose ToRGB layer has {state['to_rgb1.conv.weight'].shape[1]} outputs "
                          "(SWAGAN / non-RGB models are not supported)")
    channels = {4: int(need("input.input").shape[1])}
    for i in range(3, log + 1):
        channels[2**i] = int(need(f"convs.{2 * (i - 3)}.conv.weight").shape[1])
    check_generator_config(2**log, int(z_dim), int(w_dim), n_mlp, channels, what=str(Path(str(path)).name))
    G = Generator(2**log, z_dim=int(z_dim), w_dim=int(w_dim), n_mlp=n_mlp, channels=channels, lr_mlp=lr_mlp,
                  conv_clamp=conv_clamp, blur_kernel=blur_kernel)
    estimated = w_avg is None
    if estimated:
        w_avg = torch.zeros(int(w_dim))
    w_avg = w_avg.detach().reshape(-1).float()
    if w_avg.numel() != w_dim:
        raise _fail(path, f"a truncation centre (latent_avg / w_avg) with {w_avg.numel()} values for w_dim {w_dim}")
    if not any(k.startswith("noises.") for k in state):
        # early rosinality checkpoints predate the stored noise buffers: keep the (seed-0) ones G was built with
        state = {**state, **{f"noises.{k}": v for k, v in _seeded_noises(G).items()}}
        warnings.warn(f"{str(path)!r} stores no noise buffers; noise_mode='const' uses fixed seed-0 noise",
                      stacklevel=5)
    _load_state(G, {**state, "w_avg": w_avg}, path)
    if estimated:
        G.estimate_w_avg(_W_AVG_SAMPLES)
    return G, estimated


def _seeded_noises(G: Generator) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {k: torch.randn(v.shape, generator=g) for k, v in G.noises.named_buffers()}


# ----------------------------------------------------------------------------------------------- rosinality .pt


def _torch_load_allowlist() -> list:
    """Globals allowed on top of torch's weights_only set: the training args and numpy values inside them."""
    ma = _np_multiarray()
    out: list = [argparse.Namespace, np.dtype, np.ndarray]
    out += sorted({type(np.dtype(c)) for c in "?bBhHiIlLqQefdgFD"}, key=str)  # numpy >= 1.25 dtype classes
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        out += [(ma.scalar, f"{mod}.scalar"), (ma._reconstruct, f"{mod}._reconstruct")]
    return out


def _scan_torch_file(path: Path, fail) -> None:
    """Before `torch.load(weights_only=True)`: check every tensor's layout in a zip archive (torch would grow a
    storage too small for its view with uninitialised memory) and refuse TorchScript."""
    with open(path, "rb") as f:
        is_zip = f.read(4) == b"PK\x03\x04"
    if is_zip and scan_torch_zip(path, fail=fail):
        raise fail("a TorchScript archive (loading it would run code stored in the file); refused")


def _load_torch_dict(path: Path, fail=None) -> dict:
    """A PyTorch checkpoint dict, read as tensors and plain containers only (layout scanned first).
    fail(what) builds the CheckpointError (default: this module's, naming the generator formats)."""
    fail = fail or (lambda what: _fail(path, what))
    _scan_torch_file(path, fail)
    try:
        with torch.serialization.safe_globals(_torch_load_allowlist()):
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"GLOBAL (\S+)|got <class '([^']+)'>", str(e))
        what = f"the global {found.group(1) or found.group(2)}" if found else "a Python object"
        raise fail(f"a PyTorch file that references {what}, which is not allowed (loading never runs "
                   "code from a checkpoint; only tensors, containers and argparse.Namespace are read)") from None
    except Exception as e:
        raise fail(f"a damaged or truncated PyTorch file ({type(e).__name__}: {str(e)[:200]})") from None
    if not isinstance(ckpt, dict):
        raise fail(f"a PyTorch file holding a {type(ckpt).__name__}, not a checkpoint dict")
    return ckpt


def _load_rosinality(path: Path) -> tuple[Generator, dict]:
    ckpt = _load_torch_dict(path)
    latent_avg = ckpt.get("latent_avg")
    if "g_ema" in ckpt:
        state = ckpt["g_ema"]
    elif "style.1.weight" in ckpt or "module.style.1.weight" in ckpt:  # a bare generator state dict
        state = ckpt
    elif isinstance(ckpt.get("state_dict"), dict) and any(str(k).startswith("decoder.") for k in ckpt["state_dict"]):
        # a pSp / e4e / ReStyle encoder checkpoint: its generator is under decoder.*, latent_avg repeated per style
        state = {k[len("decoder."):]: v for k, v in ckpt["state_dict"].items() if str(k).startswith("decoder.")}
        if isinstance(latent_avg, torch.Tensor) and latent_avg.ndim == 2:
            latent_avg = latent_avg[0]
    else:
        raise _fail(path, f"a PyTorch file with keys {sorted(map(str, ckpt))[:12]} - not a rosinality StyleGAN2 "
                          "checkpoint (expected 'g_ema')")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise _fail(path, "a PyTorch file whose 'g_ema' is not a state dict of tensors")
    if isinstance(latent_avg, np.ndarray):
        latent_avg = torch.from_numpy(latent_avg.astype(np.float32))
    if latent_avg is not None and not isinstance(latent_avg, torch.Tensor):
        raise _fail(path, f"a 'latent_avg' of type {type(latent_avg).__name__} instead of a tensor")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    blur = next((v for k, v in state.items() if k.endswith("conv.blur.kernel")), None)
    state = {k: v for k, v in state.items()
             if not (k.endswith("conv.blur.kernel") or k.endswith("upsample.kernel") or k == "latent_avg")}
    G, estimated = _build(state, latent_avg, path, blur_kernel=_blur_kernel_from(blur, path))
    return G, {"source_format": "rosinality-stylegan2-pytorch", "w_avg": "estimated" if estimated else "checkpoint"}


# ----------------------------------------------------------------------------------------------- NVIDIA .pkl


class _Persistent:
    """Stand-in for a `torch_utils.persistence` object: keeps the pickled meta (class name, state); never
    imports or runs the embedded `module_src`."""

    def __init__(self, meta: Any):
        self.meta = meta if isinstance(meta, dict) else {}
        state = self.meta.get("state")
        self.state = state if isinstance(state, dict) else {}
        self.class_name = str(self.meta.get("class_name", "?"))

    def __setstate__(self, state):  # not used by real files (their state travels inside meta)
        if isinstance(state, dict):
            self.state = state

    def modules(self) -> dict:
        m = self.state.get("_modules")
        return m if isinstance(m, dict) else {}

    def kwargs(self) -> dict:
        k = self.state.get("_init_kwargs")
        return k if isinstance(k, dict) else {}


class _EasyDict(dict):
    """Stand-in for dnnlib.util.EasyDict."""


def _np_multiarray():
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray
    return multiarray


def _np_frombuffer():
    try:
        from numpy._core.numeric import _frombuffer
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.numeric import _frombuffer
    return _frombuffer


def _load_storage_bytes(b: bytes):
    """torch.storage._load_from_bytes, but tensors-only (`weights_only=True`)."""
    if not isinstance(b, (bytes, bytearray)):
        raise pickle.UnpicklingError("torch.storage._load_from_bytes called without bytes")
    return torch.load(io.BytesIO(b), map_location="cpu", weights_only=True)


_STORAGES = ("FloatStorage", "DoubleStorage", "HalfStorage", "BFloat16Storage", "LongStorage", "IntStorage",
             "ShortStorage", "CharStorage", "ByteStorage", "BoolStorage", "UntypedStorage")
_DTYPES = ("float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool")


def _checked_rebuild_tensor(storage, storage_offset, size, stride, *args):
    """torch._utils._rebuild_tensor_v2 after checking the view fits its storage (torch would grow the storage
    with uninitialised memory, or a zero stride would fake a huge tensor)."""
    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise pickle.UnpicklingError("a tensor whose storage is not a tensor storage")
    numel = storage.size() if isinstance(storage, torch.TypedStorage) else storage.nbytes()
    check_tensor_layout(size, stride, storage_offset, numel, "a tensor")
    return torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, *args)


def _allowed_globals() -> dict[tuple[str, str], Any]:
    ma = _np_multiarray()
    allowed: dict[tuple[str, str], Any] = {
        ("torch_utils.persistence", "_reconstruct_persistent_obj"): _Persistent,
        ("dnnlib.util", "EasyDict"): _EasyDict,
        ("dnnlib", "EasyDict"): _EasyDict,
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _checked_rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
        ("torch.storage", "_load_from_bytes"): _load_storage_bytes,
        ("torch", "device"): torch.device,
        ("torch", "Size"): torch.Size,
        ("numpy", "dtype"): np.dtype,
        ("numpy", "ndarray"): np.ndarray,
        ("_codecs", "encode"): codecs.encode,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
    }
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "scalar")] = ma.scalar
        allowed[(mod, "_reconstruct")] = ma._reconstruct
    for mod in ("numpy.core.numeric", "numpy._core.numeric"):
        allowed[(mod, "_frombuffer")] = _np_frombuffer()
    for name in _STORAGES:
        if hasattr(torch, name):
            allowed[("torch", name)] = getattr(torch, name)
    for name in _DTYPES:
        allowed[("torch", name)] = getattr(torch, name)
    return allowed


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, path):
        super().__init__(file)
        self._path = path
        self._allowed = _allowed_globals()

    def find_class(self, module: str, name: str):
        module = {"__builtin__": "builtins", "copy_reg": "copyreg"}.get(module, module)  # protocol 0-2 names
        fn = self._allowed.get((module, name))
        if fn is not None:
            return fn
        if module.startswith("dnnlib.tflib") or module.startswith("tensorflow"):
            raise _fail(self._path, f"a TensorFlow-era StyleGAN pickle (it references {module}.{name}); convert it "
                                    "first with NVIDIA stylegan2-ada-pytorch's legacy.py or rosinality's "
                                    "convert_weight.py")
        raise _fail(self._path, f"a pickle that references {module}.{name}, which is not among the globals a "
                                "StyleGAN2-ADA snapshot uses; refused (loading never runs code from a checkpoint)")

    def persistent_load(self, pid):
        raise _fail(self._path, "a pickle with persistent ids (not a plain StyleGAN2-ADA snapshot)")


def _module_state(obj: _Persistent, prefix: str = "") -> dict[str, torch.Tensor]:
    """Flatten a pickled module tree into a state dict (parameters and buffers, recursively)."""
    out: dict[str, torch.Tensor] = {}
    for group in ("_parameters", "_buffers"):
        for name, t in (obj.state.get(group) or {}).items():
            if isinstance(t, torch.Tensor):
                out[prefix + name] = t.detach()
    for name, child in obj.modules().items():
        if isinstance(child, _Persistent):
            out.update(_module_state(child, f"{prefix}{name}."))
    return out


def _attr(obj: _Persistent, name: str, default=None):
    """An attribute of the pickled module, falling back to its constructor kwargs."""
    if name in obj.state:
        return obj.state[name]
    return obj.kwargs().get(name, default)


def _load_nvidia(path: Path) -> tuple[Generator, dict]:
    try:
        with open(path, "rb") as f:
            data = _RestrictedUnpickler(f, path).load()
    except (CheckpointError, LimitError):
        raise
    except EOFError:
        raise _fail(path, "a truncated pickle (the data ends early)") from None
    except Exception as e:
        raise _fail(path, f"a damaged or unreadable pickle ({type(e).__name__}: {str(e)[:200]})") from None
    if isinstance(data, _Persistent):  # a generator pickled on its own, e.g. pickle.dump(G_ema, f)
        data = {"G_ema": data}
    if not isinstance(data, dict):
        raise _fail(path, f"a pickle holding a {type(data).__name__}, not a network snapshot dict")
    G = data.get("G_ema", data.get("G"))
    if not isinstance(G, _Persistent):
        raise _fail(path, f"a pickle with keys {sorted(map(str, data))[:12]} - not a stylegan2-ada-pytorch network "
                          "snapshot (expected 'G_ema')")
    if "G_ema" not in data:
        warnings.warn(f"{str(path)!r} has no 'G_ema'; using the non-averaged generator 'G'", stacklevel=4)
    return _nvidia_generator(G, path)


def _nvidia_generator(G: _Persistent, path) -> tuple[Generator, dict]:
    mods = G.modules()
    syn, mapping = mods.get("synthesis"), mods.get("mapping")
    if G.class_name != "Generator" or not isinstance(syn, _Persistent) or not isinstance(mapping, _Persistent):
        raise _fail(path, f"a snapshot whose G_ema is a {G.class_name!r} without synthesis/mapping networks")
    syn_mods = syn.modules()
    if "input" in syn_mods or any(re.fullmatch(r"L\d+_\d+_\d+", k) for k in syn_mods):
        raise _fail(path, "a StyleGAN3 (alias-free) generator, which this StyleGAN2 implementation cannot run")
    c_dim = int(_attr(G, "c_dim", 0) or 0)
    if c_dim > 0 or "embed" in mapping.modules():
        raise _fail(path, f"a class-conditional generator (c_dim={c_dim}); only unconditional models are supported")
    if int(_attr(G, "img_channels", 3)) != 3:
        raise _fail(path, f"a generator with {_attr(G, 'img_channels')} image channels (only RGB is supported)")
    blocks = sorted((int(k[1:]), m) for k, m in syn_mods.items() if re.fullmatch(r"b\d+", k))
    if not blocks or blocks[0][0] != 4:
        raise _fail(path, f"a synthesis network with blocks {[k for k in syn_mods]} (expected b4, b8, ...)")
    for res, blk in blocks:
        arch = _attr(blk, "architecture", "skip")
        if arch != "skip":
            raise _fail(path, f"a synthesis network with architecture {arch!r} (only 'skip', the StyleGAN2 "
                              "config-f default, is supported)")
    fcs = sorted(int(k[2:]) for k in mapping.modules() if re.fullmatch(r"fc\d+", k))
    for i in fcs:
        fc = mapping.modules()[f"fc{i}"]
        act = _attr(fc, "activation", "lrelu")
        if act != "lrelu":
            raise _fail(path, f"a mapping network with activation {act!r} (only 'lrelu' is supported)")

    src = _module_state(G)
    state: dict[str, torch.Tensor] = {}
    for i in fcs:
        state[f"style.{i + 1}.weight"] = src[f"mapping.fc{i}.weight"]
        state[f"style.{i + 1}.bias"] = src[f"mapping.fc{i}.bias"]
    lr_mlp = float(_attr(mapping.modules()[f"fc{fcs[0]}"], "bias_gain", 0.01)) if fcs else 0.01

    def layer(nv: str, ours: str, noise_idx: int) -> None:
        w = src[f"{nv}.weight"]
        if w.shape[-1] != 3:
            raise _fail(path, f"a {w.shape[-1]}x{w.shape[-1]} synthesis convolution (only 3x3 is supported)")
        state[f"{ours}.conv.weight"] = w[None]
        state[f"{ours}.conv.modulation.weight"] = src[f"{nv}.affine.weight"]
        state[f"{ours}.conv.modulation.bias"] = src[f"{nv}.affine.bias"]
        state[f"{ours}.activate.bias"] = src[f"{nv}.bias"]
        if f"{nv}.noise_const" in src:  # use_noise=False layers have neither buffer nor strength
            state[f"{ours}.noise.weight"] = src[f"{nv}.noise_strength"].reshape(1)
            state[f"noises.noise_{noise_idx}"] = src[f"{nv}.noise_const"][None, None]
        else:
            r = 2 ** ((noise_idx + 5) // 2)
            state[f"{ours}.noise.weight"] = torch.zeros(1)
            state[f"noises.noise_{noise_idx}"] = torch.zeros(1, 1, r, r)

    def torgb(nv: str, ours: str) -> None:
        state[f"{ours}.conv.weight"] = src[f"{nv}.weight"][None]
        state[f"{ours}.conv.modulation.weight"] = src[f"{nv}.affine.weight"]
        state[f"{ours}.conv.modulation.bias"] = src[f"{nv}.affine.bias"]
        state[f"{ours}.bias"] = src[f"{nv}.bias"].reshape(1, -1, 1, 1)

    try:
        state["input.input"] = src["synthesis.b4.const"][None]
        layer("synthesis.b4.conv1", "conv1", 0)
        torgb("synthesis.b4.torgb", "to_rgb1")
        for k, (res, _) in enumerate(blocks[1:]):
            layer(f"synthesis.b{res}.conv0", f"convs.{2 * k}", 2 * k + 1)
            layer(f"synthesis.b{res}.conv1", f"convs.{2 * k + 1}", 2 * k + 2)
            torgb(f"synthesis.b{res}.torgb", f"to_rgbs.{k}")
    except KeyError as e:
        raise _fail(path, f"a StyleGAN2-ADA generator without the tensor {e.args[0]!r}") from None

    clamps = {_attr(m, "conv_clamp", None) for _, b in blocks for k, m in b.modules().items()
              if k in ("conv0", "conv1", "torgb")}
    if len(clamps) > 1:
        raise _fail(path, f"layers with different conv_clamp values {sorted(map(str, clamps))}")
    clamp = clamps.pop() if clamps else None
    blur = _blur_kernel_from(src.get("synthesis.b8.resample_filter", src.get("synthesis.b4.resample_filter")), path)
    w_avg = src.get("mapping.w_avg")
    G_ours, estimated = _build(state, w_avg, path, lr_mlp=lr_mlp,
                               conv_clamp=float(clamp) if clamp is not None else None, blur_kernel=blur)
    return G_ours, {"source_format": "nvidia-stylegan2-ada-pytorch",
                    "w_avg": "estimated" if estimated else "checkpoint"}
