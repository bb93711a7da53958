"""VGG16 perceptual distance from local weights, read as tensors only.

Accepted weight files (detected from their bytes):

* `.safetensors` with torchvision VGG16 names `features.N.weight` / `features.N.bias` (N = torchvision's
  layer index), optionally LPIPS channel weights `lin.K.weight` (K = 0..4, [1, C, 1, 1]); this is what
  `convert_perceptual` / `dynode convert-perceptual` write.
* a PyTorch file (`torch.save` zip) of such a state dict (optionally under "state_dict"), read by the
  restricted reader below (tensors, containers and nothing else).

TorchScript archives (NVIDIA's LPIPS `vgg16.pt`) are never loaded with `torch.jit.load`: loading TorchScript
runs the archive's code (`__setstate__`), so a crafted file could do anything. `convert_perceptual` reads
such an archive's *tensors* from its `data.pkl` with a restricted unpickler that resolves TorchScript classes
to an inert stand-in (their code in `code/` is never read, compiled or run) and writes a safetensors file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from ._files import atomic_write
from ._torchzip import ScriptObject, flatten, read_torch_zip
from .checkpoints import CheckpointError

__all__ = ["PerceptualLoss", "load_perceptual_weights", "convert_perceptual"]

FORMAT = "dynode-perceptual/1"
_VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
_VGG16_TAPS = (3, 8, 15, 22, 29)  # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 in torchvision's numbering
_CONV_INDEX = [i for i, v in enumerate(j for c in _VGG16_CFG for j in ((c,) if c == "M" else (c, "R")))
               if v not in ("M", "R")]  # torchvision indices of the 13 convolutions: 0, 2, 5, 7, 10, ...
_LIN_CHANNELS = (64, 128, 256, 512, 512)
_HELP = ("pass a .safetensors file with torchvision VGG16 names (features.N.weight), a torch.save'd VGG16 "
         "state dict, or convert NVIDIA's TorchScript vgg16.pt once with `dynode convert-perceptual IN OUT`")


def _fail(path, what: str) -> CheckpointError:
    return CheckpointError(f"cannot use {str(path)!r} as perceptual weights: {what}. {_HELP}")


# --- conversion -------------------------------------------------------------------------------------------

def _vgg_from_tensors(pairs: list[tuple[str, torch.Tensor]], path) -> dict[str, torch.Tensor]:
    """Pick the 13 VGG16 convolutions (in order, by shape), their biases and any 5 LPIPS channel weights."""
    expected = [(o, i) for o, i in zip([v for v in _VGG16_CFG if v != "M"],
                                       [3, 64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512])]
    by_name = dict(pairs)
    used: set[int] = set()
    out: dict[str, torch.Tensor] = {}
    k = 0
    for j, (name, t) in enumerate(pairs):
        if k == len(expected):
            break
        o, i = expected[k]
        w = None
        if t.shape == (o, i, 3, 3):
            w = t
        elif t.shape == (3, 3, i, o):  # TensorFlow layout (HWIO)
            w = t.permute(3, 2, 0, 1)
        if w is None:
            continue
        bias = by_name.get(name[: -len("weight")] + "bias") if name.endswith("weight") else None
        if bias is None or bias.numel() != o:
            bias = next((b for jj, (_, b) in enumerate(pairs[j + 1:], j + 1)
                         if b.ndim == 1 and b.numel() == o and jj not in used), None)
        if bias is None:
            raise _fail(path, f"convolution {k} ({o}x{i}x3x3) has no bias")
        used.update(jj for jj, (_, b) in enumerate(pairs) if b is bias or b is t)
        out[f"features.{_CONV_INDEX[k]}.weight"] = w.float().contiguous()
        out[f"features.{_CONV_INDEX[k]}.bias"] = bias.float().reshape(o).contiguous()
        k += 1
    if k < len(expected):
        raise _fail(path, f"found only {k} of the 13 VGG16 convolutions (shapes {expected[k]} x 3 x 3 missing)")
    rest = [t for jj, (_, t) in enumerate(pairs) if jj not in used and t.is_floating_point()
            and t.numel() in _LIN_CHANNELS and t.numel() == max(t.shape)]
    lins, want = [], list(_LIN_CHANNELS)
    for t in rest:
        if want and t.numel() == want[0]:
            lins.append(t)
            want.pop(0)
    if not want:
        for idx, t in enumerate(lins):
            out[f"lin.{idx}.weight"] = t.float().reshape(1, -1, 1, 1).contiguous()
    return out


def convert_perceptual(src: str | os.PathLike, dst: str | os.PathLike, overwrite: bool = False) -> Path:
    """Convert VGG16 perceptual weights (NVIDIA's TorchScript `vgg16.pt`, a torchvision state dict, ...) to a
    `.safetensors` file `PerceptualLoss` reads. Only tensors are read from `src`; nothing in it is run.

    The 13 convolutions are found by shape in the file's order (TensorFlow HWIO layouts are transposed) and
    named as torchvision does; five LPIPS channel-weight vectors (64, 128, 256, 512, 512), when present,
    become `lin.0..4.weight`. Returns `dst`.
    """
    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise FileNotFoundError(f"perceptual weights not found: {src}")
    if dst.exists() and src.resolve() == dst.resolve():
        raise ValueError(f"refusing to convert {src} onto itself; choose another output path")
    if dst.exists() and not overwrite:
        raise FileExistsError(f"{dst} already exists (pass --overwrite / overwrite=True to replace it)")
    pairs, source = _read_pairs(src, allow_script=True)
    tensors = _vgg_from_tensors(pairs, src)
    meta = {"format": FORMAT, "source": src.name, "source_kind": source, "lpips": json.dumps("lin.0.weight" in tensors)}
    atomic_write(dst, lambda tmp: save_file(tensors, str(tmp), metadata=meta))
    return dst


def _read_pairs(path: Path, allow_script: bool) -> tuple[list[tuple[str, torch.Tensor]], str]:
    if path.stat().st_size == 0:
        raise _fail(path, "the file is empty")
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) == 9 and head[8:9] == b"{":
        try:
            with safe_open(str(path), framework="pt") as f:
                return [(k, f.get_tensor(k)) for k in f.keys()], "safetensors"
        except Exception as e:  # safetensors raises its own types for damaged headers
            raise _fail(path, f"a damaged safetensors file ({str(e)[:160]})") from None
    with open(path, "rb") as f:
        is_zip = f.read(4) == b"PK\x03\x04"
    if not is_zip:
        raise _fail(path, "neither a safetensors file nor a PyTorch zip archive (legacy pickles are refused)")
    obj, is_script = read_torch_zip(path, fail=lambda what: _fail(path, what))
    if is_script and not allow_script:
        raise _fail(path, "a TorchScript archive; loading TorchScript would run code stored in the file, so it is "
                          "refused. Convert its tensors once (nothing is run) with "
                          f"`dynode convert-perceptual {path} vgg16.safetensors`")
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    return flatten(obj), "torchscript" if is_script else "torch"


def load_perceptual_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of a VGG16 weights file: `features.N.weight/bias` and optional `lin.K.weight`.

    Raises FileNotFoundError / CheckpointError (with the fix) for anything else, including TorchScript.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"perceptual-loss weights not found: {path} (they are never downloaded; "
                                f"pass a local file: {_HELP})")
    pairs, _ = _read_pairs(path, allow_script=False)
    state = {k.removeprefix("module."): v for k, v in pairs}
    if not any(k.startswith("features.") for k in state):
        state = _vgg_from_tensors(pairs, path)  # e.g. a state dict with other names
    return state


# --- the loss ---------------------------------------------------------------------------------------------

class PerceptualLoss(nn.Module):
    """VGG16 feature distance from a local weights file. Images [B, 3, H, W] in [-1, 1] -> distances [B].

    LPIPS-style: unit-normalised features of five layers (relu1_2 ... relu5_3), squared differences summed
    over channels (weighted by the file's LPIPS channel weights when it has them), averaged over positions,
    summed over layers. Inputs are normalised with torchvision's ImageNet mean and std.
    """

    def __init__(self, path: str | os.PathLike, device: torch.device | str = "cpu"):
        super().__init__()
        state = load_perceptual_weights(path)
        self.features = self._build_vgg(state, path).to(device).eval()
        lins = [state.get(f"lin.{k}.weight") for k in range(5)]
        self.lins = None
        if all(t is not None for t in lins):
            self.lins = [t.float().reshape(1, -1, 1, 1).to(device) for t in lins]
        for p in self.parameters():
            p.requires_grad_(False)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1).to(device))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1).to(device))

    @staticmethod
    def _build_vgg(state: dict, path) -> nn.Sequential:
        layers, c = [], 3
        for v in _VGG16_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU()]
                c = v
        net = nn.Sequential(*layers)
        own = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
        try:
            net.load_state_dict(own)
        except RuntimeError as e:
            raise _fail(path, f"not a torchvision VGG16 layout ({str(e)[:200]})") from None
        return net

    def features_of(self, img: torch.Tensor) -> list[torch.Tensor]:
        x = ((img + 1) / 2 - self.mean) / self.std
        feats = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in _VGG16_TAPS:
                feats.append(x / (x.square().sum(1, keepdim=True).sqrt() + 1e-10))
            if i >= _VGG16_TAPS[-1]:
                break
        return feats

    def distance(self, fx, fy) -> torch.Tensor:
        if self.lins is not None:
            return sum(((a - b).square() * w).sum(1).mean((1, 2)) for a, b, w in zip(fx, fy, self.lins))
        return sum((a - b).square().sum(1).mean((1, 2)) for a, b in zip(fx, fy))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.distance(self.features_of(x), self.features_of(y))
