"""Image encoders: frames -> W+ codes of a generator, in one forward pass (or a few, for ReStyle).

`load_encoder("builtin")` is the built-in generator's encoder; `load_encoder(path)` reads an official pSp, e4e or
ReStyle checkpoint (see `official`). Every encoder is called the same way:

    enc = dc.load_encoder("e4e_ffhq_encode.pt")
    codes = enc(frames)                  # frames [T, 3, H, W] in [-1, 1] -> codes [T, enc.num_ws, enc.w_dim]
    codes = enc(frames, iterations=1)    # ReStyle: number of feedback iterations (default: the official 5)

Frames are resized to the encoder's `input_size` (256 for the official encoders, 64 for the built-in one).
Codes come back on the encoder's device; frames are moved there.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from .._frames import checked_frames
from ..errors import CheckpointError, GeneratorMismatch
from ..stylegan2 import Generator

__all__ = ["ImageEncoder", "BuiltinEncoder", "OfficialEncoder", "load_encoder", "BUILTIN_ENCODER"]

BUILTIN_ENCODER = Path(__file__).resolve().parents[1] / "assets" / "builtin_image_encoder.safetensors"


class ImageEncoder(nn.Module):
    """Common interface: `num_ws`, `w_dim`, `input_size`, `name`; `enc(frames, iterations=None)` -> codes."""

    num_ws: int
    w_dim: int
    input_size: int
    name: str
    default_iterations: int = 1

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def forward(self, frames: torch.Tensor, iterations: int | None = None, batch_size: int = 16) -> torch.Tensor:
        """frames [T, 3, H, W] in [-1, 1] (resized to `input_size`) -> W+ codes [T, num_ws, w_dim] (float32)."""
        x = checked_frames(frames, self.input_size, stacklevel=4)
        n = self.default_iterations if iterations is None else iterations
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"iterations must be a positive integer, got {iterations!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        with torch.no_grad():
            return torch.cat([self._encode(c.to(self.device), n) for c in x.split(batch_size)]).float()

    def _encode(self, x: torch.Tensor, iterations: int) -> torch.Tensor:
        raise NotImplementedError

    def check_generator(self, G: nn.Module) -> None:
        """Raise GeneratorMismatch (a ValueError) unless G takes this encoder's codes (same num_ws and w_dim)."""
        if (G.num_ws, G.w_dim) != (self.num_ws, self.w_dim):
            raise GeneratorMismatch(f"the encoder {self.name!r} makes codes [T, {self.num_ws}, {self.w_dim}] but the "
                             f"generator takes [T, {G.num_ws}, {G.w_dim}] (num_ws, w_dim): use the encoder "
                             f"trained for this generator, or encoder=None to invert by optimisation only")


class BuiltinEncoder(ImageEncoder):
    """The built-in generator's encoder (see `encoders.builtin`): 64-px frames -> codes [T, 10, 128]."""

    input_size = 64

    def __init__(self, net: nn.Module, name: str = "builtin"):
        super().__init__()
        self.net, self.name = net, name
        self.num_ws, self.w_dim = net.num_ws, net.w_dim

    def _encode(self, x: torch.Tensor, iterations: int) -> torch.Tensor:
        return self.net(x)


class OfficialEncoder(ImageEncoder):
    """A pSp / e4e / ReStyle encoder: 256-px frames -> codes [T, n_styles, w_dim] (512 for FFHQ; + latent_avg).

    ReStyle encoders (6 input channels) run the official feedback loop: the first pass sees the frame beside
    the average image (the decoder's image of latent_avg), every later pass beside the previous
    reconstruction pooled to 256 px, and each pass adds its output to the codes.
    """

    input_size = 256

    def __init__(self, net: nn.Module, latent_avg: torch.Tensor | None, info: dict, decoder: Generator | None = None,
                 start_from_latent_avg: bool = True, name: str = "encoder"):
        super().__init__()
        self.net, self.info, self.name, self.decoder = net, info, name, decoder
        self.num_ws, self.w_dim = info["n_styles"], info["w_dim"]
        self.iterative = info["input_nc"] == 6
        self.default_iterations = 5 if self.iterative else 1
        self.start_from_latent_avg = start_from_latent_avg or self.iterative
        self.register_buffer("latent_avg", latent_avg if latent_avg is not None else torch.zeros(self.num_ws, self.w_dim))
        self._avg_image: torch.Tensor | None = None

    def _decode(self, codes: torch.Tensor) -> torch.Tensor:
        from .official import face_pool

        return face_pool(self.decoder.synthesis(codes.to(self.decoder.device), noise_mode="const").to(codes.device))

    def _encode(self, x: torch.Tensor, iterations: int) -> torch.Tensor:
        avg = self.latent_avg[None] if self.start_from_latent_avg else torch.zeros_like(self.latent_avg[None])
        if not self.iterative:
            return self.net(x) + avg
        if self._avg_image is None or self._avg_image.device != x.device:
            self._avg_image = self._decode(self.latent_avg[None])
        codes, y = avg.expand(x.shape[0], -1, -1), self._avg_image.expand(x.shape[0], -1, -1, -1)
        for i in range(iterations):
            codes = codes + self.net(torch.cat([x, y], 1))
            if i + 1 < iterations:
                y = self._decode(codes)
        return codes


