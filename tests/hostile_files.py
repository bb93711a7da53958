"""Tiny crafted files for the hostile-input tests: each is a few bytes to a few kB and asks for something
it should not get (code execution, gigabytes of memory, a traceback)."""

from __future__ import annotations

import collections
import io
import json
import os
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file


class _Tensor:
    """Pickles as torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...) with any layout."""

    def __init__(self, storage, size, stride, offset=0):
        self.storage, self.size, self.stride, self.offset = storage, size, stride, offset

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2,
                (self.storage, self.offset, tuple(self.size), tuple(self.stride), False, collections.OrderedDict()))


class _Evil:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


class _Storage:
    """Persistent-id marker for a torch zip archive's storage record."""

    def __init__(self, key, numel):
        self.key, self.numel = key, numel


def _torch_zip(path: Path, obj, records: dict[str, bytes]) -> None:
    """A torch.save-style zip: archive/data.pkl (with persistent storage ids) + archive/data/<key>."""
    buf = io.BytesIO()

    class P(pickle.Pickler):
        def persistent_id(self, o):
            if isinstance(o, _Storage):
                return ("storage", torch.FloatStorage, o.key, "cpu", o.numel)
            return None

    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        P(buf, protocol=2).dump(obj)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", buf.getvalue())
        z.writestr("archive/byteorder", "little")
        for k, v in records.items():
            z.writestr(f"archive/data/{k}", v)
        z.writestr("archive/version", "3\n")


def _dynode_generator_file(path: Path, config: dict) -> None:
    save_file({"w_avg": torch.zeros(4)}, str(path),
              metadata={"format": "dynode-stylegan2", "format_version": "1", "config": json.dumps(config)})


def _storage(n=1):
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.zeros(n).storage()


