import pytest
import torch

import dynode_core as dc
from dynode_core.builtin import FACTOR_RANGES


def test_render_shapes_range_and_determinism():
    f = dc.builtin.random_factors(4, seed=0)
    assert f.shape == (4, len(dc.builtin.FACTOR_NAMES))
    for i, name in enumerate(dc.builtin.FACTOR_NAMES):
        lo, hi = FACTOR_RANGES[name]
        assert (f[:, i] >= lo).all() and (f[:, i] <= hi).all()
    img = dc.builtin.render_faces(f, size=32)
    assert img.shape == (4, 3, 32, 32) and img.min() >= -1 and img.max() <= 1
    assert torch.equal(img, dc.builtin.render_faces(dc.builtin.random_factors(4, seed=0), size=32))


@pytest.mark.parametrize("name", ["mouth_open", "eye_open"])
def test_motion_factor_changes_only_its_region(name):
    f = dc.builtin.random_factors(8, seed=1)
    a, b = f.clone(), f.clone()
    a[:, dc.builtin.FACTOR_NAMES.index(name)], b[:, dc.builtin.FACTOR_NAMES.index(name)] = 0.0, 1.0
    diff = (dc.builtin.render_faces(a) - dc.builtin.render_faces(b)).abs().sum(1, keepdim=True)
    region = dc.builtin.face_regions(f) > 0.5
    assert diff.sum() > 10, "the factor must visibly change the face"
    assert (diff * region).sum() / diff.sum() > 0.95, "the change must stay in the eyes/mouth region"


def test_talking_clip_is_a_function_of_time():
    t_fast = torch.linspace(0, 2, 49)
    t_slow = t_fast[::4]
    assert torch.allclose(dc.builtin.talking_clip(t_fast, seed=3)[::4], dc.builtin.talking_clip(t_slow, seed=3))
    clip = dc.builtin.render_clip(t_slow, seed=3, size=32)
    assert clip.shape == (13, 3, 32, 32)
    assert (clip[1:] - clip[:-1]).abs().mean() > 0.001, "the face moves"
    other = dc.builtin.talking_clip(t_slow, seed=4)
    assert not torch.allclose(other, dc.builtin.talking_clip(t_slow, seed=3))


def test_bad_factors_error():
    with pytest.raises(ValueError, match="factors must have shape"):
        dc.builtin.render_faces(torch.zeros(2, 3))
