"""The table of dynamics kinds: the name `fit_dynamics(kind=...)` and the files use -> the model class."""

from __future__ import annotations

from .cde import CDEDynamics
from .model import Dynamics
from .ode import ODEDynamics
from .sde import SDEDynamics

KINDS: dict[str, type[Dynamics]] = {
    "ode": ODEDynamics,
    "sde": SDEDynamics,
    "cde": CDEDynamics,
}


def kind_class(kind: str) -> type[Dynamics]:
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {sorted(KINDS)}")
    return KINDS[kind]
