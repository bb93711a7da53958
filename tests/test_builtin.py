"""The shipped generator: same code path and format as real checkpoints, and the quality bar of issue 2."""

import pytest
import torch

import dynode_core as dc
from dynode_core.builtin import FACTOR_NAMES, FACTOR_RANGES

HELD_OUT = 777  # not a seed the training script uses


@pytest.fixture(scope="module")
def G():
    return dc.load_generator("builtin")


@pytest.fixture(scope="module")
def E():
    return dc.builtin.load_factor_encoder()


def _generated(G, E, f):
    with torch.no_grad():
        return G.synthesis(E(f)[:, None].expand(-1, G.num_ws, -1))


def test_builtin_is_a_stylegan2_with_mapping_and_noise(G):
    assert G.resolution >= 64 and G.num_ws == 2 * int(torch.log2(torch.tensor(G.resolution))) - 2
    assert dc.checkpoints.BUILTIN_GENERATOR.stat().st_size < 10 * 2**20
    z = torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        w = G.mapping(z)
    img = G.synthesis(w[:, None].expand(-1, G.num_ws, -1))
    assert img.shape == (2, 3, G.resolution, G.resolution)
    assert torch.isfinite(img).all() and img.std() > 0.1
    assert torch.allclose(G.mapping(torch.randn(2000, G.z_dim)).mean(0), G.w_avg, atol=0.15)


def test_builtin_quality_bar_on_held_out_factors(G, E):
    f = dc.builtin.random_factors(64, seed=HELD_OUT)
    gen, ren = _generated(G, E, f), dc.builtin.render_faces(f, size=G.resolution)
    overall = dc.metrics.psnr(gen, ren).mean()
    features = dc.metrics.psnr(gen, ren, dc.builtin.face_regions(f, size=G.resolution) > 0.5).mean()
    assert overall >= 25.0, f"overall PSNR {overall:.2f} dB"
    assert features >= 22.0, f"eyes-and-mouth PSNR {features:.2f} dB"


# Issue 2's bar is >= 0.8 for mouth open vs closed; blinks are the smallest change (eye whites of 1-5 px).
MOTION_BAR = {"mouth_open": 0.8, "smile": 0.8, "eye_open": 0.75, "yaw": 0.8, "roll": 0.8}


@pytest.mark.parametrize("name", MOTION_BAR)
def test_builtin_motion_factors_are_visible(G, E, name):
    """The generator's pixel change between a motion factor's extremes matches the renderer's."""
    f = dc.builtin.random_factors(32, seed=HELD_OUT + 1)
    lo, hi = FACTOR_RANGES[name]
    a, b = f.clone(), f.clone()
    a[:, FACTOR_NAMES.index(name)], b[:, FACTOR_NAMES.index(name)] = lo, hi
    d_gen = (_generated(G, E, a) - _generated(G, E, b)).abs().sum(1)
    d_ren = (dc.builtin.render_faces(a) - dc.builtin.render_faces(b)).abs().sum(1)
    assert dc.metrics.correlation(d_gen, d_ren) >= MOTION_BAR[name]


def test_shipped_directions_move_their_factor(G, E):
    """A direction derived from the model changes what it says it changes, and little else."""
    from safetensors.torch import load_file
    d = load_file(str(dc.builtin.DIRECTIONS / "mouth_open.safetensors"))["direction"]
    f = dc.builtin.random_factors(16, seed=HELD_OUT + 2)
    f[:, FACTOR_NAMES.index("mouth_open")] = 0.0
    w = E(f).detach()
    with torch.no_grad():
        before, after = G.synthesis(w[:, None]), G.synthesis((w + d)[:, None])
    change = (after - before).abs().sum(1, keepdim=True)
    f_open = f.clone()
    f_open[:, FACTOR_NAMES.index("mouth_open")] = 1.0
    rendered_change = (dc.builtin.render_faces(f_open) - dc.builtin.render_faces(f)).abs().sum(1, keepdim=True)
    assert dc.metrics.correlation(change, rendered_change) >= 0.8
    region = dc.builtin.face_regions(f) > 0.5
    inside, outside = change[region].mean(), change[~region].mean()
    assert inside > 3 * outside, f"mean change {inside:.3f} in eyes/mouth vs {outside:.3f} elsewhere"


def test_scene_face_square_has_no_seam():
    """Where the rendered face square ends, the scene is its textured background: the square's own flat
    background fades out inside it, leaving no edge (one did, along the square's top)."""
    from dynode_core.builtin.scene import _texture, scene_clip, scene_transforms

    times = torch.tensor([0.0, 0.7, 1.9])
    frames = scene_clip(times, seed=2)
    m = scene_transforms(times).double()
    face, side = 128, torch.linspace(0, 127, 200, dtype=torch.float64)
    edge = torch.cat([torch.stack([side, torch.zeros_like(side)], 1), torch.stack([side, side * 0 + 127], 1),
                      torch.stack([torch.zeros_like(side), side], 1), torch.stack([side * 0 + 127, side], 1)])
    bg_colour = (dc.builtin.render_faces(dc.builtin.talking_clip(times[:1], seed=2), size=face)[0, :, 2, 2] + 1) / 2
    bg = _texture(144, 192, bg_colour, 2)
    for k in range(len(times)):
        xy = edge @ m[k, :2, :2].T + m[k, :2, 2]
        x, y = xy[:, 0].round().long(), xy[:, 1].round().long()
        ok = (x >= 0) & (x < 192) & (y >= 0) & (y < 144)
        step = (frames[k][:, y[ok], x[ok]] - bg[:, y[ok], x[ok]]).abs().max()
        assert step < 0.03, f"frame {k}: the face square's edge differs from the background by {float(step):.3f}"
