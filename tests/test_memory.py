"""Memory-budgeted batches: the per-frame estimate tracks what autograd really keeps; budgets parse and cap."""

import pytest
import torch

import dynode_core as dc
from dynode_core._memory import (available_memory, batch_size_for, frame_bytes, parse_memory,
                                 reuse_freed_memory)


def small(res=32):
    torch.manual_seed(0)
    return dc.Generator(res, z_dim=16, w_dim=16, n_mlp=1, channels={4: 32, 8: 32, 16: 16, 32: 16, 64: 8}).eval()


def saved_bytes(G, batch):
    kept = {}

    def pack(t):
        if not isinstance(t, torch.nn.Parameter):
            kept[id(t)] = t
        return t

    ws = torch.zeros(batch, G.num_ws, G.w_dim, requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        G.synthesis(ws).square().mean().backward()
    return sum(t.numel() * t.element_size() for t in kept.values())


@pytest.mark.parametrize("res", [32, 64])
def test_estimate_follows_real_saved_tensors(res):
    G = small(res).requires_grad_(False)
    per_frame, fixed = frame_bytes(G, "invert")
    real = saved_bytes(G, 3) - saved_bytes(G, 2)
    assert real > 0
    assert real <= per_frame <= 2.5 * real  # the estimate adds the peak's headroom, never less than saved
    _, fixed_tune = frame_bytes(G, "tune")
    params = sum(p.numel() * 4 for p in G.parameters())
    assert fixed_tune >= fixed + 4 * params


def test_batch_size_from_budget():
    G = small(64)
    per_frame, fixed = frame_bytes(G)
    budget = fixed + 5 * per_frame + per_frame // 2
    assert batch_size_for(G, memory=budget) == 5
    assert batch_size_for(G, memory=budget, limit=3) == 3
    assert batch_size_for(G, memory=f"{budget / 2**20:.3f}MiB") in (4, 5)
    assert batch_size_for(G) >= 1 and available_memory() > 0
    with pytest.warns(UserWarning, match="memory budget"):
        assert batch_size_for(G, memory=2**10) == 1


@pytest.mark.parametrize("text, value", [("8GB", 8 * 2**30), ("512 MiB", 512 * 2**20), ("1.5g", int(1.5 * 2**30)),
                                         (2**30, 2**30), (None, None)])
def test_parse_memory(text, value):
    assert parse_memory(text) == value


@pytest.mark.parametrize("bad", ["lots", "-1GB", "0", 10, True, "5 PB"])
def test_parse_memory_rejects(bad):
    with pytest.raises(ValueError, match="memory"):
        parse_memory(bad)


def test_reuse_freed_memory_keeps_results():
    G = small().requires_grad_(False)
    ws = torch.randn(2, G.num_ws, G.w_dim)
    with torch.no_grad():
        a = G.synthesis(ws)
        with reuse_freed_memory():
            b = G.synthesis(ws)
    assert torch.equal(a, b)


def test_invert_batches_from_the_memory_budget(monkeypatch):
    import dynode_core.inversion as inv

    G = small(16).requires_grad_(False)
    per_frame, fixed = frame_bytes(G)
    sizes = []
    real = G.synthesis
    monkeypatch.setattr(G, "synthesis", lambda ws, **k: (sizes.append(ws.shape[0]), real(ws, **k))[1])
    frames = torch.rand(6, 3, 16, 16) * 2 - 1
    inv.invert(G, frames, steps=2, warm_steps=1, warm_start=False, batch_size=16, memory=fixed + 2 * per_frame + 1)
    assert max(sizes) == 2  # 6 frames in batches of 2, not one batch of 6
    sizes.clear()
    inv.invert(G, frames, steps=2, warm_steps=1, warm_start=False, batch_size=4, memory="1TB")
    assert max(sizes) == 4
    with pytest.raises(ValueError, match="memory"):
        inv.invert(G, frames, steps=1, memory="lots")
