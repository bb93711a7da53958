"""Neural controlled differential equation: a hidden state driven by the whole clip (fixed-grid RK4).

The control X(t) = [t / span, y(t)] is the keyframe spline (a C2 spline under tension, the same one keyframe
mode uses) of the clip's basis coordinates y, held constant outside the observed range (the time channel keeps
running). The state
follows dz = g(z) dX, i.e. dz/dt = g(z) X'(t), with g an MLP whose output is a [state, channels] matrix,
z(t_start) = init(X(t_start)), and the codes are read out linearly as displacements from the start,
y(t) = y(t_start) + readout(z(t)) - readout(z(t_start)). Because the state is
driven by every frame, not only the first, the path follows all observations; driving it with another
clip's control path transfers that clip's motion (`sample(..., control=codes, control_times=times)`).
The solve runs once over a grid through every knot; any number of query times are read off it by one
vectorised step each, so sampling 10,000 times costs about as much as sampling 10.
"""

from __future__ import annotations

import torch
from torch import nn

from ._inputs import check_clip
from .model import Dynamics
from ._bridge import held_out, prefer_flow
from ._extrap import error_floor
from ._interp import TensionSpline
from ._mlp import plain_forward

__all__ = ["CDEDynamics"]

_WINDOW = 64  # RK4 steps a training solve runs in sequence (`CDEDynamics._knot_path`)


