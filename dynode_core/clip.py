"""`Clip`: a clip's latent codes at their times, with the metadata that travels with them.

One value for "codes at times" through the whole pipeline: `invert` makes one, `load_codes` reads one,
`save_codes`, `fit_dynamics`, `decode` and the editing functions take one (they also take plain tensors),
and the ComfyUI codes socket carries one, so the generator identity stamped on the codes is never lost.

Metadata keys DynODE itself writes (all optional; values are str, numbers or lists, JSON-serialisable):
  - generator identity: `w_dim`, `num_ws`, `resolution`, `generator` (a fingerprint of config and weights,
    see `codes.generator_fingerprint`), set by `Clip.stamped(G)` / `save_codes(..., G=G)`;
  - `fps`: the frame rate of the source video; `source`: its file name;
  - `alignment`: face-alignment transforms, when the frames were aligned;
  - anything else a caller adds (e.g. `psnr`, `edit`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterator

import torch

__all__ = ["Clip", "IDENTITY_KEYS", "as_codes"]

IDENTITY_KEYS = ("w_dim", "num_ws", "resolution", "generator")


@dataclass(frozen=True, eq=False)
class Clip:
    """Latent codes of a clip: `codes` [T, L, D] float32 (L = 1 for W, G.num_ws for W+), `times` [T] float32
    seconds (one per code, the order of the codes) and `metadata` (see the module docstring).

    `times` always lives on the CPU; `codes` on whatever device made them (the device rule: results come back
    on the device of the model that computed them). [T, D] codes are read as W ([T, 1, D]); times default to
    0, 1, 2, ... . A Clip is immutable: methods return new clips that share tensors where they can.

    For scripts written against the older `load_codes` result, a Clip unpacks as
    `codes, times, metadata = clip`.
    """

    codes: torch.Tensor
    times: torch.Tensor | None = None
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        codes = self.codes
        if not isinstance(codes, torch.Tensor):
            raise TypeError(f"Clip codes must be a torch.Tensor [T, L, D], got {type(codes).__name__}")
        if codes.ndim == 2:
            codes = codes[:, None]
        if codes.ndim != 3:
            raise ValueError(f"Clip codes must have shape [T, L, D], got {list(codes.shape)}")
        if codes.dtype != torch.float32:
            codes = codes.float()
        times = self.times
        if times is None:
            times = torch.arange(codes.shape[0], dtype=torch.float32)
        times = torch.as_tensor(times).detach().flatten().to("cpu", torch.float32)
        if times.numel() != codes.shape[0]:
            raise ValueError(f"Clip times must have one entry per code: got {times.numel()} times for "
                             f"{codes.shape[0]} codes")
        if not isinstance(self.metadata, dict):
            raise TypeError(f"Clip metadata must be a dict, got {type(self.metadata).__name__}")
        object.__setattr__(self, "codes", codes)
        object.__setattr__(self, "times", times)
        object.__setattr__(self, "metadata", dict(self.metadata))

    # --- shape ---------------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return self.codes.shape[0]

    def __iter__(self) -> Iterator[Any]:
        return iter((self.codes, self.times, self.metadata))

    def __repr__(self) -> str:
        gen = self.generator
        return (f"Clip(codes={list(self.codes.shape)} {self.space} on {self.device}, times "
                f"[{_fmt(self.times, 0)} .. {_fmt(self.times, -1)}]" + (f", generator={gen}" if gen else "") + ")")

    @property
    def space(self) -> str:
        """'w' (one code per frame, L = 1) or 'w+' (one code per generator layer)."""
        return "w" if self.codes.shape[1] == 1 else "w+"

    @property
    def device(self) -> torch.device:
        return self.codes.device

    # --- identity ------------------------------------------------------------------------------------------

    @property
    def generator(self) -> str | None:
        """The fingerprint of the generator these codes belong to, or None when unstamped."""
        return self.metadata.get("generator")

    @property
    def identity(self) -> dict:
        """The generator-identity entries of the metadata (what `stamped` sets and `save_codes` writes)."""
        return {k: self.metadata[k] for k in IDENTITY_KEYS if k in self.metadata}

    def stamped(self, G: torch.nn.Module) -> "Clip":
        """This clip with G's identity in its metadata (w_dim, num_ws, resolution, fingerprint)."""
        from .codes import generator_identity

        return self.replace(metadata={**self.metadata, **generator_identity(G)})

    # --- new clips -----------------------------------------------------------------------------------------

    def replace(self, **changes) -> "Clip":
        """A copy with some of codes / times / metadata replaced (metadata is replaced, not merged)."""
        fields = {"codes": self.codes, "times": self.times, "metadata": self.metadata}
        unknown = set(changes) - set(fields)
        if unknown:
            raise TypeError(f"Clip.replace() got unknown field(s) {sorted(unknown)}; fields: {sorted(fields)}")
        fields.update(changes)
        return Clip(**fields)

    def with_codes(self, codes: torch.Tensor, times: torch.Tensor | None = None) -> "Clip":
        """New codes (and times, default: these) with this clip's metadata, e.g. a sampled or edited path."""
        return Clip(codes, self.times if times is None else times, self.metadata)

    def select(self, index: int | slice | torch.Tensor | list[int]) -> "Clip":
        """The frames at `index` (int, slice, list or tensor of indices / bool mask), metadata kept."""
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        if isinstance(index, list):
            index = torch.as_tensor(index, dtype=torch.long)
        idx_cpu = index.cpu() if isinstance(index, torch.Tensor) else index
        idx_dev = index.to(self.codes.device) if isinstance(index, torch.Tensor) else index
        return Clip(self.codes[idx_dev], self.times[idx_cpu], self.metadata)

    def to(self, device: str | torch.device) -> "Clip":
        """The codes on `device` (times stay on the CPU)."""
        return self.with_codes(self.codes.to(device))

    def detach(self) -> "Clip":
        return self.with_codes(self.codes.detach())

    def cpu(self) -> "Clip":
        return self.to("cpu")

    def json_metadata(self) -> dict[str, str]:
        """The metadata as the str -> str dict a .safetensors header holds (non-str values JSON-encoded)."""
        return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in self.metadata.items()}


def as_codes(x: Clip | torch.Tensor, what: str = "codes") -> torch.Tensor:
    """The codes tensor of a Clip, or the tensor itself (for functions that take either)."""
    if isinstance(x, Clip):
        return x.codes
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{what} must be a dynode_core.Clip or a torch.Tensor [T, L, D], got {type(x).__name__}")
    return x


def _fmt(t: torch.Tensor, i: int) -> str:
    return format(float(t[i]), ".4g") if t.numel() else "-"
