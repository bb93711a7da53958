"""One contract for every latent dynamics model: fit on a clip, sample at any time, save, load.

A clip's codes z_0..z_{T-1} [T, L, D] at times t_0..t_{T-1} are read as observations of one continuous path.
Every model works in the clip's motion subspace (`LowRankBasis`: mean + top principal directions), in time
units of the mean keyframe spacing, and is fitted in seconds. Subclasses (ode.py, cde.py, sde.py) provide
`_build`, `_fit`, `_keyframe_path` and `_initial_path`; this module holds input checks, options, the two
sampling modes, and the file format.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from .._files import atomic_write as _atomic_write
from ..decoding import Cancelled
from ..times import _as_times
from ._basis import LowRankBasis
from ._interp import TensionSpline, choose_tension, keyframe_distances, pace_embedding, pace_weights

__all__ = ["Dynamics", "dynamics_options", "fit_dynamics", "load_dynamics"]

FORMAT = "dynode-dynamics/1"

# Options every kind accepts, with their defaults. Kind-specific ones live in the subclass's OPTIONS.
COMMON_OPTIONS: dict[str, Any] = {
    "iterations": 300,   # optimiser steps of the final fit
    "lr": 1e-2,          # Adam learning rate
    "rank": 16,          # largest number of basis directions (at most T - 1 are used)
    "keyframes": True,   # sample() passes through the observed codes (False: pure initial-value model)
    "tension": "auto",   # spline tension between keyframes (0 = natural cubic, large = near linear)
    "pace": True,        # keyframe mode: cross each gap at a speed eased from the neighbouring gaps'
    "seed": 0,           # initialisation seed: the same seed gives the same model
}
HOOKS = ("progress", "cancel", "device")
ALIASES = {"iters": "iterations"}

_KINDS: dict[str, type["Dynamics"]] = {}


def _register(cls):
    _KINDS[cls.kind] = cls
    return cls


class Dynamics(nn.Module):
    """A fitted continuous-time model of one clip's codes. Build with `fit_dynamics`, restore with `load_dynamics`.

    `sample(times)` reads the path at any times [N] -> codes [N, L, D]. Two modes:
      - keyframe mode (fitted with keyframes=True, the default): the path passes through every observed code
        (moved by z0's offset when a z0 is given), a cross-validated spline under tension between them, paced
        by the neighbouring gaps' speeds (option pace), and the learned dynamics beyond them;
      - initial-value mode (keyframes=False): the learned dynamics alone run from one start code, the
        paper's recipe.
    Attributes: `kind`, `config` (every option as resolved by the fit), `times` [T], `codes` [T, L, D],
    `basis` (the clip's motion subspace), `metadata` (strings about the codes' origin, e.g. the generator's
    identity; kept by `save` / `load_dynamics`).
    """

    kind: str = ""
    OPTIONS: dict[str, Any] = {}

    def __init__(self, times: torch.Tensor, codes: torch.Tensor, config: dict):
        super().__init__()
        self.config = dict(config)
        self.metadata: dict[str, str] = {}
        self.key_times = times.detach().to("cpu", torch.float64)      # [T], sorted
        self.register_buffer("key_codes", codes.detach().float())     # [T, L, D]
        self.basis = LowRankBasis(self.key_codes.flatten(1), int(config["rank"]))
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

        y_spline [N, k] = weights [N, T] @ y_key is the tension spline through the keyframes (held at the
        end keyframes outside the observed range)."""
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
        frame, or another person's code) runs the same motion from there. Whatever z0 has outside the clip's
        motion subspace (an edit, an identity) is carried unchanged along the path.
        seed: noise seed of an SDE (ignored by ODE and CDE); None draws fresh noise.
        keyframes: None = the model's `keyframes` option (default True). True: the path passes through the
        observed codes (each moved by z0's offset from the first code when z0 is given) and the learned
        dynamics continue it outside the observed range. False: the pure initial-value model, z(t) from z0
        at the first observed time by the learned dynamics alone (the paper's recipe).
        """
        q = self._query(times)
        start = self._start(z0)
        use_keys = self._use_keyframes(keyframes, z0)
        _check_seed(seed)
        with torch.no_grad(), _model_context(self.device):
            return self._sample(q, start, use_keys, seed)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model to a `.safetensors` file (tensors + JSON config and `metadata`), atomically."""
        path = Path(path)
        tensors = {"key_times": self.key_times, "key_codes": self.key_codes}
        tensors.update({f"state.{k}": v for k, v in self.state_dict().items() if k != "key_codes"})
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
        meta = {"format": FORMAT, "kind": self.kind, "config": json.dumps(self.config),
                "metadata": json.dumps({str(k): str(v) for k, v in self.metadata.items()})}
        _atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))
        return path

    # ------------------------------------------------------------------------------------ internals
    def _tau(self, t: torch.Tensor) -> torch.Tensor:
        """Times (float64) -> model time (float32 on the model's device): 0 at the first keyframe, 1 per mean gap."""
        return ((t - self.t0) / self.unit).float().to(self.device)

    def _query(self, times) -> torch.Tensor:
        t = torch.as_tensor(times.detach().cpu() if isinstance(times, torch.Tensor) else times, dtype=torch.float64)
        if t.ndim != 1:
            raise ValueError(f"times must be a 1-D sequence [N], got shape {list(t.shape)}")
        return _as_times(t, "times")

    def _start(self, z0) -> torch.Tensor | None:
        if z0 is None:
            return None
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

    def _use_keyframes(self, keyframes, z0) -> bool:
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

    def _keyframe_weights(self, q: torch.Tensor) -> torch.Tensor:
        """Weights [N, T] of the keyframes in the keyframe path at times q [N] (float64, CPU)."""
        if getattr(self, "_spline_cache", None) is None:
            knots = (self.key_times - self.t0) / self.unit
            distances = keyframe_distances(pace_embedding(self.key_codes)) if self.config["pace"] else None
            self._spline_cache = (TensionSpline(knots, float(self.config["tension"])), knots, distances)
        spline, knots, distances = self._spline_cache
        tq = (q - self.t0) / self.unit
        weights = spline.weights(tq)
        return weights if distances is None else weights + pace_weights(knots, distances, tq)

    def _sample(self, q: torch.Tensor, start, use_keys: bool, seed) -> torch.Tensor:
        y_key, r_key = self._keys(start)
        tq = self._tau(q)
        if use_keys:
            weights = self._keyframe_weights(q).float().to(self.device)
            y = self._keyframe_path(tq, weights @ y_key, weights, y_key, seed)
            out = self.basis.decode(y) + weights @ r_key
        else:
            y = self._initial_path(tq, y_key[0], seed)
            out = self.basis.decode(y) + r_key[0]
        return out.reshape(len(q), *self.key_codes.shape[1:])

    def _optimise(self, loss_fn: Callable[[], torch.Tensor], params, iterations: int, progress, cancel,
                  done: int = 0, total: int | None = None, what: str = "fit") -> float:
        """Full-batch Adam with a cosine learning-rate decay; returns the last loss."""
        total = total or iterations
        opt = torch.optim.Adam(params, lr=float(self.config["lr"]))
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(iterations, 1), eta_min=float(self.config["lr"]) / 20)
        loss = torch.tensor(float("nan"))
        for it in range(iterations):
            if cancel is not None and cancel():
                raise Cancelled(f"{self.kind} {what} cancelled after {done + it} of {total} steps")
            opt.zero_grad(set_to_none=True)
            loss = loss_fn()
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{self.kind} {what} diverged (loss {float(loss)}) at step {it}; "
                                         f"try a smaller lr (now {self.config['lr']})")
            loss.backward()
            opt.step()
            sched.step()
            if progress is not None:
                progress(done + it + 1, total)
        return float(loss.detach())


