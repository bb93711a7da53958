"""Latent dynamics of a clip's codes: neural ODE, CDE and SDE behind one fit / sample / save contract."""

from .base import Dynamics, fit_dynamics, load_dynamics
from . import ode, sde  # noqa: F401

__all__ = ["Dynamics", "fit_dynamics", "load_dynamics"]
