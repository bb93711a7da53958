"""Extrapolation past the keyframes that degrades gracefully: a damped continuation chosen per clip.

From the end keyframe y_e (the last one going forward, the first one going backward) with the end velocity v
(the last gap's difference quotient) the path is, h model-time units (mean gaps) past the end,

    y(h) = m + g(h) [ (y_e - m) exp(-h / R) + v M (1 - exp(-h / M)) exp(-h / R) ],   g(h) = exp(-(h / E)^2)

a continuation of the motion that slows down over M (`momentum`) gaps and settles, over R (`reversion`)
gaps, on the clip's typical face m = (1 - b) mean + b far, a mix (b = `target`) of the keyframes' mean and
the keyframe at the other end of the clip (a real face: on the built-in generator the mean code decodes to a
blend of faces). Close to the data it moves on as the face did; far from it, it is the typical face.

R, M and b are chosen per clip by cross-validation: from every keyframe of the later (earlier) half,
continue the keyframes up to it and score the next ones up to `HORIZON` gaps ahead, in both directions, by
`log_error` (ratios of errors count, as decibels do: a squared-error sum lets the few far predictions decide,
and in pixels it favoured drifting to the mean code). All candidates are scored in one batched evaluation
(closed form, milliseconds).

What the data cannot tell is bounded by the clip itself, unless the clip shows otherwise:
  - R is at most the observed span S (keyframe-to-keyframe, in gaps): a clip shows how far the face strays
    from its typical face only over S, so a longer memory (or none, as "hold the end keyframe" has) is a
    guess. Rolling-origin cross-validation on a short clip liked such guesses and paid for them most where
    the face was about to swing back (head turns are periodic; nothing in an exponential continuation knows).
  - the envelope g(h), E = max(HORIZON, `ENVELOPE` * S), takes the remaining offset to m within about half
    the observed span (never within less than the horizon the cross-validation checks): a hedge that barely
    moves the first gaps (g = 0.97 at h = E / 6) and makes the path far out the clip's typical face, never
    off the manifold the keyframes span.
On the tuning clips the bounds raised the pixel gain at every horizon (most at the far ones) and cut the
real codes' extrapolation error (docs/dynamics.md). Where the motion really is predictable (smooth, steady)
the unbounded continuation (any R up to 32 gaps, no envelope) is scored too and replaces the bounded one when
it halves its errors (`EVIDENCE`, the rule the learned flow must meet in ode.py): there the bounds cost up
to 3x the error. Files written before the envelope existed have no "envelope" key and sample as before.
"""

from __future__ import annotations

import itertools
import math

import torch

REVERSIONS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)  # gaps (bounded: at most the observed span)
MOMENTA = (0.0, 0.25, 0.5, 1.0, 2.0)
TARGETS = (0.0, 0.5, 1.0)
HORIZON = 3.0   # gaps ahead scored by the cross-validation
ENVELOPE = 0.5  # the envelope's width E as a fraction of the observed span
EVIDENCE = math.log(2)  # the unbounded continuation must beat the bounded one by this per scored prediction
DEFAULT = {"reversion": 2.0, "momentum": 0.0, "target": 0.0}  # clips too short to cross-validate


def _profile(h: torch.Tensor, reversion: torch.Tensor, momentum: torch.Tensor,
             envelope: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights of the end keyframe's offset from m and of the end velocity, [P, N], for candidates [P] at h [N]
    (envelope inf: none)."""
    decay = torch.exp(-h / reversion[:, None] - (h / envelope[:, None]) ** 2)
    m = momentum[:, None].clamp_min(1e-12)
    drift = torch.where(momentum[:, None] > 0, m * (1 - torch.exp(-h / m)), torch.zeros_like(decay))
    return decay, drift * decay


def _continue_all(y: torch.Tensor, knots: torch.Tensor, h: torch.Tensor, reversion, momentum, target,
                  envelope) -> torch.Tensor:
    """Coordinates [P, N, k] at h [N] >= 0 past the LAST keyframe of y [T, k] (knots [T]) for P candidates."""
    m = (1 - target)[:, None] * y.mean(0) + target[:, None] * y[0]                       # [P, k]
    v = (y[-1] - y[-2]) / (knots[-1] - knots[-2]) if len(y) > 1 else torch.zeros_like(y[0])
    a, b = _profile(h, reversion, momentum, envelope)
    return m[:, None] + a[..., None] * (y[-1] - m)[:, None] + b[..., None] * v


def continue_from(y: torch.Tensor, knots: torch.Tensor, h: torch.Tensor, params: dict) -> torch.Tensor:
    """Coordinates [N, k] at h [N] >= 0 past the LAST of the keyframes y [T, k] at sorted knots [T]."""
    envelope = params.get("envelope")  # None: unbounded, or a file written before the envelope existed
    one = lambda v: torch.tensor([float(v)], dtype=y.dtype, device=y.device)  # noqa: E731
    return _continue_all(y, knots.to(y), h.to(y), one(params["reversion"]), one(params["momentum"]),
                         one(params["target"]), one(math.inf if envelope is None else envelope))[0]


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
    return float(_log_errors(pred, truth, floor).sum())


def _log_errors(pred: torch.Tensor, truth: torch.Tensor, floor: float) -> torch.Tensor:
    """log(squared error + floor) per row, summed over the last dimension: [..., N, k] -> [..., N]"""
    return torch.log(((pred.double() - truth.double()) ** 2).sum(-1) + floor)


def error_floor(y: torch.Tensor) -> float:
    return 1e-6 * float((y.double() ** 2).sum(1).mean())


def choose_continuation(y: torch.Tensor, knots: torch.Tensor) -> dict:
    """The continuation parameters with the least cross-validated error on keyframes y [T, k] at knots [T]:
    the bounded ones, or the unbounded ones where they halve the errors."""
    y = y.detach().to("cpu", torch.float64)
    knots = knots.detach().to("cpu", torch.float64)
    T = len(knots)
    span = float(knots[-1] - knots[0])
    envelope = max(HORIZON, ENVELOPE * span)
    if T < 4:
        return {**DEFAULT, "envelope": envelope}
    bounded = [(r, m, b, envelope) for r, m, b in itertools.product(REVERSIONS, MOMENTA, TARGETS)
               if r <= max(1.0, span) + 1e-9]
    unbounded = [(r, m, b, math.inf) for r, m, b in itertools.product(REVERSIONS, MOMENTA, TARGETS)]
    grid = bounded + unbounded
    reversion, momentum, target, width = torch.tensor(grid, dtype=torch.float64).T
    floor = error_floor(y)
    err, scored = torch.zeros(len(grid), dtype=torch.float64), 0
    for yy, kk in ((y, knots), (y.flip(0), -knots.flip(0))):
        for k in range(max(1, T // 2 - 1), T - 1):
            ahead = (kk[k + 1:] - kk[k] <= HORIZON + 1e-9).nonzero().flatten() + k + 1
            if len(ahead) == 0:
                ahead = torch.tensor([k + 1])
            pred = _continue_all(yy[:k + 1], kk[:k + 1], kk[ahead] - kk[k], reversion, momentum, target, width)
            err += _log_errors(pred, yy[ahead][None], floor).sum(1)
            scored += len(ahead)
    # the first of equals: the grid's order (shortest memory first) breaks ties
    best = int(err[:len(bounded)].argmin())
    free = len(bounded) + int(err[len(bounded):].argmin())
    if err[free] < err[best] - EVIDENCE * scored:
        best = free
    r, m, b, e = grid[best]
    return {"reversion": r, "momentum": m, "target": b, "envelope": None if math.isinf(e) else e}
