"""Socket types of the pack and the small values that travel on them.

| socket                 | value                                                              |
|------------------------|--------------------------------------------------------------------|
| DYNODE_GENERATOR       | `dynode_core.Generator` (on the offload device between nodes)      |
| DYNODE_CODES           | `Codes`: latent codes [T, L, D] and their times [T]                |
| DYNODE_DYNAMICS_SPEC   | `DynamicsSpec`: a family ("ode"/"cde"/"sde") and its options       |
| DYNODE_DYNAMICS        | a fitted dynamics model (`dc.fit_dynamics(...)` result)            |
| DYNODE_TIMES           | float32 tensor [N] of times (seconds)                              |
| DYNODE_DIRECTION       | `Direction`: an edit direction [D] or [L, D] and its name          |
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

GENERATOR = "DYNODE_GENERATOR"
CODES = "DYNODE_CODES"
DYNAMICS_SPEC = "DYNODE_DYNAMICS_SPEC"
DYNAMICS = "DYNODE_DYNAMICS"
TIMES = "DYNODE_TIMES"
DIRECTION = "DYNODE_DIRECTION"
IMAGE = "IMAGE"


@dataclass(frozen=True)
class Codes:
    """Latent codes of a clip, codes [T, L, D] (L = 1 for W, num_ws for W+), at times [T] (seconds)."""

    codes: torch.Tensor
    times: torch.Tensor

    def __post_init__(self):
        if self.codes.ndim != 3:
            raise ValueError(f"codes must have shape [T, L, D], got {list(self.codes.shape)}")
        if self.times.ndim != 1 or self.times.shape[0] != self.codes.shape[0]:
            raise ValueError(f"times must have shape [{self.codes.shape[0]}] (one per code), "
                             f"got {list(self.times.shape)}")

    def __len__(self) -> int:
        return self.codes.shape[0]


@dataclass(frozen=True)
class DynamicsSpec:
    """What `FitDynamics` should fit: `dc.fit_dynamics(times, codes, kind=kind, **options)`."""

    kind: str
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Direction:
    """An edit direction [D] (applied to every layer) or [L, D] (per layer)."""

    vector: torch.Tensor
    name: str = ""
