"""Socket types of the pack and the small values that travel on them.

| socket                 | value                                                              |
|------------------------|--------------------------------------------------------------------|
| DYNODE_GENERATOR       | `dynode_core.Generator` (on the offload device between nodes)      |
| DYNODE_CODES           | `dynode_core.Clip`: codes [T, L, D], times [T], metadata (identity) |
| DYNODE_DYNAMICS_SPEC   | `DynamicsSpec`: a kind ("ode"/"cde"/"sde") and its options         |
| DYNODE_DYNAMICS        | a fitted dynamics model (`dc.fit_dynamics(...)` result)            |
| DYNODE_TIMES           | float32 tensor [N] of times (seconds)                              |
| DYNODE_DIRECTION       | `Direction`: an edit direction [D] or [L, D] and its name          |
| DYNODE_FACES           | `Faces`: `dc.AlignedFaces` of a clip, its frame times and fps      |
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from dynode_core import Clip

GENERATOR = "DYNODE_GENERATOR"
ENCODER = "DYNODE_ENCODER"
CODES = "DYNODE_CODES"
DYNAMICS_SPEC = "DYNODE_DYNAMICS_SPEC"
DYNAMICS = "DYNODE_DYNAMICS"
TIMES = "DYNODE_TIMES"
DIRECTION = "DYNODE_DIRECTION"
FACES = "DYNODE_FACES"
IMAGE = "IMAGE"


Codes = Clip  # the codes socket's value; `Codes(codes, times)` (the name before Clip) still builds one


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


@dataclass(frozen=True)
class Faces:
    """Where the face crops of a clip came from: `aligned` (`dc.AlignedFaces`: transforms [T, 3, 3], found [T],
    crop size, framing), the frames' times [T] (seconds) and their frame rate."""

    aligned: object
    times: torch.Tensor
    fps: float

    def __len__(self) -> int:
        return len(self.times)
