"""Latent dynamics of a clip's codes: neural ODE, CDE and SDE behind one fit / sample / save contract."""

from .base import Dynamics, dynamics_options, fit_dynamics, load_dynamics
from . import cde, ode, sde  # noqa: F401  (register the kinds)

__all__ = ["Dynamics", "dynamics_options", "fit_dynamics", "load_dynamics"]
