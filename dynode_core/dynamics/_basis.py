"""A clip's motion subspace: mean code + top principal directions, scaled so coordinates are O(1)."""

from __future__ import annotations

import math

import torch
from torch import nn


def principal_components(flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """flat codes [T, F] -> (mean [F], centred codes [T, F], variances [r] largest first, unit scores [T, r]),
    float64 on the CPU, keeping the r directions whose variance is above 1e-10 of the largest (none when
    every code is the same). From the eigen-decomposition of the small Gram matrix [T, T] instead of an SVD
    of [T, F]; the variances are the Gram eigenvalues (squared singular values)."""
    x = flat.detach().to("cpu", torch.float64)
    mean = x.mean(0)
    xc = x - mean
    evals, evecs = torch.linalg.eigh(xc @ xc.T)
    evals, evecs = evals.flip(0), evecs.flip(1)
    keep = int((evals > 1e-10 * evals[0]).sum()) if evals[0] > 0 else 0
    return mean, xc, evals[:keep], evecs[:, :keep]


class LowRankBasis(nn.Module):
    """y = (z - mean) @ directions.T / scale for flattened codes z [N, F] (F = L * D).

    `directions` [k, F] are orthonormal rows: the top-k principal directions of the centred clip codes,
    k <= min(rank, T - 1). `scale` is the standard deviation along the first direction, so fitted paths live
    in a box of a few units whatever the generator. What a code has outside the span (`outside`) is carried
    unchanged by the models, e.g. an edit or another person's identity.
    """

    def __init__(self, flat: torch.Tensor, rank: int, components=None):
        """flat codes [T, F]; components: their `principal_components` when already computed."""
        super().__init__()
        mean, xc, evals, evecs = principal_components(flat) if components is None else components
        if len(evals) == 0:
            raise ValueError("all codes are identical: there is no motion to fit")
        k = min(rank, xc.shape[0] - 1, len(evals))
        directions = (evecs[:, :k].T @ xc) / evals[:k].sqrt()[:, None]
        self.register_buffer("mean", mean.float().to(flat.device))
        self.register_buffer("directions", directions.float().to(flat.device))
        self.register_buffer("scale", torch.tensor(math.sqrt(float(evals[0]) / xc.shape[0])).float().to(flat.device))

    @property
    def rank(self) -> int:
        return self.directions.shape[0]

    def encode(self, flat: torch.Tensor) -> torch.Tensor:
        """[N, F] -> coordinates [N, k]"""
        return (flat - self.mean) @ self.directions.T / self.scale

    def decode(self, y: torch.Tensor) -> torch.Tensor:
        """coordinates [N, k] -> [N, F] (inside the span)"""
        return torch.addmm(self.mean, y * self.scale, self.directions)

    def outside(self, flat: torch.Tensor) -> torch.Tensor:
        """[N, F] -> the part of each code the basis does not represent, [N, F]"""
        return flat - self.decode(self.encode(flat))