def _check_seed(seed) -> None:
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0):
        raise ValueError(f"seed must be None or an integer >= 0, got {seed!r}")


@contextmanager
def _model_context(device: torch.device):
    """Build and run models in float32 whatever torch's default dtype is, and on one CPU thread: the models'
    tensors are tiny (a few basis coordinates), so the thread pool's synchronisation costs more than the
    maths, and far more on a busy machine (measured on 2 busy cores: an 11-frame ODE fit took 130 s with
    torch's default 2 threads, 9 s with 1). Both settings are restored after."""
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


# ---------------------------------------------------------------------------------------------- inputs


def _check_clip(times, codes) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate and sort a clip: times [T] (float64, CPU), codes [T, L, D] (float32, codes' device)."""
    t = torch.as_tensor(times.detach().cpu() if isinstance(times, torch.Tensor) else times, dtype=torch.float64)
    z = codes.detach() if isinstance(codes, torch.Tensor) else torch.as_tensor(codes)
    if t.ndim != 1:
        raise ValueError(f"times must be a 1-D sequence [T], got shape {list(t.shape)}")
    if z.ndim == 2:
        z = z[:, None]  # W codes [T, D]
    if z.ndim != 3:
        raise ValueError(f"codes must have shape [T, L, D] (or [T, D] for W), got {list(z.shape)}")
    if not (z.is_floating_point() or z.dtype in (torch.int32, torch.int64)):
        raise TypeError(f"codes must be real numbers, got dtype {z.dtype}")
    if t.shape[0] != z.shape[0]:
        raise ValueError(f"times has {t.shape[0]} entries but codes has {z.shape[0]} frames; one time per code")
    if t.shape[0] < 2:
        raise ValueError(f"dynamics need at least 2 frames, got {t.shape[0]}")
    t = _as_times(t, "times")
    z = z.float()
    if not torch.isfinite(z).all():
        bad = (~torch.isfinite(z)).flatten(1).any(1).nonzero().flatten().tolist()
        raise ValueError(f"codes contain NaN or infinite values (frames {bad})")
    order = torch.argsort(t)
    t = t[order]
    dup = (t[1:] == t[:-1]).nonzero().flatten()
    if len(dup):
        raise ValueError(f"times must be distinct, but {float(t[dup[0]])} appears more than once")
    return t, z[order.to(z.device)]


def _check_options(cls: type[Dynamics], options: dict) -> tuple[dict, dict]:
    """-> (config with every option filled in, hooks {progress, cancel, device})."""
    defaults = {**COMMON_OPTIONS, **cls.OPTIONS}
    given = {}
    for k, v in options.items():
        k = ALIASES.get(k, k)
        if k in given:
            raise TypeError(f"option {k!r} given twice (also via its alias)")
        given[k] = v
    unknown = sorted(set(given) - set(defaults) - set(HOOKS))
    if unknown:
        raise TypeError(f"unknown option(s) {unknown} for kind={cls.kind!r}; valid options: "
                        f"{sorted(set(defaults) | set(HOOKS))}")
    hooks = {k: given.pop(k, None) for k in HOOKS}
    for name in ("progress", "cancel"):
        if hooks[name] is not None and not callable(hooks[name]):
            raise TypeError(f"{name} must be callable, got {type(hooks[name]).__name__}")
    config = {**defaults, **given}
    for k, v in config.items():
        default = defaults[k]
        if isinstance(default, str):
            continue  # "auto"-able or named choices: checked below / by the kind
        if isinstance(default, bool):
            if not isinstance(v, bool):
                raise TypeError(f"option {k} must be True or False, got {v!r}")
        elif isinstance(default, int):
            low = 0 if k == "seed" else 1
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < low:
                raise ValueError(f"option {k} must be an integer >= {low}, got {v!r}")
            config[k] = int(v)
        elif isinstance(default, float):
            positive = k in ("lr", "step")
            if (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0
                    or (positive and v == 0)):
                raise ValueError(f"option {k} must be a {'positive' if positive else 'non-negative'} number, "
                                 f"got {v!r}")
            config[k] = float(v)
    t = config["tension"]
    if t != "auto" and (isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t < 0):
        raise ValueError(f"option tension must be 'auto' or a number >= 0, got {t!r}")
    cls._check_kind_options(config)
    return config, hooks


def _kind(kind: str) -> type[Dynamics]:
    if kind not in _KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {sorted(_KINDS)}")
    return _KINDS[kind]


def dynamics_options(kind: str = "ode") -> dict[str, Any]:
    """Every option `fit_dynamics(..., kind=kind)` accepts, with its default ("auto" = chosen per clip)."""
    return {**COMMON_OPTIONS, **_kind(kind).OPTIONS}


def fit_dynamics(times, codes, kind: str = "ode", **options) -> Dynamics:
    """Fit a continuous-time model to one clip. times [T] (any order, distinct), codes [T, L, D] -> `Dynamics`.

    kind: "ode" (neural ODE, torchdiffeq), "cde" (neural controlled DE driven by the whole clip) or "sde"
    (neural SDE, torchsde). Options common to all kinds: iterations, lr, rank, keyframes, seed, plus
    `device` (default: the device of `codes`), `progress(step, total)` and `cancel() -> bool` (True stops the
    fit with `dynode_core.Cancelled`). See docs/dynamics.md for each kind's own options.
    Times are sorted together with the codes; duplicate times, NaN/inf, fewer than 2 frames or mismatched
    lengths raise ValueError. numpy arrays and lists are accepted.
    """
    cls = _kind(kind)
    config, hooks = _check_options(cls, options)
    t, z = _check_clip(times, codes)
    device = torch.device(hooks["device"]) if hooks["device"] is not None else z.device
    with torch.inference_mode(False), torch.enable_grad(), _model_context(device):
        model = cls(t, z.to(device).clone(), config)
        if model.config["tension"] == "auto":
            y = model.basis.encode(model.key_codes.flatten(1))
            paced = pace_embedding(model.key_codes) if model.config["pace"] else None
            model.config["tension"] = choose_tension((t - model.t0) / model.unit, y, paced=paced)
        model._fit(hooks["progress"], hooks["cancel"])
    model.config = dict(model.config)
    return model.eval()


def load_dynamics(path: str | os.PathLike, device: str | torch.device | None = None) -> Dynamics:
    """Read a model written by `Dynamics.save` (onto `device`, default the CPU)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no dynamics file at {str(path)!r}")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"cannot read {str(path)!r} as a .safetensors dynamics file: {e}") from None
    if meta.get("format") != FORMAT:
        raise ValueError(f"{str(path)!r} is not a DynODE dynamics file (format {meta.get('format')!r}, "
                         f"expected {FORMAT!r})")
    kind = meta.get("kind")
    if kind not in _KINDS:
        raise ValueError(f"{str(path)!r} holds dynamics of unknown kind {kind!r}")
    config = json.loads(meta["config"])
    config.setdefault("pace", False)  # written before pacing existed
    cls = _KINDS[kind]
    codes = tensors.pop("key_codes").to(device or "cpu")
    with _model_context(codes.device):
        model = cls(tensors.pop("key_times"), codes, config)
    state = {k[len("state."):]: v for k, v in tensors.items() if k.startswith("state.")}
    state["key_codes"] = codes
    model.load_state_dict(state, strict=True)
    model.metadata = json.loads(meta.get("metadata", "{}"))
    return model.eval()
