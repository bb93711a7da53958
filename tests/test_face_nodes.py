"""The Align Faces / Paste Faces nodes on an IMAGE batch of the moving scene (no ComfyUI needed)."""

import os
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import comfy_nodes  # noqa: E402
from comfy_nodes.sockets import Faces  # noqa: E402
from dynode_core.alignment import faces_available  # noqa: E402
from dynode_core.builtin import scene_clip  # noqa: E402

pytestmark = pytest.mark.skipif(not faces_available(), reason="needs the optional extra 'faces'")


def test_align_then_paste_at_twice_the_frame_rate(one_thread):
    frames = scene_clip(torch.arange(4) / 4.0, size=(96, 128), face=64)
    images = ((frames + 1) / 2).permute(0, 2, 3, 1)
    align = comfy_nodes.NODE_CLASS_MAPPINGS["DynodeAlignFaces"]()
    crops, faces, times = align.run(images, "builtin", 64, 3.0, fps=4.0)
    assert crops.shape == (4, 64, 64, 3) and isinstance(faces, Faces) and torch.allclose(times, torch.arange(4) / 4.0)
    paste = comfy_nodes.NODE_CLASS_MAPPINGS["DynodePasteFaces"]()
    same, fps = paste.run(images, crops, faces)
    assert same.shape == images.shape and fps == 4.0
    assert (same - images).abs().mean() < 0.01
    grid = torch.arange(7) / 8.0
    more = torch.cat([crops, crops[-1:]]).repeat_interleave(2, 0)[:7]
    out, fps = paste.run(images, more, faces, times=grid)
    assert out.shape == (7, 96, 128, 3) and fps == 8.0
    assert torch.equal(out[1, :8, :8], images[0, :8, :8])  # away from the face: the nearest frame, untouched
    with pytest.raises(ValueError, match="times"):
        paste.run(images, more, faces)
