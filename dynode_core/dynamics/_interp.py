"""Interpolation through keyframes: gap lookup, a spline under tension chosen by cross-validation, pacing.

A spline under tension (Schweikert 1966; Cline 1974) solves f'''' = p^2 f'' between knots: C2, through every
knot, a natural cubic spline at tension p = 0 and ever closer to linear interpolation as p grows. It is linear
in the values, so `TensionSpline` returns weight matrices [N, T] that are applied to any values [T, C].
Computed in float64 on the CPU (T x T systems); times are in mean-gap units, so tensions are scale-free.

Pacing (`pace_weights`): motion in a video speeds up and slows down, so a path should not cross every gap at
a constant speed. The distance travelled through the keyframes (cumulative chord length, measured in
`pace_embedding` coordinates) is interpolated by a monotone cubic (Fritsch & Carlson 1980, Brodlie's slopes):
each gap is crossed faster near a fast neighbouring gap and slower near a slow one. Weight only moves between
a gap's two ends, so the path still passes through every keyframe.
"""

from __future__ import annotations

import math

import torch

from ._basis import principal_components

TENSIONS = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 32.0, 128.0)
PRIOR_TENSION = 8.0  # where choose_tension starts from: the best single tension in decoded frames


def locate(knots: torch.Tensor, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For sorted knots [T] and queries q [N]: (left [N], right [N], a [N]).

    Inside the range, q lies in the gap knots[left] <= q <= knots[right = left + 1] at fraction a in [0, 1].
    Before the first knot left = right = 0, after the last left = right = T - 1; a = 0 there.
    """
    n = knots.shape[0]
    right = torch.searchsorted(knots, q, right=True).clamp(1, n - 1)
    left = right - 1
    a = ((q - knots[left]) / (knots[right] - knots[left])).clamp(0, 1)
    before, after = q < knots[0], q > knots[-1]
    left = torch.where(after, right, left)
    right = torch.where(before, left, right)
    a = torch.where(before | after, torch.zeros_like(a), a)
    return left, right, a


class TensionSpline:
    """Spline under tension through sorted knots [T] (float64); held constant outside the knots."""

    def __init__(self, knots: torch.Tensor, tension: float):
        self.knots = knots.detach().to("cpu", torch.float64)
        self.p = float(tension)
        T = len(self.knots)
        h = self.knots[1:] - self.knots[:-1]
        self.m_op = torch.zeros(T, T, dtype=torch.float64)  # second derivatives = m_op @ values
        if T > 2:
            a, b = self._ab(h)
            A = torch.diag(b[:-1] + b[1:]) + torch.diag(a[1:-1], 1) + torch.diag(a[1:-1], -1)
            D = torch.zeros(T - 2, T, dtype=torch.float64)  # slope differences as a matrix of the values
            i = torch.arange(T - 2)
            D[i, i] = 1 / h[:-1]
            D[i, i + 1] = -1 / h[:-1] - 1 / h[1:]
            D[i, i + 2] = 1 / h[1:]
            self.m_op[1:-1] = torch.linalg.solve(A, D)

    def _ab(self, h):
        p = self.p
        if p < 1e-3:
            return h / 6, h / 3
        e = torch.exp(-2 * p * h)
        inv_sinh = 2 * torch.exp(-p * h) / (1 - e)
        coth = (1 + e) / (1 - e)
        return 1 / (p * p * h) - inv_sinh / p, coth / p - 1 / (p * p * h)

    def weights(self, q: torch.Tensor, derivative: bool = False) -> torch.Tensor:
        """Interpolation weights [N, T] at q [N]: values(q) = weights @ values (derivative=True: d/dq)."""
        q = q.detach().to("cpu", torch.float64)
        T = len(self.knots)
        left, right, _ = locate(self.knots, q)
        inside = right != left
        right = torch.where(inside, right, (left + 1).clamp(max=T - 1))
        xl, xr = self.knots[left], self.knots[right]
        h = (xr - xl).clamp_min(1e-12)
        u, v = (xr - q).clamp(min=0), (q - xl).clamp(min=0)
        rows = torch.arange(len(q))
        W = torch.zeros(len(q), T, dtype=torch.float64)
        Ml, Mr = self.m_op[left], self.m_op[right]  # [N, T]
        p = self.p
        if p < 1e-3:  # natural cubic
            if derivative:
                cl, cr = -u ** 2 / (2 * h) + h / 6, v ** 2 / (2 * h) - h / 6
                W[rows, left] -= 1 / h
                W[rows, right] += 1 / h
            else:
                cl, cr = (u ** 3 / h - u * h) / 6, (v ** 3 / h - v * h) / 6
                W[rows, left] += u / h
                W[rows, right] += v / h
        else:
            den = 1 - torch.exp(-2 * p * h)

            def sh(z):  # sinh(p z) / sinh(p h), stable for large p h
                return torch.exp(p * (z - h)) * (1 - torch.exp(-2 * p * z)) / den

            def ch(z):  # cosh(p z) / sinh(p h)
                return torch.exp(p * (z - h)) * (1 + torch.exp(-2 * p * z)) / den

            if derivative:
                cl, cr = (-p * ch(u) + 1 / h) / p ** 2, (p * ch(v) - 1 / h) / p ** 2
                W[rows, left] -= 1 / h
                W[rows, right] += 1 / h
            else:
                cl, cr = (sh(u) - u / h) / p ** 2, (sh(v) - v / h) / p ** 2
                W[rows, left] += u / h
                W[rows, right] += v / h
        W = W + cl[:, None] * Ml + cr[:, None] * Mr
        # constant outside the knots
        out = torch.zeros_like(W)
        if not derivative:
            out[rows, left] = 1.0
        return torch.where(inside[:, None], W, out)


def pace_embedding(frames: torch.Tensor, components=None) -> torch.Tensor:
    """Coordinates [T, r] of keyframes [T, ...] in which their distances pace the gaps.

    The clip's unit principal scores times the square root of each direction's standard deviation, so a
    squared distance weighs a direction by its spread, not by its variance as in code space, where the one or
    two directions a clip moves most in dominate, and not equally as in whitened coordinates, where
    directions of noise count like motion. components: `principal_components(frames.flatten(1))` when already
    computed.
    """
    _, _, variances, scores = principal_components(frames.flatten(1)) if components is None else components
    return scores * variances ** 0.25


def keyframe_distances(frames: torch.Tensor) -> torch.Tensor:
    """Distances [T - 1] between consecutive keyframes [T, ...], float64 on the CPU."""
    f = frames.detach().to("cpu", torch.float64).flatten(1)
    return (f[1:] - f[:-1]).norm(dim=1)


def _monotone_slopes(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Slopes [T] at knots x [T] of a monotone cubic through non-decreasing y [T] (Fritsch-Carlson)."""
    h = x[1:] - x[:-1]
    d = (y[1:] - y[:-1]) / h
    m = torch.zeros_like(y)
    if len(x) == 2:
        return m + d[0]
    # interior: Brodlie's weighted harmonic mean of the neighbouring secants, 0 next to a flat gap
    w1, w2 = 2 * h[1:] + h[:-1], h[1:] + 2 * h[:-1]
    flat = (d[:-1] <= 0) | (d[1:] <= 0)
    harmonic = (w1 + w2) / (w1 / d[:-1].clamp_min(1e-300) + w2 / d[1:].clamp_min(1e-300))
    m[1:-1] = torch.where(flat, torch.zeros_like(harmonic), harmonic)

    def end(h0, h1, d0, d1):  # one-sided three-point slope, kept shape-preserving
        return torch.minimum((((2 * h0 + h1) * d0 - h0 * d1) / (h0 + h1)).clamp_min(0), 3 * d0)

    m[0], m[-1] = end(h[0], h[1], d[0], d[1]), end(h[-1], h[-2], d[-1], d[-2])
    return m


def pace_weights(knots: torch.Tensor, distances: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Correction [N, T] to linear-interpolation weights at q [N] that paces each gap (module docstring).

    knots [T] sorted; distances [T - 1] between consecutive keyframes (`keyframe_distances`). Linear
    interpolation puts q at fraction a of its gap, paced it sits at s(a): the monotone cubic of the cumulative
    distance, read in that gap and normalised to [0, 1]. Each row moves weight between its gap's two ends only
    (rows sum to 0) and is 0 at the knots and outside their range.
    """
    knots = knots.detach().to("cpu", torch.float64)
    distances = distances.detach().to("cpu", torch.float64)
    q = q.detach().to("cpu", torch.float64)
    T = len(knots)
    W = torch.zeros(len(q), T, dtype=torch.float64)
    if T < 3:
        return W
    slope = _monotone_slopes(knots, torch.cat([distances.new_zeros(1), distances.cumsum(0)]))
    left, right, a = locate(knots, q)
    gap = left.clamp(max=T - 2)
    speed = distances[gap] / (knots[gap + 1] - knots[gap])
    moving = (right != left) & (distances[gap] > 1e-12 * float(distances.max()))
    speed = torch.where(moving, speed, torch.ones_like(speed))
    m0, m1 = slope[gap] / speed, slope[gap + 1] / speed  # s'(0), s'(1)
    s = (3 - 2 * a) * a ** 2 + (a - 1) ** 2 * a * m0 + (a - 1) * a ** 2 * m1  # cubic Hermite, s(0)=0, s(1)=1
    shift = torch.where(moving, s.clamp(0, 1) - a, torch.zeros_like(a))
    rows = torch.arange(len(q))
    W[rows, gap] -= shift
    W[rows, gap + 1] += shift
    return W


def choose_tension(knots: torch.Tensor, values: torch.Tensor, tolerance: float = 0.5,
                   max_folds: int = 64, reach: int = 12, paced: torch.Tensor | None = None,
                   min_folds_per_direction: int = 5, prior: float = PRIOR_TENSION) -> list[float]:
    """A tension per column of values [T, C] (e.g. per basis direction) from leave-one-out cross-validation
    over `TENSIONS`: each interior knot is predicted from the others. Per column, of the tensions whose error
    is within `tolerance` of that column's best, the one nearest `prior` on the `TENSIONS` ladder is taken
    (the straighter of two as near): a column moves off the moderate default only where the data show it,
    a slow head turn towards curves, a jerky mouth towards straight segments. Leaving a knot out doubles a
    gap, so the folds judge half the keyframe rate; in code space a moderate and a near-linear tension are
    then seldom apart by more than the tolerance, while decoded frames favour the moderate one
    (docs/dynamics.md).
    At most `max_folds` knots are left out, evenly spread, each predicted from the `reach` knots on either
    side (a knot further away changes a spline by < 1e-6).
    paced: the keyframes [T, F] whose distances pace the gaps (`pace_weights`); None: no pacing.
    With fewer than `min_folds_per_direction` folds the directions' errors are pooled and the highest tension
    within tolerance is taken, one for all: over 3 or 4 folds an error is mostly chance, and a straight path
    is the safe guess.
    """
    knots = knots.detach().to("cpu", torch.float64)
    values = values.detach().to("cpu", torch.float64)
    if paced is not None:
        paced = paced.detach().to("cpu", torch.float64)
    T, C = values.shape
    if T < 4:
        return [TENSIONS[-1]] * C
    folds = torch.linspace(1, T - 2, min(max_folds, T - 2)).round().long().unique().tolist()
    errors = torch.zeros(len(TENSIONS), C, dtype=torch.float64)
    for j in folds:
        keep = torch.tensor([i for i in range(max(0, j - reach), min(T, j + reach + 1)) if i != j])
        pace = 0.0 if paced is None else pace_weights(knots[keep], keyframe_distances(paced[keep]), knots[j:j + 1])
        for a, p in enumerate(TENSIONS):
            w = TensionSpline(knots[keep], p).weights(knots[j:j + 1]) + pace
            errors[a] += ((w @ values[keep] - values[j]) ** 2)[0]
    if not torch.isfinite(errors).all():
        return [TENSIONS[-1]] * C
    if len(folds) < min_folds_per_direction:  # too few folds to judge directions apart: one tension for all
        pooled = errors.sum(1)
        return [max(p for a, p in enumerate(TENSIONS) if pooled[a] <= (1 + tolerance) * pooled.min() + 1e-12)] * C
    ok = errors <= (1 + tolerance) * errors.min(0).values + 1e-12
    home = min(range(len(TENSIONS)), key=lambda a: abs(math.log1p(TENSIONS[a]) - math.log1p(prior)))
    return [TENSIONS[min((a for a in range(len(TENSIONS)) if ok[a, c]), key=lambda a: (abs(a - home), -a))]
            for c in range(C)]


class KeyframeWeights:
    """Weights of the keyframes in a path with one tension per value column, at N query times.

    `apply(values [T, C])` -> [N, C]: column c through the spline of tension tensions[c] (plus pacing);
    `first` [N, T]: the weights of column 0's tension (for values without a column of their own)."""

    def __init__(self, groups: list[tuple[torch.Tensor, torch.Tensor]], first: torch.Tensor):
        self.groups, self.first = groups, first

    def to(self, *args) -> "KeyframeWeights":
        return KeyframeWeights([(cols, w.to(*args)) for cols, w in self.groups], self.first.to(*args))

    def rows(self, mask: torch.Tensor) -> "KeyframeWeights":
        """The weights at the queries selected by mask [N] (bool)."""
        return KeyframeWeights([(cols, w[mask]) for cols, w in self.groups], self.first[mask])

    def apply(self, values: torch.Tensor) -> torch.Tensor:
        out = values.new_empty(self.first.shape[0], values.shape[1])
        for cols, w in self.groups:
            out[:, cols.to(values.device)] = w @ values[:, cols.to(values.device)]
        return out


def keyframe_weights(knots: torch.Tensor, tensions: list[float], q: torch.Tensor,
                     distances: torch.Tensor | None = None, splines: dict | None = None) -> KeyframeWeights:
    """`KeyframeWeights` at q [N] for knots [T] (float64, CPU) with one tension per column; distances [T - 1]
    pace the gaps (None: no pacing); splines: a dict caching `TensionSpline`s by tension."""
    splines = {} if splines is None else splines
    pace = 0.0 if distances is None else pace_weights(knots, distances, q)
    tensions = torch.tensor([float(p) for p in tensions], dtype=torch.float64)
    groups, first = [], None
    for p in tensions.unique().tolist():
        if p not in splines:
            splines[p] = TensionSpline(knots, p)
        w = splines[p].weights(q) + pace
        groups.append(((tensions == p).nonzero().flatten(), w))
        if p == float(tensions[0]):
            first = w
    return KeyframeWeights(groups, first)
