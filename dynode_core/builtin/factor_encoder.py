"""The built-in generator's companion: a factor encoder that maps cartoon-face factors to its W space.

The built-in generator (`load_generator("builtin")`) was trained as a decoder of the renderer's factors
(`scripts/train_builtin.py`): `FactorEncoder` maps factors [B, F] to a code w [B, w_dim], the StyleGAN2 synthesis
network draws it, and the mapping network was distilled to produce the same codes from Gaussian z. The encoder
gives ground-truth codes of any face, which the shipped edit directions and the quality tests are made from.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .renderer import FACTOR_NAMES, factor_bounds

ASSETS = Path(__file__).resolve().parent.parent / "assets"
FACTOR_ENCODER = ASSETS / "builtin_factor_encoder.safetensors"
DIRECTIONS = ASSETS / "directions"


class FactorEncoder(nn.Module):
    """factors [B, F] (in FACTOR_RANGES) -> w [B, w_dim]."""

    def __init__(self, w_dim: int, hidden: int = 256, n_factors: int = len(FACTOR_NAMES)):
        super().__init__()
        lo, hi = factor_bounds()
        self.register_buffer("lo", lo, persistent=False)
        self.register_buffer("hi", hi, persistent=False)
        self.net = nn.Sequential(nn.Linear(n_factors, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, w_dim))

    def forward(self, factors: torch.Tensor) -> torch.Tensor:
        u = (factors - self.lo) / (self.hi - self.lo) * 2 - 1  # every factor to [-1, 1]
        return self.net(u)


def factors_from_z(z: torch.Tensor) -> torch.Tensor:
    """The deterministic z -> factors map the mapping network was distilled on: the first F entries of z,
    through the normal CDF, stretched to each factor's range. z [B, z_dim] -> [B, F]"""
    lo, hi = factor_bounds(z.device)
    u = 0.5 * (1 + torch.erf(z[:, : len(FACTOR_NAMES)] / 2**0.5))
    return lo + u * (hi - lo)


def load_factor_encoder(path: str | Path = FACTOR_ENCODER, device: str | torch.device = "cpu") -> FactorEncoder:
    """The encoder shipped with the built-in generator, in eval mode."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no factor encoder at {path}; it is created by scripts/train_builtin.py")
    sd = load_file(str(path))
    enc = FactorEncoder(w_dim=sd["net.6.weight"].shape[0], hidden=sd["net.0.weight"].shape[0])
    enc.load_state_dict(sd)
    return enc.eval().requires_grad_(False).to(device)
