"""Codes to frames, in chunks so that long clips never hold more than one batch of activations."""

from __future__ import annotations

from typing import Callable

import torch

from ._limits import check
from ._memory import reuse_freed_memory
from ._threads import thread_scope
from .clip import Clip
from .codes import check_codes, generator_fingerprint
from .errors import Cancelled, GeneratorMismatch  # Cancelled: also imported from here by older code

__all__ = ["decode"]


def decode(G: torch.nn.Module, codes: torch.Tensor | Clip, batch_size: int = 8, noise_mode: str = "const",
           progress: Callable[[int, int], None] | None = None, cancel: Callable[[], bool] | None = None,
           threads: int | None = None) -> torch.Tensor:
    """Render codes [N, L, D] (L = 1 for W or G.num_ws for W+; [N, D] is read as W), or a Clip's codes,
    -> frames [N, 3, H, W].

    Frames are float32 in about [-1, 1], on the generator's device (the device rule: codes are moved to G's
    device, results stay there). A Clip stamped with another generator's fingerprint is refused
    (`GeneratorMismatch`; re-stamp it with `clip.stamped(G)` if it really belongs to G). `batch_size` codes
    are rendered at a time (the result does not depend on it). `noise_mode="const"` uses the generator's fixed noise maps so a clip does not
    flicker; "random" draws new noise per frame, "none" drops it. `progress(done, total)` is called after
    each chunk; `cancel()` returning True stops with `Cancelled`. `threads` CPU threads are used (default:
    one for small images, else torch's setting; see `dynode_core._threads`).
    """
    if isinstance(codes, Clip):
        _check_identity(codes, G)
    codes = check_codes(codes, G)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    n = codes.shape[0]
    check("CLIP_ELEMENTS", n * 3 * G.resolution ** 2, f"the values of {n} decoded {G.resolution}-px frames")
    out = None  # filled in place: a clip is held once, not twice as with torch.cat
    with torch.inference_mode(), thread_scope(threads, G.resolution, min(batch_size, n)), reuse_freed_memory():
        for start in range(0, n, batch_size):
            if cancel is not None and cancel():
                raise Cancelled(f"decoding cancelled after {start} of {n} frames")
            chunk = codes[start:start + batch_size].to(G.device)
            img = G.synthesis(chunk, noise_mode=noise_mode).float()
            if out is None:
                with torch.inference_mode(False):
                    out = torch.empty((n, *img.shape[1:]), dtype=img.dtype, device=img.device)
            out[start:start + len(img)] = img
            if progress is not None:
                progress(min(start + batch_size, n), n)
    # Leave inference mode: the frames may feed into autograd later (e.g. as inversion targets).
    return out


def _check_identity(clip: Clip, G: torch.nn.Module) -> None:
    if clip.generator is not None and clip.generator != generator_fingerprint(G):
        raise GeneratorMismatch(f"these codes were made with another generator (fingerprint {clip.generator}, "
                                f"this one is {generator_fingerprint(G)}); they would decode to different images. "
                                f"Decode them with their own generator, or re-stamp with clip.stamped(G)")
