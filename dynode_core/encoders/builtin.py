"""The built-in generator's image encoder: a small CNN that reads the renderer's factors off a frame.

frame [B, 3, 64, 64] -> factors [B, F] -> `FactorEncoder` (the generator's own factor -> w map) -> w, the
same code at every layer (W), plus a small learned per-layer residual (W+) trained with a pixel loss through
the frozen generator. Trained by `scripts/train_builtin_encoder.py` on rendered faces with known factors,
supervised on the factors, on the codes and on the pixels.
"""

from __future__ import annotations

import torch
from torch import nn

from ..builtin import FACTOR_NAMES, factor_bounds


def _block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1), nn.GroupNorm(8, c_out), nn.SiLU())


class FactorCNN(nn.Module):
    """frames [B, 3, 64, 64] in [-1, 1] -> (factors [B, F] inside their ranges, residual [B, num_ws, w_dim])."""

    def __init__(self, num_ws: int, w_dim: int, width: int = 32, hidden: int = 256,
                 n_factors: int = len(FACTOR_NAMES)):
        super().__init__()
        c = [width, width * 2, width * 4, width * 8]
        self.features = nn.Sequential(_block(3, c[0], 2), _block(c[0], c[1], 2), _block(c[1], c[2], 2),
                                      _block(c[2], c[3], 2))  # 64 -> 4
        self.trunk = nn.Sequential(nn.Flatten(), nn.Linear(c[3] * 16, hidden), nn.SiLU())
        self.factor_head = nn.Linear(hidden, n_factors)
        self.residual_head = nn.Linear(hidden, num_ws * w_dim)
        nn.init.zeros_(self.residual_head.weight)
        nn.init.zeros_(self.residual_head.bias)
        self.num_ws, self.w_dim = num_ws, w_dim
        lo, hi = factor_bounds()
        self.register_buffer("lo", lo, persistent=False)
        self.register_buffer("hi", hi, persistent=False)

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(self.features(frames))
        factors = self.lo + torch.sigmoid(self.factor_head(h)) * (self.hi - self.lo)
        residual = self.residual_head(h).view(-1, self.num_ws, self.w_dim)
        return factors, residual


class BuiltinImageEncoder(nn.Module):
    """`FactorCNN` + the factor encoder: frames [B, 3, 64, 64] -> W+ codes [B, num_ws, w_dim]."""

    def __init__(self, cnn: FactorCNN, factor_encoder: nn.Module):
        super().__init__()
        self.cnn, self.factor_encoder = cnn, factor_encoder
        self.num_ws, self.w_dim = cnn.num_ws, cnn.w_dim

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        factors, residual = self.cnn(frames)
        return self.factor_encoder(factors)[:, None] + residual
