"""Extrapolation past the keyframes that degrades gracefully: a damped continuation chosen per clip.

From the end keyframe y_e (the last one going forward, the first one going backward) with the end velocity v
(the last gap's difference quotient) the path is, h model-time units past the end,

    y(h) = m + (y_e - m) exp(-h / reversion) + v momentum (1 - exp(-h / momentum)) exp(-h / reversion)

a continuation of the motion that slows down over `momentum` gaps and settles, over `reversion` gaps, on the
clip's typical face m = (1 - target) mean + target far, a mix of the keyframes' mean and the keyframe at the
other end of the clip. Close to the data it moves on as the face did; far from it, it is the clip's typical
face, never off the manifold the keyframes span. The three numbers are chosen per clip by cross-validation:
from every keyframe of the later (earlier) half, continue the keyframes up to it and score the next ones up
to `HORIZON` gaps ahead, in both directions, by `log_error` (ratios of errors count, as decibels do: a
squared-error sum lets the few far predictions decide, and in pixels it favoured drifting to the mean code,
which decodes to a blend of faces).
"""

from __future__ import annotations

import itertools
import math

import torch

REVERSIONS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 1e9)  # 1e9: no pull to m
MOMENTA = (0.0, 0.25, 0.5, 1.0, 2.0)
TARGETS = (0.0, 0.5, 1.0)
HORIZON = 3.0  # gaps ahead scored by the cross-validation
DEFAULT = {"reversion": 2.0, "momentum": 0.0, "target": 0.0}


def _profile(h: torch.Tensor, reversion: float, momentum: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight of the end keyframe's offset from m, weight of the end velocity) at h [N] >= 0."""
    decay = torch.exp(-h / reversion)
    drift = momentum * (1 - torch.exp(-h / momentum)) if momentum > 0 else torch.zeros_like(h)
    return decay, drift * decay


def continue_from(y: torch.Tensor, knots: torch.Tensor, h: torch.Tensor, params: dict) -> torch.Tensor:
    """Coordinates [N, k] at h [N] >= 0 past the LAST of the keyframes y [T, k] at sorted knots [T]."""
    mean = y.mean(0)
    m = (1 - params["target"]) * mean + params["target"] * y[0]
    v = (y[-1] - y[-2]) / float(knots[-1] - knots[-2]) if len(y) > 1 else torch.zeros_like(y[0])
    a, b = _profile(h.to(y), float(params["reversion"]), float(params["momentum"]))
    return m + a[:, None] * (y[-1] - m) + b[:, None] * v


def continuation(y: torch.Tensor, knots: torch.Tensor, q: torch.Tensor, params: dict) -> torch.Tensor:
    """Coordinates [N, k] at model times q [N] outside [knots[0], knots[-1]]: forward past the last keyframe,
    backward before the first one (the same continuation of the clip played backwards)."""
    out = y.new_empty(len(q), y.shape[1])
    after = q > knots[-1]
    if after.any():
        out[after] = continue_from(y, knots, q[after] - knots[-1], params)
    if (~after).any():
        out[~after] = continue_from(y.flip(0), -knots.flip(0), knots[0] - q[~after], params)
    return out


def log_error(pred: torch.Tensor, truth: torch.Tensor, floor: float) -> float:
    """Sum over rows of log(squared error + floor): errors compared as ratios, as decibels compare frames."""
    return float(torch.log(((pred.double() - truth.double()) ** 2).sum(1) + floor).sum())


def error_floor(y: torch.Tensor) -> float:
    return 1e-6 * float((y.double() ** 2).sum(1).mean())


def choose_continuation(y: torch.Tensor, knots: torch.Tensor) -> dict:
    """The continuation parameters with the least cross-validated error on keyframes y [T, k] at knots [T]."""
    y = y.detach().to("cpu", torch.float64)
    knots = knots.detach().to("cpu", torch.float64)
    T = len(knots)
    if T < 4:
        return dict(DEFAULT)
    cases = []  # (keyframes seen, their knots, distances ahead, targets)
    for yy, kk in ((y, knots), (y.flip(0), -knots.flip(0))):
        for k in range(max(1, T // 2 - 1), T - 1):
            ahead = (kk[k + 1:] - kk[k] <= HORIZON + 1e-9).nonzero().flatten() + k + 1
            if len(ahead) == 0:
                ahead = torch.tensor([k + 1])
            cases.append((yy[:k + 1], kk[:k + 1], kk[ahead] - kk[k], yy[ahead]))
    floor = error_floor(y)
    best, best_err = dict(DEFAULT), math.inf
    for reversion, momentum, target in itertools.product(REVERSIONS, MOMENTA, TARGETS):
        params = {"reversion": reversion, "momentum": momentum, "target": target}
        err = sum(log_error(continue_from(ys, ks, h, params), truth, floor) for ys, ks, h, truth in cases)
        if err < best_err - 1e-12:
            best, best_err = params, err
    return best
