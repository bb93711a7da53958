"""How many CPU threads torch uses for one piece of work.

Small problems (images of at most 128 px in small batches) run on one thread: their tensors are so small that
the thread pool's synchronisation costs more than the maths, and far more when other jobs keep the cores busy.
Larger ones keep torch's setting (by default one thread per physical core, or OMP_NUM_THREADS when set), so the
policy only ever lowers the thread count. (Large problems are not capped at the cores other programs leave idle:
the scheduler shares the CPU per thread and long convolutions rarely wait at a barrier, so on a busy machine that
cap made a 256-px decode slower; see docs/performance.md.) An explicit count wins:
`threads=` of a library call, `--threads` of the CLI, or the environment variable DYNODE_THREADS; an explicit
scope also holds for every scope opened inside it.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator

import torch

__all__ = ["thread_scope", "policy_threads", "check_threads"]

MAX_THREADS = 1024
SMALL_RESOLUTION = 128
SMALL_PIXELS = 32 * 128 * 128  # batch · H · W up to which one thread is used

_explicit: ContextVar[int | None] = ContextVar("dynode_threads", default=None)


def check_threads(threads, name: str = "threads") -> int | None:
    """None, or a thread count 1..MAX_THREADS (else a ValueError naming the argument)."""
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= MAX_THREADS:
        raise ValueError(f"{name} must be None (automatic) or an integer from 1 to {MAX_THREADS}, got {threads!r}")
    return threads


def _env_threads() -> int | None:
    raw = os.environ.get("DYNODE_THREADS", "").strip()
    if not raw:
        return None
    try:
        return check_threads(int(raw), "DYNODE_THREADS")
    except ValueError:
        raise ValueError(f"DYNODE_THREADS must be an integer from 1 to {MAX_THREADS}, got {raw!r}") from None


def policy_threads(resolution: int | None, batch: int = 1) -> int:
    """Threads the policy picks for `batch` images of `resolution` px: 1 when small, else torch's setting."""
    if resolution is not None and resolution <= SMALL_RESOLUTION and batch * resolution**2 <= SMALL_PIXELS:
        return 1
    return torch.get_num_threads()


@contextmanager
def thread_scope(threads: int | None = None, resolution: int | None = None, batch: int = 1) -> Iterator[int]:
    """Run the block with `threads` CPU threads (explicit: nested scopes keep it), or when None with an outer
    explicit count, DYNODE_THREADS, or the policy's choice for `batch` images of `resolution` px. Yields the
    count in use; torch's previous setting is restored after."""
    threads = check_threads(threads)
    outer = _explicit.get()
    explicit = threads if threads is not None else (outer if outer is not None else _env_threads())
    n = explicit if explicit is not None else policy_threads(resolution, batch)
    before = torch.get_num_threads()
    token = _explicit.set(explicit)
    if n != before:
        torch.set_num_threads(n)
    try:
        yield n
    finally:
        _explicit.reset(token)
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
