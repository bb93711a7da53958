"""Dynamics files as older releases or damage leave them: a saved model's file with its JSON config edited."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from safetensors import safe_open
from safetensors.torch import save_file


def rewrite_config(src: Path, dst: Path, edit: Callable[[dict], object]) -> Path:
    """Write dst: the dynamics file src with its config passed through edit(config), which changes it in
    place (the tensors and the other metadata as they are). -> dst"""
    with safe_open(str(src), framework="pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    config = json.loads(meta["config"])
    edit(config)
    save_file(tensors, str(dst), metadata={**meta, "config": json.dumps(config)})
    return dst
