"""The learned flow between keyframes, exact at both: a bridge per keyframe gap.

In the gap between keyframes y_i (at t_i) and y_{i+1} (at t_{i+1} = t_i + h), at fraction a in [0, 1],

    y(a) = (1 - w(a)) [F(a) + a (y_{i+1} - F(1))] + w(a) [B(a) + (1 - a) (y_i - B(0))],   w(a) = a^2 (3 - 2 a)

with F(a) the forward flow of the learned field from y_i for a h and B(a) the backward flow from y_{i+1} for
(1 - a) h. Each flow is corrected linearly to end on the other keyframe (so a field that drifts steadily
off the data is straightened out), and w is 0 at a = 0 and 1 at a = 1 with zero slope at both ends: the path
passes through both keyframes, leaves y_i as the forward flow does, arrives at y_{i+1} as the backward flow
does, and follows the learned motion in between.

One solve per gap and direction, all gaps together: the MLP field by the fit's fixed-step RK4 (`ode.flow`)
over the whole gap, read at any number of query times by cubic Hermite interpolation of the RK4 states and
their slopes (dense output, C1); the MLP-free field `-rate y` by its exact flow.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ._extrap import log_error

__all__ = ["BETWEEN", "blend_weight", "bridge", "held_out", "prefer_flow"]

BETWEEN = ("auto", "spline", "flow")  # the `between` option's values
MARGIN = 1.5  # the bridges must cut the cross-validated geometric-mean error by this factor


def blend_weight(a: torch.Tensor) -> torch.Tensor:
    """Weight of the backward flow at gap fraction a [N] in [0, 1]: 0 and 1 at the ends, flat there."""
    return a * a * (3 - 2 * a)


def _dense_flow(field: nn.Module, y: torch.Tensor, duration: torch.Tensor, forward: torch.Tensor,
                step: float) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The RK4 states [n + 1, B, k] and their slopes dy/ds [n + 1, B, k] on s = 0, 1/n, .., 1 of rows y [B, k]
    flowing for `duration` [B] (model time) along the field (dy/ds = duration v(y)): the steps `ode.flow`
    takes over the whole duration (n of at most `step` model-time units for the longest row), one at a time."""
    from .ode import flow

    n = max(1, math.ceil(float(duration.max()) / step))
    states = [y]
    for _ in range(n):
        states.append(flow(field, states[-1], duration / n, forward, step))  # one step each
    states = torch.stack(states)
    B, k = y.shape
    slopes = field(states.reshape(-1, k), forward.repeat(n + 1)).reshape(n + 1, B, k) * duration[:, None]
    return states, slopes, n


def _hermite(states: torch.Tensor, slopes: torch.Tensor, n: int, row: torch.Tensor,
             s: torch.Tensor) -> torch.Tensor:
    """Dense output [N, k]: row `row` [N] of the solve read at s [N] in [0, 1]."""
    pos = (s * n).clamp(0, n)
    i = pos.floor().long().clamp(max=n - 1)
    u = (pos - i)[:, None]
    h = 1.0 / n
    y0, y1 = states[i, row], states[i + 1, row]
    m0, m1 = slopes[i, row] * h, slopes[i + 1, row] * h
    u2, u3 = u * u, u * u * u
    return ((2 * u3 - 3 * u2 + 1) * y0 + (u3 - 2 * u2 + u) * m0 + (-2 * u3 + 3 * u2) * y1
            + (u3 - u2) * m1)


def _flows(fields: nn.Module, starts: torch.Tensor, duration: torch.Tensor, forward: torch.Tensor,
           row: torch.Tensor, s: torch.Tensor, step: float) -> torch.Tensor:
    """Values [N, k] of the flows from starts [B, k] over `duration` [B], row `row` [N] read at fraction s [N]."""
    if not getattr(fields, "neural", True):  # v = -rate y: `flow` takes its exact flow, no dense output needed
        from .ode import flow

        return flow(fields, starts[row], duration[row] * s, forward[row], step)
    states, slopes, n = _dense_flow(fields, starts, duration, forward, step)
    return _hermite(states, slopes, n, row, s)


def bridge(fields: nn.Module, y_key: torch.Tensor, knots: torch.Tensor, q: torch.Tensor,
           step: float) -> torch.Tensor:
    """Coordinates [N, k] at model times q [N] inside [knots[0], knots[-1]] of the bridges of `fields` (the
    ODE's `_Fields`) through the keyframes y_key [T, k] at sorted model times knots [T] (module docstring)."""
    T = len(knots)
    if len(q) == 0:
        return y_key.new_zeros(0, y_key.shape[1])
    gap = (torch.searchsorted(knots, q, right=True) - 1).clamp(0, T - 2)
    used, index = torch.unique(gap, return_inverse=True)
    h = knots[used + 1] - knots[used]
    a = ((q - knots[gap]) / h[index]).clamp(0, 1)
    G = len(used)
    starts = torch.cat([y_key[used], y_key[used + 1]])
    duration = torch.cat([h, h])
    forward = torch.cat([torch.ones(G, dtype=torch.bool, device=q.device),
                         torch.zeros(G, dtype=torch.bool, device=q.device)])
    N = len(q)
    ends = torch.arange(2 * G, device=q.device)  # every flow read at its end too: its miss of the other keyframe
    values = _flows(fields, starts, duration, forward, torch.cat([index, index + G, ends]),
                    torch.cat([a, 1 - a, torch.ones(2 * G, dtype=a.dtype, device=a.device)]), step)
    ends = values[2 * N:]
    fwd = values[:N] + a[:, None] * (y_key[used + 1] - ends[:G])[index]
    bwd = values[N:2 * N] + (1 - a)[:, None] * (y_key[used] - ends[G:])[index]
    w = blend_weight(a)[:, None]
    return (1 - w) * fwd + w * bwd


def held_out(T: int) -> tuple[list[int], list[int]]:
    """(kept, held-out) keyframe indices of the one-fit cross-validation of the bridges among T >= 3: every
    third interior keyframe (2, 5, 8, ..; the middle one of short clips) is held out and predicted from its
    neighbours, so the field is still trained on two thirds of the gaps."""
    held = list(range(2, T - 1, 3)) or [T // 2]
    return [j for j in range(T) if j not in held], held


def prefer_flow(flow: torch.Tensor, spline: torch.Tensor, truth: torch.Tensor, floor: float,
                incumbent: str = "spline") -> tuple[bool, dict]:
    """Cross-validation verdict from predictions [M, k] of held-out keyframes truth [M, k] by the bridges and
    by the spline. The `incumbent` (what the kind did before the option: "spline" for ode / sde, "flow" for
    the CDE's corrected path) is replaced only if the other cuts the geometric mean of the errors by a third
    (the tension rule): a few folds are little evidence, so a clip whose motion the field does not know
    keeps its spline. -> (flow chosen, {"spline": log error sum, "flow": log error sum})"""
    scores = {"spline": log_error(spline, truth, floor), "flow": log_error(flow, truth, floor)}
    margin = len(truth) * math.log(MARGIN)
    if incumbent == "flow":
        return not scores["spline"] < scores["flow"] - margin, scores
    return scores["flow"] < scores["spline"] - margin, scores
