"""Neural SDE dynamics: learned drift and diffusion in the clip's motion subspace (torchsde).

dy = v(y) dt + sigma dW: the drift v is the ODE's pair of forward/backward fields (pull towards the mean plus
an MLP chosen by cross-validation), sigma [k] a learned diagonal diffusion. Both are fitted by maximum
likelihood of the observed transitions (multiple shooting): y_j given y_i is read as Gaussian with mean the
drift flow over the gap and variance sigma^2 * gap (exact for a linear drift, close for gaps of a few frames).

Sampling simulates with `torchsde.sdeint` (Euler-Maruyama; a `BrownianInterval` seeded by `seed`, so a seed
always gives the same path and different seeds differ). Keyframe mode: inside the observed range the path is
the keyframe spline (or, with between="flow", the drift's bridges through the keyframes) plus the SDE's
noise over each gap, pinned to zero at both keyframes (a bridge: the noisy
path minus its noise-free flow, corrected linearly to end at zero), so every sample passes through the
observed codes and only the frames in between vary; outside the range the SDE runs from the end keyframe.
The noise acts inside the motion subspace only.
"""

from __future__ import annotations

import math

import torch
import torchsde
from torch import nn

from ._bridge import bridge
from .ode import ODEDynamics, _Fields

__all__ = ["SDEDynamics"]


class _RescaledSDE(nn.Module):
    """Rows with their own durations simulated together on s in [0, 1]: dy = d v(y) ds + sqrt(d) sigma dW_s."""

    noise_type = "diagonal"
    sde_type = "ito"

    def __init__(self, fields: _Fields, duration: torch.Tensor, forward: torch.Tensor, noise: bool = True):
        super().__init__()
        self.fields, self.duration, self.forward_rows = fields, duration, forward
        self.noise = duration.sqrt()[:, None] * fields.sigma * float(noise)

    def f(self, s, y):
        return self.duration[:, None] * self.fields(y, self.forward_rows)

    def g(self, s, y):
        return self.noise.expand_as(y)


class _OrnsteinUhlenbeck(nn.Module):
    """dn = -rate n dh + sigma dW (diagonal; rate a number or one per direction [k])."""

    noise_type = "diagonal"
    sde_type = "ito"

    def __init__(self, sigma: torch.Tensor, rate):
        super().__init__()
        self.sigma, self.rate = sigma.detach(), rate

    def f(self, s, n):
        return -self.rate * n

    def g(self, s, n):
        return self.sigma.expand_as(n)


