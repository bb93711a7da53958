"""How many frames fit in memory at once when inverting or tuning through a generator.

Backpropagating through a StyleGAN2 keeps every layer's activations: about 2.5 GiB per 1024-px frame, so a fixed
batch of 16 would need ~40 GiB. `batch_size_for` sizes batches from a budget instead: the bytes autograd saves
per frame are counted by running the generator once on the `meta` device (no memory, no arithmetic, any size),
and the budget defaults to a share of what is free now (MemAvailable of /proc/meminfo for the CPU,
`torch.cuda.mem_get_info` for CUDA). An explicit budget (`memory=` / `--memory`, bytes or "8GB") wins.
"""

from __future__ import annotations

import os
import re
import warnings
from contextlib import contextmanager
from functools import lru_cache
from typing import Iterator

import torch
from torch import nn

__all__ = ["batch_size_for", "available_memory", "parse_memory", "frame_bytes", "reuse_freed_memory"]

KINDS = ("invert", "tune")
FREE_SHARE = 0.7  # of the memory free now, leaving room for the rest of the process and other programs
PEAK_FACTOR = 1.5  # peak / saved tensors: gradients in flight and forward temporaries (measured 1.2-1.4)
_UNITS = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def parse_memory(value) -> int | None:
    """None, a byte count, or a string like "8GB", "512 MiB", "1.5g" -> bytes (ValueError otherwise)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"memory must be a byte count or a size like '8GB', got {value!r}")
    if isinstance(value, (int, float)):
        n = value
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)(?:i?b)?\s*", str(value).lower())
        if not m:
            raise ValueError(f"memory must be a byte count or a size like '8GB' or '512MiB', got {value!r}")
        n = float(m.group(1)) * _UNITS[m.group(2)]
    if not n == n or n < 2**10 or n > 2**50:
        raise ValueError(f"memory must be between 1 KiB and 1 PiB, got {value!r}")
    return int(n)


def available_memory(device: torch.device | str = "cpu") -> int:
    """Bytes free for new tensors on `device` now (CUDA: free + cached by torch; CPU: MemAvailable)."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    if device.type == "mps" and hasattr(torch, "mps"):
        try:
            return int(torch.mps.recommended_max_memory() - torch.mps.current_allocated_memory())
        except (AttributeError, RuntimeError):
            pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 4 * 2**30  # unknown platform: assume a small machine


@lru_cache(maxsize=32)
def _saved_bytes(config_items: tuple, batch: int, dtype: torch.dtype, params_grad: bool) -> int:
    from .stylegan2 import Generator

    config = dict(config_items)
    config["channels"] = dict(config["channels"])
    with torch.device("meta"):
        G = Generator(**config).to(dtype)
    G.requires_grad_(params_grad)
    kept: dict[int, torch.Tensor] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if not isinstance(t, nn.Parameter):  # the weights are there anyway
            kept[id(t)] = t
        return t

    ws = torch.zeros(batch, G.num_ws, G.w_dim, device="meta", dtype=dtype, requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        img = G.synthesis(ws)
        kept[-1] = img  # the loss keeps the image and its downsampled copies (about 4/3 of it)
    return sum(t.numel() * t.element_size() for t in kept.values()) + img.numel() * img.element_size() // 3


def frame_bytes(G: nn.Module, kind: str = "invert") -> tuple[int, int]:
    """(bytes per frame, fixed bytes) of one optimisation step through G: the activations autograd keeps for
    each frame times PEAK_FACTOR, and what does not grow with the batch (for "tune": weights, their gradients
    and Adam's two moments, and a frozen copy)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    cfg = dict(G.config)
    cfg["channels"] = tuple(sorted((int(k), v) for k, v in cfg["channels"].items()))
    cfg["blur_kernel"] = tuple(cfg["blur_kernel"])
    key = tuple(sorted(cfg.items()))
    dtype = next(G.parameters()).dtype
    tune = kind == "tune"
    one, two = _saved_bytes(key, 1, dtype, tune), _saved_bytes(key, 2, dtype, tune)
    per_frame = int((two - one) * PEAK_FACTOR)
    params = sum(p.numel() * p.element_size() for p in G.parameters())
    fixed = max(0, 2 * one - two) + (4 * params if tune else 0)
    return per_frame, fixed


def batch_size_for(G: nn.Module, kind: str = "invert", memory=None, limit: int | None = None) -> int:
    """Most frames to optimise at once through G within `memory` bytes (default: FREE_SHARE of what is free on
    G's device), at most `limit`. At least 1 (with a warning when even one frame is over the budget)."""
    budget = parse_memory(memory)
    device = next(G.parameters()).device
    if budget is None:
        budget = int(available_memory(device) * FREE_SHARE)
    per_frame, fixed = frame_bytes(G, kind)
    n = (budget - fixed) // max(per_frame, 1)
    if n < 1:
        warnings.warn(f"one {G.resolution}-px frame needs about {(per_frame + fixed) / 2**30:.1f} GiB to {kind}, "
                      f"more than the memory budget of {budget / 2**30:.1f} GiB; going on with one frame at a time "
                      f"(pass memory= / --memory to set the budget)", stacklevel=3)
        n = 1
    return int(min(n, limit)) if limit is not None else int(n)


_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc mallopt parameters (malloc.h)


def _glibc():
    import ctypes
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(None)
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


@contextmanager
def reuse_freed_memory() -> Iterator[None]:
    """Keep freed CPU memory in the process for the block, instead of unmapping every large tensor when it is
    freed and faulting fresh zeroed pages in for the next one (glibc's default for blocks over 32 MiB, which
    made 30-40 % of an inversion's CPU time kernel time). Freed memory goes back to the system after the block.
    A no-op outside Linux/glibc."""
    libc = _glibc()
    if libc is None:
        yield
        return
    libc.mallopt(_M_MMAP_MAX, 0)
    libc.mallopt(_M_TRIM_THRESHOLD, 2**30)
    try:
        yield
    finally:
        libc.mallopt(_M_MMAP_MAX, 65536)
        libc.mallopt(_M_TRIM_THRESHOLD, 128 * 1024)
        libc.malloc_trim(0)
