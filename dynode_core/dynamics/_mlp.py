"""A small MLP's forward pass as a plain function of its weights.

The solvers call the dynamics' fields thousands of times per optimiser step on tiny tensors, where the
`nn.Module` calls of an `nn.Sequential` cost about as much as its arithmetic.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

_ACTIVATIONS = {nn.SiLU: nn.functional.silu, nn.Tanh: torch.tanh}


def plain_forward(net: nn.Sequential) -> Callable[[torch.Tensor], torch.Tensor]:
    """net (Linear, SiLU and Tanh layers) -> the function x -> net(x): the same operations on the same
    parameters (gradients flow to them), without module calls. Build it once per solve: it holds the
    parameters as they are."""
    layers = []
    for m in net:
        if isinstance(m, nn.Linear):
            layers.append((nn.functional.linear, m.weight, m.bias))
        elif type(m) in _ACTIVATIONS:
            layers.append((_ACTIVATIONS[type(m)],))
        else:
            raise TypeError(f"plain_forward: unsupported layer {type(m).__name__}")

    def forward(x: torch.Tensor) -> torch.Tensor:
        for op, *args in layers:
            x = op(x, *args)
        return x

    return forward
