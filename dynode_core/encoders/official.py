"""pSp, e4e and ReStyle encoder checkpoints in their official layout.

A checkpoint written by pixel2style2pixel, encoder4editing or restyle-encoder is a torch file
`{'state_dict': {'encoder.*': ..., 'decoder.*': ...}, 'latent_avg': [n_styles or 1, 512], 'opts': dict}`.
`opts['encoder_type']` names the encoder network; the sizes (input channels, backbone depth, number of
styles, squeeze-excite or not) are read from the tensors. It is read with `torch.load(weights_only=True)`:
only tensors and plain containers, no code is run. The decoder (a rosinality StyleGAN2 under `decoder.*`) is
what `load_generator` reads from the same file; ReStyle encoders need it for their feedback loop.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoints import _load_torch_dict, _sniff
from ..errors import CheckpointError
from .irse import ENCODER_TYPES, BackboneEncoderUsingLastLayerIntoW, BackboneEncoderUsingLastLayerIntoWPlus

INPUT_SIZE = 256
RESTYLE_ITERATIONS = 5  # the official inference default (n_iters_per_batch)
_LAYOUT = "{'state_dict': {'encoder.*', 'decoder.*'}, 'latent_avg', 'opts': {'encoder_type': ...}}"


def _fail(path, what: str) -> CheckpointError:
    return CheckpointError(f"cannot load encoder {str(path)!r}: {what}. Expected a pSp / e4e / ReStyle checkpoint "
                           f"{_LAYOUT} with encoder_type one of {sorted(ENCODER_TYPES)}.")


def read_checkpoint(path: str | os.PathLike) -> dict:
    """The checkpoint dict, read without running any pickled code; CheckpointError if it is not one."""
    path = Path(path)
    try:
        kind = _sniff(path)
    except CheckpointError as e:
        raise _fail(path, str(e).split(": ", 1)[-1].split(". Supported")[0]) from None
    if kind != "torch":
        raise _fail(path, "not a PyTorch checkpoint file")
    ckpt = _load_torch_dict(path, lambda what: _fail(path, what))
    state = ckpt.get("state_dict")
    if not isinstance(state, dict) or not any(str(k).startswith("encoder.") for k in state):
        keys = sorted(map(str, state if isinstance(state, dict) else ckpt))[:8]
        raise _fail(path, f"no 'encoder.*' weights (found keys {keys}"
                          f"{' inside state_dict' if isinstance(state, dict) else ''})")
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise _fail(path, "'state_dict' holds values that are not tensors")
    opts = ckpt.get("opts")
    if isinstance(opts, argparse.Namespace):
        opts = vars(opts)
    if not isinstance(opts, dict):
        raise _fail(path, f"'opts' is {type(opts).__name__}, not a dict naming the encoder_type")
    return {**ckpt, "opts": opts}


def _count(state: dict, pattern: str) -> int:
    return len({m.group(1) for k in state if (m := re.fullmatch(pattern, k))})


def _arch(state: dict, kind: str, ckpt: dict, path) -> dict:
    """Sizes of the network, read from its tensors (IR-SE50 for every official checkpoint)."""
    def need(key: str) -> torch.Tensor:
        if key not in state:
            raise _fail(path, f"a {kind} without the tensor 'encoder.{key}'")
        return state[key]

    first = need("input_layer.0.weight")
    input_nc, stem = int(first.shape[1]), int(first.shape[0])
    if input_nc not in (3, 6):
        raise _fail(path, f"an encoder taking {input_nc} input channels (3 = RGB, 6 = ReStyle's image pair)")
    n_units = _count(state, r"body\.(\d+)\..*")
    # a stage starts where the width changes (a 1x1-conv shortcut) - and at unit 0
    starts = sorted({0} | {i for i in range(n_units) if f"body.{i}.shortcut_layer.0.weight" in state})
    if len(starts) != 4:
        raise _fail(path, f"an IR backbone with {len(starts)} stages ({n_units} units); expected 4")
    units = tuple(b - a for a, b in zip(starts, starts[1:] + [n_units]))
    widths = tuple(int(need(f"body.{i}.res_layer.1.weight").shape[0]) for i in starts)
    se = f"body.0.res_layer.5.fc1.weight" in state
    cls = ENCODER_TYPES[kind]
    if cls is BackboneEncoderUsingLastLayerIntoWPlus:
        w_dim = int(need("output_layer_2.3.weight").shape[0])
        n_styles = int(need("linear.weight").shape[0]) // w_dim
    elif cls is BackboneEncoderUsingLastLayerIntoW:
        w_dim = int(need("linear.weight").shape[0])
        n_styles = _styles_from_opts(ckpt["opts"]) or 2 * _count(ckpt["state_dict"], r"decoder\.to_rgbs\.(\d+)\..*") + 2
    else:
        w_dim = int(need("styles.0.linear.weight").shape[0])
        n_styles = _count(state, r"styles\.(\d+)\..*")
    if n_styles < 1:
        raise _fail(path, f"a {kind} whose number of styles cannot be read (no decoder, no output_size in opts)")
    return {"input_nc": input_nc, "units": units, "widths": widths, "stem": stem, "se": se,
            "n_styles": n_styles, "w_dim": w_dim}


def build_encoder(ckpt: dict, path) -> tuple[nn.Module, dict]:
    """The encoder network with its weights, and its sizes (plus "encoder_type")."""
    kind = ckpt["opts"].get("encoder_type")
    if kind not in ENCODER_TYPES:
        hint = " (ResNet34 backbones are not supported)" if isinstance(kind, str) and kind.startswith("ResNet") else ""
        raise _fail(path, f"unknown encoder_type {kind!r} in opts{hint}")
    state = {k[len("encoder."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("encoder.")}
    arch = _arch(state, kind, ckpt, path)
    net = ENCODER_TYPES[kind](arch)
    missing, unexpected = net.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise _fail(path, f"{kind} weights that do not fit the network (missing {missing[:4]}, unexpected "
                          f"{unexpected[:4]})")
    return net.eval().requires_grad_(False), {"encoder_type": kind, **arch}


def _styles_from_opts(opts: dict) -> int:
    size = opts.get("output_size") or opts.get("stylegan_size")
    return int(round(torch.log2(torch.tensor(float(size))).item())) * 2 - 2 if isinstance(size, int) and size > 0 else 0


def latent_average(ckpt: dict, n_styles: int, w_dim: int, path) -> torch.Tensor | None:
    """`latent_avg` as [n_styles, w_dim] (a single stored row is repeated), or None if the file has none."""
    avg = ckpt.get("latent_avg")
    if avg is None:
        return None
    if not isinstance(avg, torch.Tensor) or avg.ndim == 0 or avg.shape[-1] != w_dim:
        raise _fail(path, f"a latent_avg of {type(avg).__name__} {list(getattr(avg, 'shape', []))}, expected "
                          f"[{n_styles}, {w_dim}]")
    avg = avg.detach().float().reshape(-1, w_dim)
    if avg.shape[0] == 1:
        avg = avg.expand(n_styles, -1)
    if avg.shape[0] != n_styles:
        raise _fail(path, f"a latent_avg with {avg.shape[0]} rows for an encoder of {n_styles} styles")
    return avg.clone()


def face_pool(images: torch.Tensor) -> torch.Tensor:
    """The official `AdaptiveAvgPool2d((256, 256))` applied to decoder outputs before they are fed back."""
    return F.adaptive_avg_pool2d(images, (INPUT_SIZE, INPUT_SIZE))
