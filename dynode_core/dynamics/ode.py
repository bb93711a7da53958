"""Neural ODE dynamics: learned autonomous velocity fields in the clip's motion subspace.

Two fields: v_fwd moves a code forward in time, v_bwd backward (for times before a start). Each is
`mlp(y) - rate * y`: a learned pull towards the clip's mean code plus an optional neural part (one shared
SiLU MLP trunk). Fitting is multiple shooting: from every observed code, flow to the next `window` codes with
v_fwd and to the previous `window` codes with v_bwd, full batch, one batched solve (fixed-step RK4, at most
`step` mean gaps per step, the scheme of torchdiffeq's `odeint(method="rk4")`) per optimiser step.

Whether the neural part is used is decided by extrapolation cross-validation when `neural="auto"`: fit with
and without it on the first 3/4 of the clip and predict the rest (and the same backwards); the MLP is kept only
if it predicts better. On short jerky clips (e.g. 11 real talking-head codes) the pull towards the mean wins,
on smooth motion the MLP does.

Sampling: keyframe mode takes the spline through the keyframes inside the observed range, or the learned
flow's bridges through them (option between, `_bridge.py`; "auto" cross-validates them per clip), and the
continuation or the learned flow from the first/last keyframe outside it; initial-value mode flows from z0
at the first observed time.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from ._bridge import bridge, held_out, prefer_flow
from ._extrap import choose_continuation, continue_from, error_floor, log_error
from ._mlp import plain_forward
from .model import Dynamics

__all__ = ["ODEDynamics"]


class _Fields(nn.Module):
    """Velocity fields in basis coordinates, forward and backward in time: v_d(y) = mlp_d(y) - rate_d * y.

    With neural=False the MLP is skipped (its output layer is zero-initialised, so it contributes nothing).
    With diffusion=True it also holds a diagonal diffusion sigma [k] (used by the SDE).
    """

    def __init__(self, k: int, hidden: int, neural: bool = True, diffusion: bool = False):
        super().__init__()
        self.neural = neural
        self.net = nn.Sequential(nn.Linear(k, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, 2 * k))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)
        self.raw_rate = nn.Parameter(torch.full((2,), -3.0))
        self.raw_sigma = nn.Parameter(torch.full((k,), math.log(math.expm1(0.3)))) if diffusion else None

    @property
    def sigma(self) -> torch.Tensor:
        return nn.functional.softplus(self.raw_sigma)

    def forward(self, y: torch.Tensor, forward: torch.Tensor) -> torch.Tensor:
        """y [B, k], forward [B] bool -> velocity [B, k] (d y / d t for forward rows, d y / d(-t) otherwise)"""
        return self.velocity(forward)(y)

    def velocity(self, forward: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """The velocity y [B, k] -> [B, k] of rows whose direction is fixed by forward [B] (bool); what depends
        on the direction only is computed once, not at every solver stage."""
        rate = nn.functional.softplus(self.raw_rate)
        minus_rate = -torch.where(forward, rate[0], rate[1])[:, None]
        if not self.neural:
            return lambda y: minus_rate * y
        rows, net = forward[:, None], plain_forward(self.net)

        def v(y):
            out = net(y)
            k = y.shape[-1]
            return torch.addcmul(torch.where(rows, out[:, :k], out[:, k:]), minus_rate, y)

        return v

    def trainable(self) -> list[nn.Parameter]:
        params = [self.raw_rate] + (list(self.net.parameters()) if self.neural else [])
        return params + ([self.raw_sigma] if self.raw_sigma is not None else [])

    def penalty(self) -> torch.Tensor:
        if not self.neural:
            return self.raw_rate.new_zeros(())
        return sum((p ** 2).sum() for p in self.net.parameters())


def flow(field: nn.Module, y: torch.Tensor, duration: torch.Tensor, forward: torch.Tensor,
         step: float) -> torch.Tensor:
    """Move every row of y [B, k] for `duration` [B] >= 0 (model time) along its field. -> [B, k]

    All rows take the same number of fixed RK4 steps, at most `step` model-time units each for the longest
    row: the same scheme as torchdiffeq's odeint(method="rk4") on s in [0, 1] with dy/ds = duration * v(y)
    (the 3/8 rule; tests compare the two), written out because a fit calls it hundreds of times on tiny
    tensors, where odeint's bookkeeping cost as much as the field.
    """
    if y.shape[0] == 0:
        return y
    if not getattr(field, "neural", True):  # v = -rate y: the exact flow
        rate = nn.functional.softplus(field.raw_rate)
        return y * torch.exp(-torch.where(forward, rate[0], rate[1]) * duration)[:, None]
    n = max(1, math.ceil(float(duration.max()) / step))
    v = field.velocity(forward)
    dt = (duration / n)[:, None].to(y.dtype)
    third, eighth = dt / 3, dt / 8
    for _ in range(n):
        k1 = v(y)
        k2 = v(y + third * k1)
        k3 = v(y + dt * k2 - third * k1)
        k4 = v(y + dt * (k1 - k2 + k3))
        y = y + eighth * (k1 + 3 * (k2 + k3) + k4)
    return y


def shooting_pairs(n: int, window: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Index pairs (i, j) with 1 <= |i - j| <= window among n codes: start at code i, predict code j."""
    ii, jj = [], []
    for i in range(n):
        for j in range(max(0, i - window), min(n, i + window + 1)):
            if j != i:
                ii.append(i)
                jj.append(j)
    return torch.tensor(ii, device=device), torch.tensor(jj, device=device)