def make_all(d: Path, victim: Path) -> dict[str, Path]:
    """Write every crafted file into folder d -> {name: path}. `victim` must never be created."""
    d.mkdir(parents=True, exist_ok=True)
    f: dict[str, Path] = {}

    def put(name: str, data: bytes) -> Path:
        (d / name).write_bytes(data)
        f[name] = d / name
        return d / name

    put("empty.pt", b"")
    put("random.safetensors", os.urandom(300))
    put("random.pkl", b"\x80\x04" + os.urandom(200))
    put("truncated.safetensors", struct.pack("<Q", 10**6) + b'{"a":')
    put("huge_header.safetensors", struct.pack("<Q", 2**40) + b"{" + b" " * 100)
    put("code.pkl", pickle.dumps({"G_ema": _Evil(victim)}))
    put("code_reduce.pt", b"")
    torch.save({"g_ema": {"x": torch.zeros(1)}, "evil": _Evil(victim)}, d / "code_reduce.pt")
    f["code_reduce.pt"] = d / "code_reduce.pt"
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stride0 = pickle.dumps({"G_ema": {"w": _Tensor(_storage(1), (10**5, 10**5), (0, 0))}}, protocol=2)
        bigger = pickle.dumps({"G_ema": {"w": _Tensor(_storage(1), (1000,), (1,))}}, protocol=2)
        negative = pickle.dumps({"G_ema": {"w": _Tensor(_storage(4), (-1, 4), (4, 1))}}, protocol=2)
    put("stride0.pkl", stride0)
    put("bigger_than_storage.pkl", bigger)
    put("negative_shape.pkl", negative)
    # rosinality-style zips whose tensor views overrun their record, or whose records are missing / short
    for name, size, stride, numel, record in (
            ("zip_stride0.pt", (10**5, 10**5), (0, 0), 1, b"\0" * 4),
            ("zip_overrun.pt", (1000,), (1,), 1, b"\0" * 4),
            ("zip_short_record.pt", (10**6,), (1,), 10**6, b"\0" * 4),
            ("zip_huge_numel.pt", (4,), (1,), 10**12, b"\0" * 4)):
        _torch_zip(d / name, {"g_ema": {"style.1.weight": _Tensor(_Storage("0", numel), size, stride)}},
                   {"0": record})
        f[name] = d / name
    # DynODE generator files whose config asks for gigabytes
    for name, cfg in (("n_mlp.safetensors", {"resolution": 64, "n_mlp": 10**6}),
                      ("resolution.safetensors", {"resolution": 2**20}),
                      ("not_pow2.safetensors", {"resolution": 100}),
                      ("channels.safetensors", {"resolution": 8, "channels": {"4": 10**7, "8": 10**7}}),
                      ("w_dim.safetensors", {"resolution": 8, "w_dim": 10**8, "z_dim": 10**8}),
                      ("config_list.safetensors", [1, 2])):
        _dynode_generator_file(d / name, cfg)
        f[name] = d / name
    save_file({"w_avg": torch.zeros(4)}, str(d / "config_garbage.safetensors"),
              metadata={"format": "dynode-stylegan2", "format_version": "1", "config": "{not json"})
    f["config_garbage.safetensors"] = d / "config_garbage.safetensors"
    # images and clips
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 10, 10)).save(buf, format="PNG")
    put("truncated.png", buf.getvalue()[:60])
    im = [Image.new("RGB", (8, 8), (i * 40 % 256, 0, 0)) for i in range(2)]
    im[0].save(d / "fps_bomb.gif", save_all=True, append_images=im[1:], duration=100, loop=0,
               comment="dynode fps=10000000")
    f["fps_bomb.gif"] = d / "fps_bomb.gif"
    put("not_a_video.mp4", os.urandom(256))
    put("not_an_image.gif", b"GIF89a" + os.urandom(64))
    # directions
    with zipfile.ZipFile(d / "bomb.npz", "w", compression=zipfile.ZIP_DEFLATED) as z:
        hdr = b"\x93NUMPY\x01\x00" + b"v\x00" + ("{'descr': '<f4', 'fortran_order': False, 'shape': (%d,), }"
                                               % (2**30)).encode().ljust(117) + b"\n"
        z.writestr("direction.npy", hdr[:10 + 118])  # header only; its directory entry claims the size below
    _lie_zip_size(d / "bomb.npz", 2**32)
    f["bomb.npz"] = d / "bomb.npz"
    put("truncated.npz", b"PK\x03\x04" + os.urandom(40))
    np.save(d / "forged.npy", np.zeros(4, np.float32))
    raw = (d / "forged.npy").read_bytes().replace(b"(4,)", b"(10000000000,)".ljust(4))
    put("forged.npy", raw)
    put("truncated_dir.pt", b"PK\x03\x04" + os.urandom(30))
    # codes
    save_file({"codes": torch.full((3, 1, 32), float("nan")), "times": torch.arange(3.0)}, str(d / "nan_codes.safetensors"),
              metadata={"format": "dynode-codes/1"})
    f["nan_codes.safetensors"] = d / "nan_codes.safetensors"
    save_file({"codes": torch.zeros(3, 1, 32), "times": torch.tensor([0.0, float("inf"), 2.0])},
              str(d / "inf_times.safetensors"), metadata={"format": "dynode-codes/1"})
    f["inf_times.safetensors"] = d / "inf_times.safetensors"
    save_file({"x": torch.zeros(2, 2, 2, 2)}, str(d / "no_codes.safetensors"))
    f["no_codes.safetensors"] = d / "no_codes.safetensors"
    # dynamics files that are not (or forged)
    save_file({"key_times": torch.zeros(2)}, str(d / "dyn_forged.safetensors"),
              metadata={"format": "dynode-dynamics/1", "kind": "ode",
                        "config": json.dumps({"hidden": 100000, "rank": 16, "iterations": 1})})
    f["dyn_forged.safetensors"] = d / "dyn_forged.safetensors"
    save_file({"key_times": torch.zeros(2)}, str(d / "dyn_missing.safetensors"),
              metadata={"format": "dynode-dynamics/1", "kind": "ode", "config": "{}"})
    f["dyn_missing.safetensors"] = d / "dyn_missing.safetensors"
    return f


def _lie_zip_size(path: Path, size: int) -> None:
    """Rewrite a one-member zip so its directory entries claim `size` uncompressed bytes (a zip bomb's
    signature, without writing gigabytes)."""
    data = bytearray(path.read_bytes())
    i = data.find(b"PK\x01\x02")  # central directory: uncompressed size at offset 24, 4 bytes
    if size >= 2**32:
        size = 2**32 - 2
    data[i + 24:i + 28] = struct.pack("<I", size)
    j = data.find(b"PK\x03\x04")  # local header: uncompressed size at offset 22
    data[j + 22:j + 26] = struct.pack("<I", size)
    path.write_bytes(bytes(data))


def tree_hash(root: Path) -> dict[str, bytes]:
    """{relative path: content hash} of every file under root (to prove nothing pre-existing changed)."""
    import hashlib
    out = {}
    for p in sorted(root.rglob("*")):
        if not p.is_file():
            out[str(p.relative_to(root))] = b"dir" if p.is_dir() else b"other"
        else:
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).digest()
    return out
