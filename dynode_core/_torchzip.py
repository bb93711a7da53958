"""A restricted reader of PyTorch zip archives (`torch.save` files and TorchScript archives).

It unpickles `data.pkl` with an allowlist (tensors, lists, dicts, OrderedDict, TorchScript's typed lists);
TorchScript classes become inert `ScriptObject`s holding their pickled state, so no code from the archive
(`code/`, `__setstate__`) is ever read, compiled or run. Every tensor's shape, strides and offset are checked
against its data record's size before it is built (`_limits.check_tensor_layout`).

`scan_torch_zip` walks an archive without reading tensor data (unknown globals become inert stubs, nothing is
called): it validates every tensor layout and data-record size, so `torch.load` can then be used safely on
archives whose globals only torch knows how to rebuild.
"""

from __future__ import annotations

import collections
import os
import pickle
import zipfile
from pathlib import Path
from typing import Callable

import torch

from ._limits import LimitError, check, check_tensor_layout

__all__ = ["ScriptObject", "read_torch_zip", "scan_torch_zip", "flatten"]

_STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
    "UntypedStorage": torch.uint8,
}


class _StorageType:
    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype


class ScriptObject:
    """Inert stand-in for a TorchScript class instance: it keeps the pickled state and nothing else."""
    qualname = "?"

    def __setstate__(self, state):
        self.state = state


class _Stub:
    """Inert stand-in for any other global while scanning: accepts anything, does nothing."""

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        return _Stub()

    def __setstate__(self, state):
        pass

    def __setitem__(self, k, v):
        pass

    def append(self, v):
        pass

    def extend(self, v):
        pass


class _Meta:
    """A storage record seen while scanning: its dtype and number of elements, no data."""

    def __init__(self, dtype, numel: int):
        self.dtype, self._numel = dtype, numel

    def numel(self) -> int:
        return self._numel


def _rebuild_tensor(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
    if isinstance(storage, _Meta):
        check_tensor_layout(size, stride, offset, storage.numel(), "a tensor")
        return torch.empty(0, dtype=storage.dtype)
    if not isinstance(storage, torch.Tensor):
        raise pickle.UnpicklingError("a tensor whose storage is not a storage record")
    check_tensor_layout(size, stride, offset, storage.numel(), "a tensor")
    return storage.as_strided(tuple(size), tuple(stride), offset).clone()


def _rebuild_parameter(data, requires_grad=False, hooks=None, *args):
    return data


_ALLOWED = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
    # TorchScript's typed containers: plain lists / values here
    **{("torch.jit._pickle", f"build_{k}list"): list for k in ("int", "double", "bool", "tensor")},
    ("torch.jit._pickle", "restore_type_tag"): lambda value, _type=None: value,
}


def _refusal(e: Exception) -> Exception:
    e._refusal = True  # raised on purpose: passed on as is, not reported as damage
    return e


class _ZipUnpickler(pickle.Unpickler):
    def __init__(self, file, archive: zipfile.ZipFile, prefix: str, fail: Callable[[str], Exception],
                 scan: bool = False):
        super().__init__(file)
        self._zip, self._prefix, self._scan = archive, prefix, scan
        self._fail = lambda what: _refusal(fail(what))

    def find_class(self, module: str, name: str):
        if module == "__torch__" or module.startswith("__torch__."):
            return type(name, (ScriptObject,), {"qualname": f"{module}.{name}"})
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if self._scan:
            return _Stub
        raise self._fail(f"it references the Python global {module}.{name}, which is refused (only tensors and "
                         "containers are read from weight files)")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {str(pid)[:80]}")
        kind, key, numel = pid[1], str(pid[2]), pid[4]
        dtype = kind.dtype if isinstance(kind, _StorageType) else getattr(kind, "dtype", None)
        if not isinstance(dtype, torch.dtype) or isinstance(numel, bool) or not isinstance(numel, int) or numel < 0:
            raise pickle.UnpicklingError(f"malformed storage record {str(pid)[:80]}")
        check("TENSOR_ELEMENTS", numel, "the elements of a stored tensor")
        try:
            info = self._zip.getinfo(f"{self._prefix}data/{key}")
        except KeyError:
            raise self._fail(f"the archive lacks the tensor data record {key!r}") from None
        nbytes = numel * torch.empty((), dtype=dtype).element_size()
        if info.file_size < nbytes:
            raise self._fail(f"tensor record {key!r} holds {info.file_size} bytes, {nbytes} expected (truncated or forged)")
        if self._scan:
            return _Meta(dtype, numel)
        data = bytearray(self._zip.read(info)[:nbytes])
        return torch.frombuffer(data, dtype=dtype) if nbytes else torch.empty(0, dtype=dtype)


def _open(path: Path, fail, scan: bool):
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise fail(f"a damaged or truncated PyTorch file (not a readable zip archive: {e})") from None
    with archive:
        names = archive.namelist()
        pkl = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1] or [n for n in names if n == "data.pkl"]
        if len(pkl) != 1:
            raise fail("a zip file that is not a PyTorch archive (no data.pkl)")
        prefix = pkl[0][: -len("data.pkl")]
        is_script = any(n.startswith(prefix + "code/") for n in names) or f"{prefix}constants.pkl" in names
        if f"{prefix}byteorder" in names and archive.read(f"{prefix}byteorder").strip() not in (b"little", b""):
            raise fail("a big-endian archive")
        info = archive.getinfo(pkl[0])
        check("FILE_BYTES", info.file_size, f"the size of {pkl[0]} in {path.name}")
        try:
            with archive.open(info) as f:
                obj = _ZipUnpickler(f, archive, prefix, fail, scan=scan).load()
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
                zipfile.BadZipFile, OSError, RuntimeError, RecursionError, MemoryError) as e:
            if isinstance(e, LimitError) or getattr(e, "_refusal", False):
                raise
            raise fail(f"a damaged or truncated PyTorch file ({type(e).__name__}: {str(e)[:160]})") from None
    return obj, is_script


def _default_fail(path):
    return lambda what: ValueError(f"cannot read {str(path)!r}: {what}")


def read_torch_zip(path: str | os.PathLike, fail: Callable[[str], Exception] | None = None) -> tuple[object, bool]:
    """(object, is_torchscript) of a torch zip archive, read as tensors and containers only.

    `fail(what)` builds the exception raised for a refused or damaged file (default ValueError)."""
    path = Path(path)
    return _open(path, fail or _default_fail(path), scan=False)


def scan_torch_zip(path: str | os.PathLike, fail: Callable[[str], Exception] | None = None) -> bool:
    """Check every tensor layout and data record of a torch zip archive without loading any data or calling
    any global. Returns whether it is TorchScript. Raises `fail(what)` / LimitError for a forged file."""
    path = Path(path)
    return _open(path, fail or _default_fail(path), scan=True)[1]


def flatten(obj, prefix: str = "", out: list | None = None, depth: int = 0) -> list[tuple[str, torch.Tensor]]:
    """(dotted path, tensor) pairs in pickle order."""
    out = [] if out is None else out
    if depth > 64:
        return out
    if isinstance(obj, torch.Tensor):
        out.append((prefix.rstrip("."), obj))
    elif isinstance(obj, ScriptObject):
        flatten(getattr(obj, "state", None), prefix, out, depth + 1)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            flatten(v, f"{prefix}{k}.", out, depth + 1)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            flatten(v, f"{prefix}{i}.", out, depth + 1)
    return out
