"""Video I/O round-trips, pixel conversions and time grids."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from dynode_core.times import keyframe_mask, sample_times
from dynode_core.video import (frames_from_uint8, frames_to_uint8, read_video, resize_frames, to_rgb, write_image,
                               write_video)


def _clip(t=5, size=24, seed=0):
    """A smooth moving-gradient clip in [-1, 1] (GIF palettes can represent it closely)."""
    g = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    col = torch.rand(3, generator=g) * 2 - 1
    frames = [torch.stack([torch.sin(2 * x + i * 0.3) * 0.8, col[1] * y, torch.cos(x * y * 3 + i * 0.2) * 0.7])
              for i in range(t)]
    return torch.stack(frames).clamp(-1, 1)


def _quantised(frames):
    return frames_from_uint8(frames_to_uint8(frames))


def test_uint8_roundtrip_is_exact_on_quantised_values():
    f = _quantised(_clip())
    assert torch.equal(frames_to_uint8(f), frames_to_uint8(_quantised(f)))
    assert (frames_from_uint8(frames_to_uint8(f)) - f).abs().max() < 1e-6
    u = frames_to_uint8(f)
    assert u.dtype == torch.uint8 and u.shape == (5, 24, 24, 3)


def test_to_rgb_handles_gray_and_rgba():
    gray = torch.rand(2, 1, 8, 8) * 2 - 1
    assert torch.equal(to_rgb(gray), gray.expand(-1, 3, -1, -1))
    rgb = torch.rand(2, 3, 8, 8) * 2 - 1
    opaque = torch.cat([rgb, torch.ones(2, 1, 8, 8)], 1)
    clear = torch.cat([rgb, -torch.ones(2, 1, 8, 8)], 1)
    assert torch.allclose(to_rgb(opaque), rgb)
    assert torch.allclose(to_rgb(clear), torch.ones_like(rgb))  # transparent -> white background
    with pytest.raises(ValueError, match="1, 3 or 4 channels"):
        to_rgb(torch.zeros(1, 2, 4, 4))


def test_frames_from_uint8_rejects_floats_and_bad_shapes():
    with pytest.raises(TypeError, match="uint8"):
        frames_from_uint8(np.zeros((1, 4, 4, 3), np.float32))
    with pytest.raises(ValueError, match=r"\[T, H, W, C\]"):
        frames_from_uint8(np.zeros((1, 4, 4, 2), np.uint8))


def test_png_folder_roundtrip_exact_and_stale_frames_removed(tmp_path):
    f = _quantised(_clip(6))
    out = write_video(tmp_path / "frames", f)
    assert sorted(p.name for p in out.iterdir())[:2] == ["frame_000000.png", "frame_000001.png"]
    back, fps = read_video(out)
    assert fps is None and torch.equal(frames_to_uint8(back), frames_to_uint8(f))
    write_video(out, f[:3])  # a shorter clip into the same folder must not leave frames 3..5 behind
    back, _ = read_video(out)
    assert back.shape[0] == 3
    assert not list(tmp_path.glob("**/*.tmp")) and not list(tmp_path.glob("**/.*"))


def test_webp_lossless_roundtrip_exact(tmp_path):
    f = _quantised(_clip(4))
    path = write_video(tmp_path / "clip.webp", f, fps=10, lossless=True)
    back, fps = read_video(path)
    assert back.shape == f.shape
    assert torch.equal(frames_to_uint8(back), frames_to_uint8(f))
    assert fps == pytest.approx(10, rel=0.05)


def test_gif_roundtrip_close_and_fps(tmp_path):
    f = _quantised(_clip(5))
    path = write_video(tmp_path / "clip.gif", f, fps=8)
    back, fps = read_video(path)
    assert back.shape == f.shape
    # A GIF keeps 256 colours per frame: close, not exact.
    assert (back - f).abs().mean() < 0.05
    assert fps == pytest.approx(8, rel=0.05)
    two, _ = read_video(path, max_frames=2)
    assert two.shape[0] == 2


def test_read_folder_natural_order_and_alpha(tmp_path):
    for i in (10, 2, 1):
        Image.new("RGBA", (6, 6), (i * 20, 0, 0, 255)).save(tmp_path / f"img{i}.png")
    Image.new("RGBA", (6, 6), (0, 0, 0, 0)).save(tmp_path / "img11.png")  # transparent -> white
    f, _ = read_video(tmp_path)
    reds = frames_to_uint8(f)[:, 0, 0, 0].tolist()
    assert reds == [20, 40, 200, 255]


def test_read_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_video(tmp_path / "missing.gif")
    with pytest.raises(ValueError, match="no images"):
        read_video(tmp_path)
    (tmp_path / "x.gif").write_bytes(b"not a gif")
    with pytest.raises(ValueError, match="cannot read"):
        read_video(tmp_path / "x.gif")
    Image.new("RGB", (4, 4)).save(tmp_path / "a.png")
    Image.new("RGB", (5, 4)).save(tmp_path / "b.png")
    with pytest.raises(ValueError, match="differ in size"):
        read_video(tmp_path)


def test_mp4_needs_pyav_or_roundtrips(tmp_path):
    f = _quantised(_clip(4, size=32))
    try:
        import av  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install av"):
            write_video(tmp_path / "clip.mp4", f)
        assert not (tmp_path / "clip.mp4").exists()
        return
    write_video(tmp_path / "clip.mp4", f, fps=12)
    back, fps = read_video(tmp_path / "clip.mp4")
    assert back.shape == f.shape and (back - f).abs().mean() < 0.1 and fps == pytest.approx(12)


def test_write_errors_and_existing_file_kept(tmp_path):
    target = tmp_path / "clip.gif"
    target.write_bytes(b"precious")
    with pytest.raises(ValueError, match="unsupported video suffix"):
        write_video(tmp_path / "clip.avi_", _clip(2))
    with pytest.raises(ValueError, match="fps"):
        write_video(target, _clip(2), fps=0)
    with pytest.raises(ValueError, match="empty"):
        write_video(target, torch.zeros(0, 3, 4, 4))
    assert target.read_bytes() == b"precious"
    write_image(tmp_path / "one.png", _clip(1)[0])
    assert Image.open(tmp_path / "one.png").size == (24, 24)


def test_resize_frames_crops_and_resizes():
    f = torch.zeros(2, 3, 40, 60)
    f[..., :, 10:50] = 1  # the centre square is all ones
    r = resize_frames(f, 20)
    assert r.shape == (2, 3, 20, 20) and torch.allclose(r, torch.ones_like(r))


# --- time grids ---------------------------------------------------------------------------------------------

def test_sample_times_interpolation_factor():
    t = sample_times([0.0, 1.0, 2.0], factor=4)
    assert t.dtype == torch.float32
    assert torch.allclose(t, torch.linspace(0, 2, 9))
    irregular = sample_times([0.0, 1.0, 3.0], factor=2)
    assert torch.allclose(irregular, torch.tensor([0.0, 0.5, 1.0, 2.0, 3.0]))
    assert torch.equal(sample_times([2.0, 0.0, 1.0]), torch.tensor([0.0, 1.0, 2.0]))


def test_sample_times_extrapolation_and_explicit():
    t = sample_times([0.0, 1.0, 2.0], factor=2, extrapolate=1.0)
    assert torch.allclose(t, torch.tensor([0, 0.5, 1, 1.5, 2, 2.5, 3.0]))
    t = sample_times([0.0, 1.0], extrapolate=0.25, step=0.1)  # span split evenly, end included
    assert t[-1].item() == pytest.approx(1.25) and len(t) == 2 + 3
    assert torch.allclose(sample_times(times=[0.7, 0.1, 0.3, 0.1]), torch.tensor([0.1, 0.3, 0.7]))
    both = sample_times([0.0, 1.0], times=[0.5, 2.0])
    assert torch.allclose(both, torch.tensor([0.0, 0.5, 1.0, 2.0]))
    assert sample_times([0.0, 1 / 3, 2 / 3], factor=3, dtype=torch.float64).dtype == torch.float64
    # keyframes reproduced exactly and no near-duplicates from rounding
    t = sample_times([0.0, 0.1, 0.3], factor=3, dtype=torch.float64)
    assert len(t) == 7 and keyframe_mask(t, [0.0, 0.1, 0.3]).sum() == 3


def test_sample_times_errors():
    with pytest.raises(ValueError, match="factor"):
        sample_times([0, 1], factor=0)
    with pytest.raises(ValueError, match="factor"):
        sample_times([0, 1], factor=1.5)
    with pytest.raises(ValueError, match="extrapolate"):
        sample_times([0, 1], extrapolate=-1)
    with pytest.raises(ValueError, match="NaN"):
        sample_times([0, math.nan])
    with pytest.raises(ValueError, match="empty"):
        sample_times([])
    with pytest.raises(ValueError, match="keyframe_times"):
        sample_times()
    with pytest.raises(ValueError, match="step"):
        sample_times([1.0], extrapolate=1.0)


def test_keyframe_mask():
    t = sample_times([0.0, 1.0, 2.0], factor=2)
    assert keyframe_mask(t, [0.0, 1.0, 2.0]).tolist() == [True, False, True, False, True]


@pytest.mark.parametrize("suffix", [".gif", ".webp"])
def test_repeated_frames_survive_the_round_trip(tmp_path, suffix):
    """Pillow merges identical consecutive frames into one longer frame; reading expands them again."""
    f = _quantised(_clip(6))
    f[2:5] = f[2]  # a held frame, as in a clip that pauses
    write_video(tmp_path / f"held{suffix}", f, fps=16, lossless=True)
    back, fps = read_video(tmp_path / f"held{suffix}")
    assert back.shape[0] == 6 and fps == pytest.approx(16, rel=0.02)
    assert (back - f).abs().mean() < 0.05