class _Vector(nn.Module):
    """g(z): [B, state] -> [B, state, channels], bounded by tanh (keeps the CDE well behaved)."""

    def __init__(self, state: int, channels: int, hidden: int):
        super().__init__()
        self.state, self.channels = state, channels
        self.net = nn.Sequential(nn.Linear(state, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, state * channels), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.field()(z)

    def field(self):
        """g as a plain function of z (`plain_forward`: the solves call it thousands of times per step)."""
        net, shape = plain_forward(self.net), (-1, self.state, self.channels)
        return lambda z: net(z).view(shape)

    def penalty(self) -> torch.Tensor:
        return sum((p ** 2).sum() for p in self.net.parameters())


class CDEDynamics(Dynamics):
    """Neural CDE (kind="cde"). Options: hidden, state, regularization, step (docs/dynamics.md)."""

    kind = "cde"
    OPTIONS = {
        "iterations": 200,
        "hidden": 32,
        "state": 16,               # size of the hidden state z
        "regularization": 1e-3,    # weight of the squared MLP weights
        "step": 0.5,               # largest RK4 step, in mean keyframe gaps
    }

    def _build(self) -> None:
        k, m = self.basis.rank, int(self.config["state"])
        self.init = nn.Linear(k + 1, m)
        self.vector = _Vector(m, k + 1, int(self.config["hidden"]))
        self.readout = nn.Linear(m, k)
        self.span = max(float(self._tau(self.key_times[-1:])), 1.0)

    def _path(self, q: torch.Tensor, y_ctrl: torch.Tensor, tau_ctrl: torch.Tensor) -> torch.Tensor:
        """Coordinates [N, k] at model times q [N] of the CDE driven by the control y_ctrl [Tc, k] at tau_ctrl.

        One classic RK4 solve per direction from the start over a grid of at most `step` gaps that holds every
        knot, then one vectorised RK4 step from the grid point before each query to the query."""
        spline = TensionSpline(tau_ctrl, self._tensions()[0])
        start = float(tau_ctrl[0])
        z0 = self.init(torch.cat([tau_ctrl[:1] / self.span, y_ctrl[0]]))[None]
        out = torch.empty(len(q), y_ctrl.shape[1], device=q.device)
        for sel, sign in ((q >= start, 1.0), (q < start, -1.0)):
            if not sel.any():
                continue
            nodes, w_steps = self._grid(spline, tau_ctrl, start, sign, float((q[sel] - start).abs().max()))
            h = nodes[1:] - nodes[:-1]                                   # [G - 1], signed
            dx = self._control_velocity(w_steps.to(y_ctrl) @ y_ctrl).view(len(h), 3, -1)
            g, z, states = self.vector.field(), z0, [z0]
            for h_i, (a, m, b) in zip(h.tolist(), dx[:, :, :, None].unbind(0)):
                z = _rk4(g, z, h_i, a, m, b)
                states.append(z)
            states = torch.cat(states)                                   # [G, m]
            # from the grid point at or before each query (in the solve's direction), one step to the query
            tq = q[sel].double().cpu()
            i = (torch.searchsorted(nodes * sign, tq * sign, right=True) - 1).clamp(0, len(nodes) - 1)
            hq = tq - nodes[i]
            zq = states[i.to(states.device)]
            part = hq.abs() > 1e-12
            if part.any():
                t3 = torch.stack([nodes[i[part]], nodes[i[part]] + hq[part] / 2, tq[part]], 1).flatten()
                d = self._control_velocity(spline.weights(t3, derivative=True).to(y_ctrl) @ y_ctrl).view(-1, 3, dx.shape[-1])
                zq = zq.clone()
                zq[part.to(zq.device)] = _rk4(g, zq[part.to(zq.device)], hq[part].to(zq)[:, None],
                                              d[:, 0, :, None], d[:, 1, :, None], d[:, 2, :, None])
            out[sel] = self.readout(zq)
        # read out displacements from the start, so every path starts exactly at its control's first point
        return out + (y_ctrl[0] - self.readout(z0))

    def _grid(self, spline: TensionSpline, tau_ctrl: torch.Tensor, start: float, sign: float, far: float):
        """Solver grid (float64, CPU) from start in direction sign over `far` gaps, with every knot on it, and
        the spline's derivative weights [3 (G - 1), Tc] at each step's RK4 stage times (cached: a fit reuses
        them at every optimiser step)."""
        key = (tuple(tau_ctrl.tolist()), sign, far, self._tensions()[0])
        cache = self.__dict__.setdefault("_grid_cache", {})
        if key not in cache:
            if len(cache) > 8:
                cache.clear()
            knots = tau_ctrl.detach().cpu().double()
            n = max(1, int(far / float(self.config["step"]) + 0.999))
            grid = start + sign * torch.linspace(0.0, far, n + 1, dtype=torch.float64)
            inner = knots[((knots - start) * sign > 0) & ((knots - start).abs() <= far)]
            nodes = torch.unique(torch.cat([grid, inner]))
            nodes = nodes if sign > 0 else nodes.flip(0)
            h = nodes[1:] - nodes[:-1]
            stages = torch.stack([nodes[:-1], nodes[:-1] + h / 2, nodes[1:]], 1).flatten()
            cache[key] = (nodes, spline.weights(stages, derivative=True))
        return cache[key]

    def _control_velocity(self, dy: torch.Tensor) -> torch.Tensor:
        """dX/dt [B, k + 1] from the control's coordinate velocities dy [B, k] (the time channel runs at 1 / span)."""
        return torch.cat([dy.new_full((dy.shape[0], 1), 1.0 / self.span), dy], 1)

    def _fit(self, progress, cancel) -> None:
        iters = int(self.config["iterations"])
        cv_iters = min(iters, max(100, iters // 3))
        T = len(self.key_times)
        between_cv = self.config["between"] == "auto" and self.config["keyframes"] and T >= 3
        total = (cv_iters if between_cv else 0) + iters
        if self.config["between"] == "auto":  # without a test: the corrected path, what the CDE did before
            keep_path = not between_cv or self._path_wins(progress, cancel, cv_iters, total)
            self.config["between"] = "flow" if keep_path else "spline"
        self._train(progress, cancel, iters, cv_iters if between_cv else 0, total)

    def _train(self, progress, cancel, iterations: int, done: int = 0, total: int | None = None) -> None:
        y = self.basis.encode(self.key_codes.flatten(1))
        at_knots = self._knot_path(y, self._tau(self.key_times))
        lam = float(self.config["regularization"])

        def loss():
            return ((at_knots() - y) ** 2).mean() + lam * self.vector.penalty()

        self._optimise(loss, self.parameters(), iterations, progress, cancel, done=done, total=total)

    def _knot_path(self, y: torch.Tensor, tau: torch.Tensor):
        """A function () -> [T, k]: the CDE driven by the clip's own control y [T, k], read at its knots tau [T],
        as `_path` gives it, for training. Solved in windows of at most `_WINDOW` steps run side by side as one
        batch: a window starts from where the window before it ended at the previous call (truncated
        backpropagation through time), so a call costs `_WINDOW` sequential steps whatever the clip's length.
        A clip of up to `_WINDOW` steps is one window, solved exactly as `_path` does."""
        spline = TensionSpline(tau, self._tensions()[0])
        start = float(tau[0])
        nodes, w_steps = self._grid(spline, tau, start, 1.0, float(tau[-1]) - start)
        h = nodes[1:] - nodes[:-1]                                       # [S]
        dx = self._control_velocity(w_steps.to(y) @ y).view(len(h), 3, -1)
        S = len(h)
        B = max(1, -(-S // _WINDOW))
        W = -(-S // B)                                                   # B windows of W steps, the last padded
        pad = B * W - S
        h = torch.cat([h, h.new_zeros(pad)]).to(y).view(B, W, 1)         # a step of 0 leaves the state as it is
        dx = torch.cat([dx, dx.new_zeros(pad, *dx.shape[1:])]).view(B, W, 3, -1, 1)
        at = (torch.searchsorted(nodes, tau.double().cpu(), right=True) - 1).clamp(0, S).to(y.device)
        first = torch.cat([tau[:1] / self.span, y[0]])
        starts = None                                                    # [B - 1, m]: windows 1.. start here

        def path():
            nonlocal starts
            g = self.vector.field()
            z0 = self.init(first)[None]
            if starts is None and B > 1:  # the first call: every window starts on one solve without gradients
                with torch.no_grad():
                    z, ends = z0, []
                    for b in range(B - 1):
                        for j in range(W):
                            z = _rk4(g, z, h[b, j], dx[b, j, 0], dx[b, j, 1], dx[b, j, 2])
                        ends.append(z)
                    starts = torch.cat(ends)
            z = z0 if B == 1 else torch.cat([z0, starts])
            states = [z]
            for j in range(W):
                z = _rk4(g, z, h[:, j], dx[:, j, 0], dx[:, j, 1], dx[:, j, 2])
                states.append(z)
            states = torch.stack(states, 1)                              # [B, W + 1, m]
            if B > 1:
                starts = states[:-1, -1].detach()
            on_grid = torch.cat([states[:, :-1].flatten(0, 1), states[-1:, -1]])  # [B W + 1, m], node order
            return self.readout(on_grid[at]) + (y[0] - self.readout(z0))

        return path

    def _path_wins(self, progress, cancel, iterations: int, total: int) -> bool:
        """Whether the CDE's corrected path is kept against the keyframe spline: one short fit of the same
        model without every third keyframe (`held_out`) predicts those, and so does the spline from the same
        keyframes; the path (what the CDE did before the option) goes only if the spline cuts the error by a
        third. Sets config["cv_between_error"]."""
        keep, out = held_out(len(self.key_times))
        config = {**self.config, "tension": self._tensions()[0], "between": "flow", "extrapolation": "flow",
                  "iterations": iterations}
        sub = CDEDynamics(self.key_times[keep], self.key_codes[keep], config)
        sub._train(progress, cancel, iterations, 0, total)
        y = self.basis.encode(self.key_codes.flatten(1))
        with torch.no_grad():
            path = self.basis.encode(sub.sample(self.key_times[out].float()).flatten(1))
        wins, scores = prefer_flow(path, self._spline_from(y, keep, out), y[out], error_floor(y), incumbent="flow")
        self.config["cv_between_error"] = scores
        return wins

    def _own_control(self, y0: torch.Tensor) -> torch.Tensor:
        y = self.basis.encode(self.key_codes.flatten(1))
        return y - y[0] + y0

    def _keyframe_path(self, q, y_spline, weights, y_key, seed):
        if self.config["between"] != "flow":
            return y_spline
        tau = self._tau(self.key_times)
        both = self._path(torch.cat([q, tau]), y_key, tau)
        path, at_keys = both[:len(q)], both[len(q):]
        return path + weights.apply(y_key - at_keys)  # the model's misses at the keyframes, splined

    def _initial_path(self, q, y0, seed):
        return self._path(q, self._own_control(y0), self._tau(self.key_times))

    def sample(self, times, z0=None, seed: int | None = None, keyframes: bool | None = None,
               control=None, control_times=None) -> torch.Tensor:
        """As `Dynamics.sample`, plus motion transfer: `control` codes [Tc, L, D] at `control_times` [Tc] drive
        the state instead of the fitted clip, starting from z0 (default the fitted clip's first code) at
        control_times' first time. Only the control's motion inside the fitted clip's motion subspace is used.
        """
        if control is None:
            if control_times is not None:
                raise ValueError("control_times given without control codes")
            return super().sample(times, z0=z0, seed=seed, keyframes=keyframes)
        if keyframes:
            raise ValueError("keyframes=True follows the fitted clip's own keyframes; it cannot be combined "
                             "with a control clip (leave keyframes unset)")
        if control_times is None:
            raise ValueError("control needs control_times [Tc], the times of its codes")
        t_c, z_c = check_clip(control_times, control)
        if tuple(z_c.shape[1:]) != tuple(self.key_codes.shape[1:]):
            raise ValueError(f"control codes must be [Tc, {', '.join(map(str, self.key_codes.shape[1:]))}] like "
                             f"the fitted clip's, got {list(z_c.shape)}")
        return self._read(times, z0, seed, lambda q, start: self._transfer(q, start, t_c, z_c))

    def _transfer(self, q, start, t_c, z_c):
        """The path at q [N] driven by control codes z_c [Tc, L, D] at t_c [Tc], from start (None: first code)."""
        first = self.key_codes.flatten(1)[0] if start is None else start
        y0 = self.basis.encode(first[None])[0]
        y_c = self.basis.encode(z_c.flatten(1).to(self.device))
        y = self._path(self._tau(q), y_c - y_c[0] + y0, self._tau(t_c))
        out = self.basis.decode(y) + self.basis.outside(first[None])
        return out.reshape(len(q), *self.key_codes.shape[1:])


def _rk4(g, z: torch.Tensor, h, dx_a: torch.Tensor, dx_m: torch.Tensor, dx_b: torch.Tensor) -> torch.Tensor:
    """One classic RK4 step of dz/dt = g(z) dX/dt from z [B, m] over h (a number or [B, 1]); dx_* [B or 1, c, 1]
    the control's velocity at the step's start, middle and end."""
    def f(z, dx):
        return (g(z) @ dx)[..., 0]

    h = torch.as_tensor(h, dtype=z.dtype, device=z.device)
    half = h / 2
    k1 = f(z, dx_a)
    k2 = f(torch.addcmul(z, half, k1), dx_m)
    k3 = f(torch.addcmul(z, half, k2), dx_m)
    k4 = f(torch.addcmul(z, h, k3), dx_b)
    return torch.addcmul(z, h / 6, torch.add(k1, k2 + k3, alpha=2) + k4)