class ODEDynamics(Dynamics):
    """Neural ODE (kind="ode"). Options: hidden, neural, regularization, window, step (docs/dynamics.md)."""

    kind = "ode"
    DIFFUSION = False
    OPTIONS = {
        "iterations": 300,
        "hidden": 32,             # MLP width
        "neural": "auto",         # use the MLP: True, False, or "auto" (extrapolation cross-validation)
        "regularization": 1e-3,   # weight of the squared MLP weights
        "window": "auto",         # multiple shooting: each code predicts this many neighbours on each side
        "step": 0.25,             # largest RK4 step, in mean keyframe gaps
    }

    @classmethod
    def _check_kind_options(cls, config: dict) -> None:
        if config["neural"] not in (True, False, "auto"):
            raise ValueError(f"option neural must be True, False or 'auto', got {config['neural']!r}")
        w = config["window"]
        if w != "auto" and (isinstance(w, bool) or not isinstance(w, int) or w < 1):
            raise ValueError(f"option window must be 'auto' or a positive integer, got {w!r}")
        if not config["keyframes"]:
            # the pure initial-value model must carry the whole motion: always neural, trained on longer spans
            config["neural"] = True if config["neural"] == "auto" else config["neural"]
        if w == "auto":
            config["window"] = 2 if config["keyframes"] else 4

    def _new_fields(self, neural: bool) -> _Fields:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(self.config["seed"]))
            fields = _Fields(self.basis.rank, int(self.config["hidden"]), neural, self.DIFFUSION)
        return fields.to(self.device)

    def _build(self) -> None:
        # a saved model knows whether it uses the MLP; a new one decides in _fit
        self.fields = _Fields(self.basis.rank, int(self.config["hidden"]), self.config["neural"] is True,
                              self.DIFFUSION)

    # ------------------------------------------------------------------------------ fitting
    def _pair_loss(self, fields: _Fields, pred: torch.Tensor, target: torch.Tensor,
                   duration: torch.Tensor) -> torch.Tensor:
        return ((pred - target) ** 2).mean()

    def _train(self, fields: _Fields, y: torch.Tensor, tau: torch.Tensor, progress, cancel, done: int,
               total: int, what: str = "fit", iterations: int | None = None) -> None:
        i, j = shooting_pairs(len(tau), int(self.config["window"]), y.device)
        duration, forward = (tau[j] - tau[i]).abs(), j > i
        lam, step = float(self.config["regularization"]), float(self.config["step"])

        def loss():
            pred = flow(fields, y[i], duration, forward, step)
            return self._pair_loss(fields, pred, y[j], duration) + lam * fields.penalty()

        self._optimise(loss, fields.trainable(), iterations or int(self.config["iterations"]), progress, cancel,
                       done=done, total=total, what=what)

    def _train_linear(self, fields: _Fields, y: torch.Tensor, tau: torch.Tensor) -> None:
        """The MLP-free field in closed form: each direction's rate minimises the shooting loss of the exact
        flow y exp(-rate d) (a 1-D search), and the SDE's sigma is the maximum-likelihood spread of the misses."""
        i, j = shooting_pairs(len(tau), int(self.config["window"]), y.device)
        duration, forward = (tau[j] - tau[i]).abs().double(), j > i
        yi, yj = y[i].double(), y[j].double()
        rates = torch.zeros(2, dtype=torch.float64)
        # rates up to 2 / step: what the RK4 steps of a neural fit started from them integrate stably
        top = 2.0 / float(self.config["step"])
        grid = torch.cat([torch.zeros(1, dtype=torch.float64),
                          torch.logspace(-4, math.log10(top), 201, dtype=torch.float64)])
        for d, rows in enumerate((forward, ~forward)):
            if not rows.any():
                continue
            e = torch.exp(-grid[:, None] * duration[rows][None])                      # [R, P]
            loss = ((e[:, :, None] * yi[rows][None] - yj[rows][None]) ** 2).sum((1, 2))
            rates[d] = grid[int(loss.argmin())]
        rates = rates.clamp_min(1e-6)
        with torch.no_grad():
            fields.raw_rate.copy_(torch.where(rates > 20, rates, torch.log(torch.expm1(rates))).float())
            if fields.raw_sigma is not None:
                r = torch.where(forward, rates[0], rates[1])
                miss = yi * torch.exp(-r * duration)[:, None] - yj
                var = ((miss ** 2) / duration[:, None]).mean(0).clamp_min(1e-8)
                fields.raw_sigma.copy_(torch.log(torch.expm1(var.sqrt())).float())

    def _train_field(self, neural: bool, y, tau, progress, cancel, done, total, iterations, what="fit"):
        fields = self._new_fields(neural)
        if neural:
            self._train(fields, y, tau, progress, cancel, done, total, what=what, iterations=iterations)
        else:
            self._train_linear(fields, y, tau)
        return fields

    def _fit(self, progress, cancel) -> None:
        y = self.basis.encode(self.key_codes.flatten(1))
        tau = self._tau(self.key_times)
        T, iters = len(tau), int(self.config["iterations"])
        neural = self.config["neural"]
        hold = max(1, round(T / 4))
        continues = self.config["extrapolation"] == "auto"
        cv = neural == "auto" and T - hold >= 3  # too few codes to learn (or test) more than the pull to the mean
        if neural == "auto" and not cv:
            neural = False
        cv_iters = min(iters, max(100, iters // 3))  # the cross-validation fits are shorter
        # the bridges are cross-validated only with the MLP (one more short fit): the MLP-free field knows no
        # motion but the pull to the mean, whose bridges shrink every gap towards the mean code
        between_cv = self.config["between"] == "auto" and self.config["keyframes"] and T >= 3 and neural is not False
        total = (2 * cv_iters if cv else 0) + (cv_iters if between_cv else 0) + iters
        done = 0
        if cv:
            step = float(self.config["step"])
            scores = {False: 0.0, True: 0.0, "continuation": 0.0}
            floor = error_floor(y)
            for fwd in (True, False):
                fit_idx = slice(0, T - hold) if fwd else slice(hold, T)
                test = torch.arange(T - hold, T) if fwd else torch.arange(0, hold)
                start = T - hold - 1 if fwd else hold
                dur = (tau[test] - tau[start]).abs()
                for candidate in (False, True):
                    fields = self._train_field(candidate, y[fit_idx], tau[fit_idx], progress, cancel, done, total,
                                               cv_iters, what="cross-validation")
                    done += cv_iters if candidate else 0
                    with torch.no_grad():
                        pred = flow(fields, y[start].expand(len(test), -1), dur,
                                    torch.full((len(test),), fwd, device=y.device), step)
                    scores[candidate] += log_error(pred, y[test], floor)
                seen = (y[fit_idx], tau[fit_idx]) if fwd else (y[fit_idx].flip(0), -tau[fit_idx].flip(0))
                params = choose_continuation(*seen)
                pred = continue_from(seen[0], seen[1], dur, params)
                scores["continuation"] += log_error(pred, y[test], floor)
            neural = scores[True] < scores[False]
            self.config["cv_extrapolation_error"] = {"linear": scores[False], "neural": scores[True],
                                                     "continuation": scores["continuation"]}
            # two origins are little evidence against the continuation's many: the flow must halve its errors
            if continues and min(scores[False], scores[True]) < scores["continuation"] - 2 * hold * math.log(2):
                self.config["continuation"] = None  # the learned flow extrapolates better on this clip
        self.config["neural"] = bool(neural)
        if self.config["between"] == "auto":
            self.config["between"] = "spline"
            if between_cv and neural:
                flow_wins = self._bridges_win(y, tau, progress, cancel, done, total, cv_iters)
                self.config["between"] = "flow" if flow_wins else "spline"
            done += cv_iters if between_cv else 0
        self.fields = self._train_field(bool(neural), y, tau, progress, cancel, done, total, iters)
        if progress is not None and not neural:
            progress(total, total)  # the closed-form final fit takes no optimiser steps

    def _bridges_win(self, y, tau, progress, cancel, done: int, total: int, iterations: int) -> bool:
        """Whether the bridges of the learned flow (`_bridge.bridge`) predict held-out keyframes better than the
        keyframe spline: one short MLP fit without every third keyframe (`_bridge.held_out`) predicts those,
        and so does the spline through the same keyframes. Sets config["cv_between_error"]."""
        keep, out = held_out(len(tau))
        fields = self._train_field(True, y[keep], tau[keep], progress, cancel, done, total, iterations,
                                   what="between cross-validation")
        with torch.no_grad():
            flows = bridge(fields, y[keep], tau[keep], tau[out], float(self.config["step"]))
        wins, scores = prefer_flow(flows, self._spline_from(y, keep, out), y[out], error_floor(y))
        self.config["cv_between_error"] = scores
        return wins

    # ------------------------------------------------------------------------------ sampling
    def _outside(self, q: torch.Tensor, y_key: torch.Tensor, seed) -> torch.Tensor:
        """Coordinates at times q [M] outside the observed range, continued from the first / last keyframe."""
        tau_last = float(self._tau(self.key_times[-1:]))
        after = q > tau_last
        start = torch.where(after[:, None], y_key[-1], y_key[0])
        dur = torch.where(after, q - tau_last, -q)
        return flow(self.fields, start, dur, after, float(self.config["step"]))

    def _keyframe_path(self, q, y_spline, weights, y_key, seed):
        out = y_spline.clone()
        tau_last = float(self._tau(self.key_times[-1:]))
        beyond = (q < 0) | (q > tau_last)
        if self.config["between"] == "flow" and (~beyond).any():
            out[~beyond] = bridge(self.fields, y_key, self._tau(self.key_times), q[~beyond],
                                  float(self.config["step"]))
        if beyond.any():
            out[beyond] = self._outside(q[beyond], y_key, seed)
        return out

    def _initial_path(self, q, y0, seed):
        return flow(self.fields, y0.expand(len(q), -1), q.abs(), q >= 0, float(self.config["step"]))
