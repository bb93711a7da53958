"""Latent dynamics of a clip's codes: neural ODE, CDE and SDE behind one fit / sample / save contract.

Modules: model (the contract every kind keeps), options (common options and their checks), files (the file
format), kinds (the table of kinds), fit (entry points); ode / sde / cde the kinds; _basis, _interp, _inputs,
_optim their helpers.
"""

from .fit import dynamics_options, fit_dynamics, load_dynamics
from .model import Dynamics

__all__ = ["Dynamics", "dynamics_options", "fit_dynamics", "load_dynamics"]
