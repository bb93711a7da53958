"""Edit directions (files of every supported kind), first-frame and every-frame edits, consistency figures."""

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from dynode_core.editing import (builtin_directions, edit_all, edit_initial, flicker, load_direction,
                                 temporal_consistency)

D, L = 16, 6


@pytest.fixture
def codes():
    g = torch.Generator().manual_seed(0)
    return torch.randn(5, L, D, generator=g)


def test_load_direction_formats(tmp_path):
    d = torch.randn(D)
    per_layer = torch.randn(L, D)
    save_file({"direction": per_layer}, str(tmp_path / "ours.safetensors"), metadata={"name": "smile"})
    assert torch.equal(load_direction(tmp_path / "ours.safetensors"), per_layer)
    save_file({"whatever": d}, str(tmp_path / "single.safetensors"))
    assert torch.equal(load_direction(tmp_path / "single.safetensors"), d)
    np.save(tmp_path / "boundary.npy", d.numpy()[None])  # InterFaceGAN boundary [1, D]
    assert torch.allclose(load_direction(tmp_path / "boundary.npy"), d)
    torch.save(d, tmp_path / "d.pt")
    assert torch.equal(load_direction(tmp_path / "d.pt"), d)
    torch.save({"direction": per_layer, "meta": torch.zeros(1)}, tmp_path / "dict.pt")
    assert torch.equal(load_direction(tmp_path / "dict.pt"), per_layer)
    unit = load_direction(tmp_path / "d.pt", normalize=True)
    assert unit.norm().item() == pytest.approx(1.0, abs=1e-5)


def test_component_files_pick_by_index(tmp_path):
    comps = np.random.default_rng(0).standard_normal((7, 1, D)).astype(np.float32)  # GANSpace lat_comp [N, 1, D]
    np.savez(tmp_path / "ganspace.npz", lat_comp=comps, lat_mean=comps[0, 0], lat_stdev=np.ones(7, np.float32))
    third = load_direction(tmp_path / "ganspace.npz", index=3)
    assert third.shape == (D,) and torch.allclose(third, torch.from_numpy(comps[3, 0]))
    with pytest.raises(ValueError, match="index="):
        load_direction(tmp_path / "ganspace.npz")
    with pytest.raises(IndexError, match="7 components"):
        load_direction(tmp_path / "ganspace.npz", index=7)
    torch.save(torch.from_numpy(comps[:, 0]), tmp_path / "comps.pt")  # [N, D]
    assert torch.allclose(load_direction(tmp_path / "comps.pt", index=-1), torch.from_numpy(comps[-1, 0]))
    assert torch.allclose(load_direction(tmp_path / "ganspace.npz", key="lat_mean"), torch.from_numpy(comps[0, 0]))


def test_load_direction_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_direction(tmp_path / "nope.npy")
    (tmp_path / "d.txt").write_text("1 2 3")
    with pytest.raises(ValueError, match="unsupported"):
        load_direction(tmp_path / "d.txt")
    np.savez(tmp_path / "two.npz", a=np.zeros(3), b=np.zeros(3))
    with pytest.raises(ValueError, match="key="):
        load_direction(tmp_path / "two.npz")
    with pytest.raises(KeyError, match="has no entry"):
        load_direction(tmp_path / "two.npz", key="c")
    np.save(tmp_path / "nan.npy", np.array([np.nan, 1.0]))
    with pytest.raises(ValueError, match="NaN"):
        load_direction(tmp_path / "nan.npy")
    np.save(tmp_path / "one.npy", np.zeros(4))
    with pytest.raises(ValueError, match="single direction"):
        load_direction(tmp_path / "one.npy", index=0)
    (tmp_path / "bad.safetensors").write_bytes(b"xxxxxxxxxxxx")
    with pytest.raises(ValueError, match="not a readable"):
        load_direction(tmp_path / "bad.safetensors")


def test_builtin_directions_load_by_name():
    named = builtin_directions()
    for name, path in named.items():
        d = load_direction(name)
        assert d.ndim in (1, 2) and torch.equal(d, load_direction(path))


def test_edit_initial_moves_only_the_first_code(codes):
    d = torch.randn(D)
    z0 = edit_initial(codes, d, 2.0)
    assert z0.shape == (1, L, D)
    assert torch.allclose(z0[0], codes[0] + 2.0 * d)
    single = edit_initial(codes[0], d, 2.0)  # a bare z0 [L, D]
    assert torch.allclose(single, z0)
    assert torch.equal(edit_initial(codes, d, 0.0), codes[:1])


def test_edit_layers_and_per_layer_directions(codes):
    d = torch.randn(D)
    z0 = edit_initial(codes, d, 1.0, layers=range(0, 2))
    assert torch.allclose(z0[0, :2], codes[0, :2] + d) and torch.equal(z0[0, 2:], codes[0, 2:])
    z0 = edit_initial(codes, d, 1.0, layers=slice(-2, None))
    assert torch.equal(z0[0, :-2], codes[0, :-2]) and torch.allclose(z0[0, -2:], codes[0, -2:] + d)
    per = torch.randn(L, D)
    assert torch.allclose(edit_initial(codes, per, 0.5)[0], codes[0] + 0.5 * per)
    assert torch.allclose(edit_initial(codes, d[None], 1.0)[0], codes[0] + d)  # [1, D] boundary


def test_edit_all_same_offset_everywhere(codes):
    d = torch.randn(D)
    out = edit_all(codes, d, -1.5)
    assert out.shape == codes.shape
    diff = out - codes
    assert torch.allclose(diff, (-1.5 * d).expand_as(diff))
    w = codes[:, :1]
    assert edit_all(w, d, 1.0).shape == w.shape  # W codes [T, 1, D] take a [D] direction


def test_edit_errors(codes):
    with pytest.raises(ValueError, match="size"):
        edit_all(codes, torch.randn(D + 1), 1.0)
    with pytest.raises(ValueError, match="per-layer"):
        edit_all(codes, torch.randn(L - 1, D), 1.0)
    with pytest.raises(ValueError, match="W\\+ codes"):
        edit_all(codes[:, :1], torch.randn(D), 1.0, layers=[0])
    with pytest.raises(IndexError, match="out of range"):
        edit_initial(codes, torch.randn(D), 1.0, layers=[L])
    with pytest.raises(ValueError, match="edit_all needs"):
        edit_all(codes[0], torch.randn(D), 1.0)
    with pytest.raises(ValueError, match="expected codes"):
        edit_initial(torch.zeros(D), torch.randn(D), 1.0)


def test_consistency_figures():
    g = torch.Generator().manual_seed(0)
    t = torch.linspace(0, 1, 6)[:, None, None, None]
    ref = torch.sin(3 * t + torch.randn(1, 3, 8, 8, generator=g))
    assert temporal_consistency(ref + 0.3, ref) == pytest.approx(0, abs=1e-6)  # same motion, other colour
    flickery = ref + 0.2 * torch.randn(ref.shape, generator=g)
    assert temporal_consistency(flickery, ref) > 0.5
    assert flicker(flickery) > flicker(ref) > 0
    frozen = ref[:1].expand_as(ref)
    assert temporal_consistency(frozen, ref) == pytest.approx(1.0, abs=1e-6)  # all motion lost
    with pytest.raises(ValueError):
        flicker(ref[:1])
    with pytest.raises(ValueError):
        temporal_consistency(ref, ref[:3])
