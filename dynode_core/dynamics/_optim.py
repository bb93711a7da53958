"""The optimiser loop every kind's fit uses: full-batch Adam with a cosine learning-rate decay.

Adam is written out here (the update of torch.optim.Adam, default betas and eps): constructing a
torch.optim optimiser imports torch._dynamo on first use, ~1.5 s, more than a whole fit of an 11-frame
clip, and the dynamics' parameters are a few small tensors.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from ..errors import Cancelled

BETAS, EPS = (0.9, 0.999), 1e-8


def cosine_lr(lr: float, step: int, iterations: int) -> float:
    """Learning rate at `step` of `iterations`: lr decayed along half a cosine to lr / 20."""
    low = lr / 20
    return low + (lr - low) * (1 + math.cos(math.pi * step / max(iterations, 1))) / 2


def optimise(loss_fn: Callable[[], torch.Tensor], params, iterations: int, lr: float, progress, cancel,
             done: int = 0, total: int | None = None, what: str = "fit") -> float:
    """Minimise loss_fn() over params for `iterations` steps; returns the last loss.

    progress(done + step, total) after every step; cancel() returning True raises `Cancelled`.
    """
    total = total or iterations
    params = [p for p in params if p.requires_grad]
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    (b1, b2), loss = BETAS, torch.tensor(float("nan"))
    for it in range(iterations):
        if cancel is not None and cancel():
            raise Cancelled(f"{what} cancelled after {done + it} of {total} steps")
        for p in params:
            p.grad = None
        loss = loss_fn()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{what} diverged (loss {float(loss)}) at step {it}; try a smaller lr "
                                     f"(now {lr})")
        loss.backward()
        step_lr, n = cosine_lr(lr, it, iterations), it + 1
        with torch.no_grad():
            for p, m_p, v_p in zip(params, m, v):
                if p.grad is None:
                    continue
                m_p.lerp_(p.grad, 1 - b1)
                v_p.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                denom = (v_p.sqrt() / math.sqrt(1 - b2 ** n)).add_(EPS)
                p.addcdiv_(m_p, denom, value=-step_lr / (1 - b1 ** n))
        if progress is not None:
            progress(done + it + 1, total)
    return float(loss.detach())