class SDEDynamics(ODEDynamics):
    """Neural SDE (kind="sde"). Options as kind="ode" (docs/dynamics.md)."""

    kind = "sde"
    DIFFUSION = True

    @property
    def sigma(self) -> torch.Tensor:
        """Learned diffusion per basis direction [k] (basis units per square root of a mean gap)."""
        return self.fields.sigma.detach()

    def _pair_loss(self, fields, pred, target, duration):
        var = fields.sigma ** 2 * duration[:, None] + 1e-6
        return 0.5 * (((target - pred) ** 2) / var + var.log()).mean()

    def _simulate(self, start: torch.Tensor, duration: torch.Tensor, forward: torch.Tensor, s: torch.Tensor,
                  seed: int | None, noise: bool = True) -> torch.Tensor:
        """Paths from start [B, k] over `duration` [B] (> 0), read at sorted s [S] in [0, 1]. -> [S, B, k]"""
        n = max(1, math.ceil(float(duration.max()) / float(self.config["step"])))
        sde = _RescaledSDE(self.fields, duration, forward, noise)
        bm = torchsde.BrownianInterval(t0=0.0, t1=1.0, size=tuple(start.shape), dtype=start.dtype,
                                       device=start.device, entropy=seed)
        return torchsde.sdeint(sde, start, s, method="euler", dt=1.0 / n, bm=bm)

    def _segments(self, start, duration, forward, seg, s_q, seed, noise_only=False):
        """Simulate one path per segment (rows of start/duration/forward) and read query n at segment seg[n],
        fraction s_q[n]. -> (values at the queries [N, k], values at each segment's end [B, k])"""
        duration = duration.clamp_min(1e-6)
        n = max(1, math.ceil(float(duration.max()) / float(self.config["step"])))
        grid = torch.linspace(0.0, 1.0, n + 1, device=s_q.device, dtype=s_q.dtype)  # the solver's steps
        paths = self._simulate(start, duration, forward, grid, seed)  # [S, B, k]
        if noise_only:  # subtract the noise-free path (same scheme and steps) from the same start
            paths = paths - self._simulate(start, duration, forward, grid, seed, noise=False)
        # read between the solver's steps by linear interpolation: the Brownian path itself is rough at every
        # scale, and read at each frame it makes decoded samples flicker
        pos = (s_q * n).clamp(0, n)
        left = pos.floor().long().clamp(max=n - 1)
        a = (pos - left)[:, None]
        return paths[left, seg] * (1 - a) + paths[left + 1, seg] * a, paths[-1]

    def _keyframe_path(self, q, y_spline, weights, y_key, seed):
        tau = self._tau(self.key_times)
        T = len(tau)
        inside = (q >= 0) & (q <= tau[-1])
        # segment per query: gap g (between keyframes g and g + 1) inside, T - 1 after the end, T before the start
        gap = (torch.searchsorted(tau, q, right=True) - 1).clamp(0, T - 2)
        seg = torch.where(inside, gap, torch.where(q > tau[-1], T - 1, T))
        seg_start = torch.cat([tau, tau[:1]])
        seg_len = torch.cat([tau[1:] - tau[:-1], (q.max() - tau[-1]).clamp_min(0)[None],
                             (-q.min()).clamp_min(0)[None]])
        used = torch.unique(seg)
        index = torch.full((T + 1,), -1, dtype=torch.long, device=q.device)
        index[used] = torch.arange(len(used), device=q.device)
        s_q = ((q - seg_start[seg]).abs() / seg_len[seg].clamp_min(1e-6)).clamp(0, 1)
        forward = used < T
        out = torch.empty_like(y_spline)
        if inside.any():  # bridge noise around the spline; outside: the SDE itself from the end keyframes
            inner = used[used < T - 1]
            noise, end = self._segments(y_key[inner], seg_len[inner], forward[used < T - 1],
                                        index[seg[inside]], s_q[inside], seed, noise_only=True)
            base = y_spline[inside]
            if self.config["between"] == "flow":  # the drift's bridges instead of the spline
                base = bridge(self.fields, y_key, tau, q[inside], float(self.config["step"]))
            out[inside] = base + noise - s_q[inside, None] * end[index[seg[inside]]]
        if (~inside).any():
            outer = used[used >= T - 1]
            starts = torch.where((outer == T - 1)[:, None], y_key[-1], y_key[0])
            sel = index[seg[~inside]] - int((used < T - 1).sum())
            values, _ = self._segments(starts, seg_len[outer], outer == T - 1, sel, s_q[~inside],
                                       None if seed is None else seed + 1)
            out[~inside] = values
        return out

    def _continuation(self, q, y_key, seed):
        """The damped continuation plus noise that grows with the distance from the end keyframe and settles
        as the path settles: an Ornstein-Uhlenbeck process with the learned sigma, reverting over the
        continuation's `reversion` gaps (or faster: see below), started at 0 at each end."""
        mean = super()._continuation(q, y_key, seed)
        tau_last = float(self._tau(self.key_times[-1:]))
        after = q > tau_last
        h = torch.where(after, q - tau_last, -q).clamp_min(0)
        noise = torch.zeros_like(mean)
        c = self.config["continuation"]
        rate = torch.full_like(self.fields.sigma, 1.0 / float(c["reversion"]))
        if "envelope" in c:  # fitted since the envelope exists (older files keep their noise)
            # the spread far out, sigma / sqrt(2 rate), at most the keyframes' own spread: samples stay faces
            # of the clip; bounded by 1 / step for the Euler steps
            var = y_key.var(0).clamp_min(1e-12) if len(y_key) > 1 else torch.ones_like(rate)
            rate = torch.maximum(rate, self.fields.sigma.detach() ** 2 / (2 * var))
            rate = rate.clamp(max=1 / float(self.config["step"]))
        for rows, offset in ((after, 1), (~after, 2)):
            if not rows.any():
                continue
            far = max(float(h[rows].max()), 1e-6)
            n = max(1, math.ceil(far / float(self.config["step"])))
            grid = torch.linspace(0.0, far, n + 1, device=mean.device, dtype=mean.dtype)
            ou = _OrnsteinUhlenbeck(self.fields.sigma, rate)
            bm = torchsde.BrownianInterval(t0=0.0, t1=far, size=(1, len(ou.sigma)), dtype=mean.dtype,
                                           device=mean.device, entropy=None if seed is None else seed + offset)
            path = torchsde.sdeint(ou, mean.new_zeros(1, len(ou.sigma)), grid, method="euler", dt=far / n,
                                   bm=bm)[:, 0]  # [n + 1, k], read between the steps linearly (as the bridges)
            pos = (h[rows] / far * n).clamp(0, n)
            left = pos.floor().long().clamp(max=n - 1)
            a = (pos - left)[:, None]
            noise[rows] = path[left] * (1 - a) + path[left + 1] * a
        return mean + noise

    def _initial_path(self, q, y0, seed):
        after = q >= 0
        seg = torch.where(after, 0, 1)
        seg_len = torch.stack([q.max().clamp_min(0), (-q.min()).clamp_min(0)])
        s_q = (q.abs() / seg_len[seg].clamp_min(1e-6)).clamp(0, 1)
        values, _ = self._segments(y0.expand(2, -1), seg_len, torch.tensor([True, False], device=q.device),
                                   seg, s_q, seed)
        return values
