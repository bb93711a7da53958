"""The optimiser loop every kind's fit uses: full-batch Adam with a cosine learning-rate decay."""

from __future__ import annotations

from typing import Callable

import torch

from ..decoding import Cancelled


def optimise(loss_fn: Callable[[], torch.Tensor], params, iterations: int, lr: float, progress, cancel,
             done: int = 0, total: int | None = None, what: str = "fit") -> float:
    """Minimise loss_fn() over params for `iterations` steps; returns the last loss.

    progress(done + step, total) after every step; cancel() returning True raises `Cancelled`.
    """
    total = total or iterations
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(iterations, 1), eta_min=lr / 20)
    loss = torch.tensor(float("nan"))
    for it in range(iterations):
        if cancel is not None and cancel():
            raise Cancelled(f"{what} cancelled after {done + it} of {total} steps")
        opt.zero_grad(set_to_none=True)
        loss = loss_fn()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{what} diverged (loss {float(loss)}) at step {it}; try a smaller lr "
                                     f"(now {lr})")
        loss.backward()
        opt.step()
        sched.step()
        if progress is not None:
            progress(done + it + 1, total)
    return float(loss.detach())