def _builtin_encoder(device) -> BuiltinEncoder:
    from safetensors import safe_open

    from ..builtin import load_factor_encoder
    from .builtin import BuiltinImageEncoder, FactorCNN

    if not BUILTIN_ENCODER.is_file():
        raise CheckpointError(f"the built-in encoder is missing: expected {str(BUILTIN_ENCODER)!r} inside the "
                              "installed dynode_core package (reinstall, or run scripts/train_builtin_encoder.py)")
    with safe_open(str(BUILTIN_ENCODER), "pt") as f:
        meta = f.metadata() or {}
        sd = {k: f.get_tensor(k).float() for k in f.keys()}
    cnn = FactorCNN(num_ws=int(meta["num_ws"]), w_dim=int(meta["w_dim"]))
    cnn.load_state_dict(sd)
    net = BuiltinImageEncoder(cnn, load_factor_encoder())
    return BuiltinEncoder(net).eval().requires_grad_(False).to(device)


def load_encoder(path_or_name: str | os.PathLike, device: str | torch.device | None = None) -> ImageEncoder:
    """An image encoder: `"builtin"` (for the built-in generator) or an official pSp / e4e / ReStyle `.pt`.

    The checkpoint is read with `torch.load(weights_only=True)`, so nothing in it is executed; anything that is
    not an encoder checkpoint in the official layout (or names an unknown `encoder_type`) raises
    CheckpointError saying what was found. ReStyle encoders also load the decoder stored in the file. The
    encoder is in eval mode without gradients, on `device` (default CPU).
    """
    from ..checkpoints import load_generator
    from .official import build_encoder, latent_average, read_checkpoint

    device = torch.device("cpu") if device is None else torch.device(device)
    if isinstance(path_or_name, str) and path_or_name.strip().lower() == "builtin":
        return _builtin_encoder(device)
    path = Path(path_or_name).expanduser()
    if not path.is_file():
        raise CheckpointError(f"cannot load encoder {str(path)!r}: "
                              f"{'it is a directory' if path.is_dir() else 'no such file'} (the only built-in name "
                              "is 'builtin')")
    ckpt = read_checkpoint(path)
    net, info = build_encoder(ckpt, path)
    latent_avg = latent_average(ckpt, info["n_styles"], info["w_dim"], path)
    opts = ckpt["opts"]
    decoder = None
    if info["input_nc"] == 6:
        if not any(k.startswith("decoder.") for k in ckpt["state_dict"]):
            raise CheckpointError(f"cannot load encoder {str(path)!r}: a ReStyle encoder (6 input channels) needs "
                                  "the decoder its feedback loop was trained with, and the file has no 'decoder.*'")
        decoder = load_generator(path, device=device)
    start = bool(opts.get("start_from_latent_avg", True))
    if latent_avg is None and (start or decoder is not None):
        if decoder is None:
            raise CheckpointError(f"cannot load encoder {str(path)!r}: opts start_from_latent_avg is set but the "
                                  "file has no 'latent_avg'")
        latent_avg = decoder.w_avg.detach().cpu()[None].expand(info["n_styles"], -1).clone()
    del ckpt
    enc = OfficialEncoder(net, latent_avg, info, decoder, start_from_latent_avg=start, name=path.name)
    return enc.eval().requires_grad_(False).to(device)
