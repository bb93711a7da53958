"""The contract every latent dynamics model keeps: built on one clip, sampled at any time, saved.

A clip's codes z_0..z_{T-1} [T, L, D] at times t_0..t_{T-1} are read as observations of one continuous path.
Every model works in the clip's motion subspace (`LowRankBasis`: mean + top principal directions), in time
units of the mean keyframe spacing. Subclasses (ode.py, cde.py, sde.py) provide `_build`, `_fit`,
`_keyframe_path` and `_initial_path`; this module holds the clip's geometry (computed once per model), the
two sampling modes and the fit's shared preparation.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ._basis import LowRankBasis, principal_components
from ._inputs import check_query, check_seed
from ._extrap import choose_continuation, continuation
from ._interp import choose_tension, keyframe_distances, keyframe_weights, pace_embedding
from ._optim import optimise

__all__ = ["Dynamics"]


class Dynamics(nn.Module):
    """A fitted continuous-time model of one clip's codes. Build with `fit_dynamics`, restore with `load_dynamics`.

    `sample(times)` reads the path at any times [N] -> codes [N, L, D]. Two modes:
      - keyframe mode (fitted with keyframes=True, the default): the path passes through every observed code
        (moved by z0's offset when a z0 is given), a cross-validated spline under tension between them, paced
        by the neighbouring gaps' speeds (option pace), or the learned dynamics bridged through them where
        they win cross-validation (option between), and a continuation beyond them;
      - initial-value mode (keyframes=False): the learned dynamics alone run from one start code, the
        paper's recipe.
    Attributes: `kind`, `config` (every option as resolved by the fit), `times` [T], `codes` [T, L, D],
    `basis` (the clip's motion subspace), `metadata` (strings about the codes' origin, e.g. the generator's
    identity; kept by `save` / `load_dynamics`).
    """

    kind: str = ""
    OPTIONS: dict[str, Any] = {}   # the kind's own options with their defaults (options.COMMON_OPTIONS: all kinds)

    def __init__(self, times: torch.Tensor, codes: torch.Tensor, config: dict):
        super().__init__()
        self.config = dict(config)
        self.metadata: dict[str, str] = {}
        self.key_times = times.detach().to("cpu", torch.float64)      # [T], sorted
        self.register_buffer("key_codes", codes.detach().float())     # [T, L, D]
        components = principal_components(self.key_codes.flatten(1))  # the clip's geometry, once
        self.basis = LowRankBasis(self.key_codes.flatten(1), int(config["rank"]), components)
        self._pace_space = pace_embedding(self.key_codes, components)  # [T, r]: distances there pace gaps
        self._spline_cache = None
        self.t0 = float(self.key_times[0])
        self.unit = float(self.key_times[-1] - self.key_times[0]) / (len(self.key_times) - 1)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(config["seed"]))
            self._build()
        self.to(codes.device)

    # ------------------------------------------------------------------------------------ to be provided
    @classmethod
    def _check_kind_options(cls, config: dict) -> None:
        """Validate kind-specific option values (types of plain numbers are checked already)."""

    def _build(self) -> None:
        """Create the trainable modules (called under a fixed seed)."""

    def _fit(self, progress, cancel) -> None:
        raise NotImplementedError

    def _keyframe_path(self, q: torch.Tensor, y_spline: torch.Tensor, weights: torch.Tensor,
                       y_key: torch.Tensor, seed: int | None) -> torch.Tensor:
        """Coordinates [N, k] at model times q [N] through the keyframe coordinates y_key [T, k].

        y_spline [N, k] = weights.apply(y_key) is the tension spline through the keyframes (held at the end
        keyframes outside the observed range); weights: the `KeyframeWeights` at q."""
        raise NotImplementedError

    def _initial_path(self, q: torch.Tensor, y0: torch.Tensor, seed: int | None) -> torch.Tensor:
        """Coordinates [N, k] at normalised times q [N] of the path that starts at y0 [k] at the first time."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------------ public
    @property
    def times(self) -> torch.Tensor:
        """The fitted clip's (sorted) times [T], float32 on the CPU."""
        return self.key_times.float()

    @property
    def codes(self) -> torch.Tensor:
        """The fitted clip's codes [T, L, D], in the order of `times`."""
        return self.key_codes

    @property
    def device(self) -> torch.device:
        return self.key_codes.device

    def extra_repr(self) -> str:
        T, L, D = self.key_codes.shape
        return f"kind={self.kind!r}, frames={T}, codes=[{L}, {D}], rank={self.basis.rank}"

    def sample(self, times, z0=None, seed: int | None = None, keyframes: bool | None = None) -> torch.Tensor:
        """The path at `times` [N] (any order; seconds or whatever unit the clip was fitted in) -> [N, L, D].

        z0: None starts from the fitted clip's first code; a code [L, D] or [1, L, D] (e.g. an edited first
        frame, or another person's code), or a Clip (its first code), runs the same motion from there. Whatever z0 has outside the clip's
        motion subspace (an edit, an identity) is carried unchanged along the path.
        seed: noise seed of an SDE (ignored by ODE and CDE); None draws fresh noise.
        keyframes: None = the model's `keyframes` option (default True). True: the path passes through the
        observed codes (each moved by z0's offset from the first code when z0 is given) and the learned
        dynamics continue it outside the observed range. False: the pure initial-value model, z(t) from z0
        at the first observed time by the learned dynamics alone (the paper's recipe).
        """
        use_keys = self._use_keyframes(keyframes)
        return self._read(times, z0, seed, lambda q, start: self._sample(q, start, use_keys, seed))

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model to a `.safetensors` file (tensors + JSON config and `metadata`), atomically."""
        from .files import save_dynamics

        return save_dynamics(self, path)

    # ------------------------------------------------------------------------------------ fitting
    def fit(self, progress: Callable[[int, int], object] | None = None,
            cancel: Callable[[], bool] | None = None) -> "Dynamics":
        """Fit the model to its clip (called by `fit_dynamics`): choose what is "auto", then train."""
        y = self.basis.encode(self.key_codes.flatten(1))
        if self.config["tension"] == "auto":
            self.config["tension"] = choose_tension(self._knots(), y, paced=self._paced())
            self._spline_cache = None
        if self.config["extrapolation"] == "auto":
            self.config["continuation"] = choose_continuation(y, self._knots())
        self._fit(progress, cancel)  # may set config["continuation"] = None: the learned flow extrapolates
        self.config = dict(self.config)
        return self.eval()

    def _optimise(self, loss_fn: Callable[[], torch.Tensor], params, iterations: int, progress, cancel,
                  done: int = 0, total: int | None = None, what: str = "fit") -> float:
        return optimise(loss_fn, params, iterations, float(self.config["lr"]), progress, cancel, done=done,
                        total=total, what=f"{self.kind} {what}")

    # ------------------------------------------------------------------------------------ internals
    def _tau(self, t: torch.Tensor) -> torch.Tensor:
        """Times (float64) -> model time (float32 on the model's device): 0 at the first keyframe, 1 per mean gap."""
        return ((t - self.t0) / self.unit).float().to(self.device)

    def _knots(self) -> torch.Tensor:
        """Keyframe times in model time, float64 on the CPU."""
        return (self.key_times - self.t0) / self.unit

    def _read(self, times, z0, seed, path: Callable) -> torch.Tensor:
        """The checks every sample call shares, then path(q [N] float64, start [F] or None) under the model's
        thread / dtype settings."""
        q = check_query(times)
        start = self._start(z0)
        check_seed(seed)
        with torch.no_grad(), _model_context(self.device):
            return path(q, start)

    def _start(self, z0) -> torch.Tensor | None:
        if z0 is None:
            return None
        if not isinstance(z0, torch.Tensor) and isinstance(getattr(z0, "codes", None), torch.Tensor):
            z0 = z0.codes[:1]  # a dynode_core.Clip (e.g. from edit_initial(clip, ...)): its first code
        z = torch.as_tensor(z0.detach() if isinstance(z0, torch.Tensor) else z0, dtype=torch.float32)
        L, D = self.key_codes.shape[1:]
        if z.ndim == 3 and z.shape[0] == 1:
            z = z[0]
        if z.ndim == 1 and L == 1:
            z = z[None]
        if tuple(z.shape) != (L, D):
            raise ValueError(f"z0 must be one code [{L}, {D}] or [1, {L}, {D}] like the fitted clip's, "
                             f"got {list(z.shape)}")
        if not torch.isfinite(z).all():
            raise ValueError("z0 contains NaN or infinite values")
        return z.reshape(-1).to(self.device)

    def _use_keyframes(self, keyframes) -> bool:
        if keyframes is None:
            return bool(self.config["keyframes"])
        if not isinstance(keyframes, bool):
            raise TypeError(f"keyframes must be True, False or None, got {keyframes!r}")
        return keyframes

    def _keys(self, start: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Keyframe coordinates [T, k] and out-of-basis parts [T, F], shifted by start's offset if given."""
        flat = self.key_codes.flatten(1)
        if start is not None:
            flat = flat + (start - flat[0])
        return self.basis.encode(flat), self.basis.outside(flat)

    def _paced(self) -> torch.Tensor | None:
        """The keyframes' pacing coordinates [T, r], or None when the model does not pace."""
        return self._pace_space if self.config["pace"] else None

    def _tensions(self) -> list[float]:
        """The spline tension of every basis direction (one number for all in files written before)."""
        t = self.config["tension"]
        if isinstance(t, (list, tuple)):
            if len(t) != self.basis.rank:
                raise ValueError(f"{len(t)} tensions for a basis of {self.basis.rank} directions")
            return [float(p) for p in t]
        return [float(t)] * self.basis.rank

    def _keyframe_weights(self, q: torch.Tensor):
        """`KeyframeWeights` of the keyframes in the keyframe path at times q [N] (float64, CPU)."""
        if self._spline_cache is None:
            paced = self._paced()
            self._spline_cache = (keyframe_distances(paced) if paced is not None else None, {})
        distances, splines = self._spline_cache
        return keyframe_weights(self._knots(), self._tensions(), (q - self.t0) / self.unit, distances, splines)

    def _spline_from(self, y: torch.Tensor, keep: list[int], out: list[int]) -> torch.Tensor:
        """The keyframe path (tensions, pacing) through only the keyframes `keep` of y [T, k], read at the
        keyframes `out` [M]: what the spline predicts for held-out keyframes. -> [M, k]"""
        knots, paced = self._knots(), self._paced()
        pace = None if paced is None else keyframe_distances(paced[keep])
        return keyframe_weights(knots[keep], self._tensions(), knots[out], pace).to(y).apply(y[keep])

    def _continues(self) -> bool:
        return self.config.get("extrapolation") == "auto" and self.config.get("continuation") is not None

    def _continuation(self, q: torch.Tensor, y_key: torch.Tensor, seed) -> torch.Tensor:
        """Coordinates [M, k] at model times q [M] outside the keyframes: the damped continuation."""
        return continuation(y_key, self._tau(self.key_times), q, self.config["continuation"])

    def _sample(self, q: torch.Tensor, start, use_keys: bool, seed) -> torch.Tensor:
        y_key, r_key = self._keys(start)
        tq = self._tau(q)
        if use_keys:
            weights = self._keyframe_weights(q).to(torch.float32).to(self.device)
            inside = (q >= self.key_times[0]) & (q <= self.key_times[-1])
            if self._continues() and not inside.all():
                y = y_key.new_empty(len(q), y_key.shape[1])
                inside = inside.to(self.device)
                y[~inside] = self._continuation(tq[~inside], y_key, seed)
                if inside.any():
                    w = weights.rows(inside)
                    y[inside] = self._keyframe_path(tq[inside], w.apply(y_key), w, y_key, seed)
            else:
                y = self._keyframe_path(tq, weights.apply(y_key), weights, y_key, seed)
            out = self.basis.decode(y).add_(r_key[0])  # rows of weights sum to 1
            if self.basis.rank < len(r_key) - 1:  # else every keyframe's out-of-basis part is r_key[0]
                out = out + weights.first @ (r_key - r_key[0])
        else:
            y = self._initial_path(tq, y_key[0], seed)
            out = self.basis.decode(y) + r_key[0]
        return out.reshape(len(q), *self.key_codes.shape[1:])


@contextmanager
def _model_context(device: torch.device):
    """Build and run models in float32 whatever torch's default dtype is, and on one CPU thread: the models'
    tensors are tiny (a few basis coordinates), so the thread pool's synchronisation costs more than the
    maths, far more on a busy machine. Both settings are restored after."""
    dtype, threads = torch.get_default_dtype(), torch.get_num_threads()
    torch.set_default_dtype(torch.float32)
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_default_dtype(dtype)
        if device.type == "cpu":
            torch.set_num_threads(threads)
