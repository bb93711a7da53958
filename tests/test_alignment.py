"""dc.align_faces / dc.paste_faces on faces warped by known transforms into larger canvases.

Real photos: the FFHQ-generator frames in ../shared/data (skipped when that folder is absent). Cartoon faces
from the renderer run everywhere. Everything needs the optional extra `faces` (MediaPipe).
"""

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import dynode_core as dc
from dynode_core import builtin
from dynode_core.builtin.scene import place_image, smooth_background
from dynode_core.metrics import psnr
from dynode_core.video import frames_from_uint8, frames_to_uint8
from dynode_core import alignment

needs_faces = pytest.mark.skipif(not alignment.faces_available(),
                                reason="needs the optional extra 'faces' (pip install -e '.[faces]')")

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
PHOTOS = sorted(SHARED.glob("talking_face_frame_*.png"))
needs_photos = pytest.mark.skipif(not PHOTOS, reason=f"real photos not found in {SHARED}")


def photo(i: int) -> torch.Tensor:
    from PIL import Image
    return frames_from_uint8(np.array(Image.open(PHOTOS[i]).convert("RGB"))[None])


def cartoon(size: int = 256, seed: int = 3) -> torch.Tensor:
    f = builtin.random_factors(1, seed=seed)
    f[:, builtin.FACTOR_NAMES.index("yaw")] = 0
    f[:, builtin.FACTOR_NAMES.index("roll")] = 0
    return builtin.render_faces(f, size=size)


def similarity(scale, angle, tx, ty) -> torch.Tensor:
    c, s = scale * math.cos(angle), scale * math.sin(angle)
    return torch.tensor([[c, -s, tx], [s, c, ty], [0, 0, 1.0]])


def corner_error(a: torch.Tensor, b: torch.Tensor, size: int) -> float:
    """Largest distance (target pixels) between where two transforms put the crop's corners and middle."""
    pts = torch.tensor([[0, size - 1, 0, size - 1, (size - 1) / 2], [0, 0, size - 1, size - 1, (size - 1) / 2],
                        [1, 1, 1, 1, 1.0]])
    return float((a.double() @ pts.double() - b.double() @ pts.double())[:2].norm(dim=0).max())


@needs_faces
@needs_photos
@pytest.mark.parametrize("index", [0, 3, 5])
def test_photo_transform_recovery_and_invariance(one_thread, index):
    img = photo(index)
    T = similarity(1.5, 0.3 - 0.12 * index, 70.0 + 5 * index, 50.0)
    canvas = place_image(img, T, smooth_background(480, 560, index))
    base = dc.align_faces(img, size=256)
    moved = dc.align_faces(canvas, size=256)
    # the same face moved by T is aligned to the same crop: the transform follows T
    assert corner_error(moved.transforms[0], T @ base.transforms[0], 256) < 5.0
    # and the photo, already in FFHQ framing, comes back close to itself
    assert corner_error(moved.transforms[0], T, 256) < 15.0
    assert corner_error(base.transforms[0], torch.eye(3), 256) < 10.0
    inner = (slice(None), slice(None), slice(48, 208), slice(48, 208))  # the face, away from padded borders
    assert psnr(moved.crops[inner], base.crops[inner]).item() > 22
    assert moved.found.all() and moved.crops.shape == (1, 3, 256, 256)


@needs_faces
@needs_photos
def test_photo_round_trip_and_untouched_pixels(one_thread):
    img = photo(1)
    T = similarity(1.2, -0.3, 90.0, 60.0)
    canvas = place_image(img, T, smooth_background(460, 520, 7))
    faces = dc.align_faces(canvas, size=256)
    back = dc.paste_faces(canvas, faces.crops, faces)
    assert psnr(back, canvas).item() > 38
    # pasting something else changes only the feathered face region; everything else is bit-for-bit equal
    other = dc.paste_faces(canvas, -faces.crops, faces)
    changed = (other != canvas).any(1)[0]
    ys, xs = torch.nonzero(changed, as_tuple=True)
    centre = faces.transforms[0, :2, :2] @ torch.tensor([127.5, 127.5]) + faces.transforms[0, :2, 2]
    radius = 256 * math.sqrt(abs(float(torch.det(faces.transforms[0, :2, :2])))) * 0.5
    assert changed.sum() > 1000
    dist = torch.hypot(xs - centre[0], ys - centre[1])
    assert float(dist.max()) < radius  # no change outside the crop's inscribed circle
    assert (other[0, :, :, :20] == canvas[0, :, :, :20]).all()


@needs_faces
def test_cartoon_recovery_static_jitter_and_moving_lag(one_thread):
    face = cartoon()
    n = 12
    g = torch.Generator().manual_seed(0)
    bg = smooth_background(300, 420, 1)
    # still face, a little sensor noise on every frame
    T = similarity(0.8, 0.1, 110.0, 40.0)
    still = place_image(face, T, bg).expand(n, -1, -1, -1)
    still = (still + 0.02 * torch.randn(still.shape, generator=g)).clamp(-1, 1)
    a = dc.align_faces(still, size=128)
    centres = a.transforms[:, :2, :2] @ torch.tensor([63.5, 63.5]) + a.transforms[:, :2, 2]
    assert float(centres.std(0).max()) < 0.3  # pixels
    # a face moving steadily to the right: the smoothed track follows it without lag
    moves = [similarity(0.8, 0.1, 60.0 + 12 * k, 40.0 + 3 * k) for k in range(n)]
    moving = torch.cat([place_image(face, m, bg) for m in moves])
    b = dc.align_faces(moving, size=128)
    rel = torch.stack([torch.linalg.inv(moves[k]) @ b.transforms[k] for k in range(n)])
    rel_c = rel[:, :2, :2] @ torch.tensor([63.5, 63.5]) + rel[:, :2, 2]  # in the face's own pixels
    lag = (rel_c[1:-1] - rel_c[1:-1].mean(0)).norm(dim=1)
    assert float(lag.max()) < 1.5
    # the moving and the still face agree about the face's crop
    still_rel = torch.linalg.inv(T) @ a.transforms[0]
    assert corner_error(rel.mean(0), still_rel, 128) < 3.0


@needs_faces
def test_builtin_framing_returns_rendered_faces_at_their_own_framing(one_thread):
    f = builtin.talking_clip(torch.linspace(0, 3, 8), seed=2)
    f[:, builtin.FACTOR_NAMES.index("yaw")] = 0
    big = builtin.render_faces(f, size=256)
    small = builtin.render_faces(f, size=64)
    a = dc.align_faces(big, size=64, framing="builtin", smoothing=0)
    assert psnr(a.crops, small).mean().item() > 24
    expect = torch.tensor([[4.0, 0, 1.5], [0, 4.0, 1.5], [0, 0, 1]])  # 64-px crop pixel -> 256-px frame pixel
    for k in range(len(f)):  # 256-px frame pixels: within 2 crop pixels (the open mouth moves the recipe)
        assert corner_error(a.transforms[k], expect, 64) < 8.0


@needs_faces
def test_missing_faces_are_flagged_and_filled(one_thread):
    face = cartoon(seed=5)
    bg = smooth_background(240, 320, 2)
    moves = [similarity(0.6, 0.0, 60.0 + 8 * k, 40.0) for k in range(8)]
    clip = torch.cat([place_image(face, m, bg) for m in moves])
    clip[3] = bg[0]
    clip[4] = bg[0]
    a = dc.align_faces(clip, size=64)
    assert a.found.tolist() == [True, True, True, False, False, True, True, True]
    xs = a.transforms[:, 0, 2]
    assert xs[2] < xs[3] < xs[4] < xs[5]  # filled between its neighbours
    with pytest.raises(ValueError, match="no face"):
        dc.align_faces(bg.expand(3, -1, -1, -1), size=64)


@needs_faces
def test_several_faces_warn_and_take_the_largest(one_thread):
    bg = smooth_background(260, 520, 3)
    big_T, small_T = similarity(0.9, 0, 260.0, 20.0), similarity(0.65, 0, 30.0, 50.0)
    canvas = place_image(cartoon(seed=1), small_T, place_image(cartoon(seed=4), big_T, bg))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        a = dc.align_faces(canvas, size=64, framing="builtin")
    assert any("several faces" in str(x.message) for x in w)
    centre = a.transforms[0, :2, :2] @ torch.tensor([31.5, 31.5]) + a.transforms[0, :2, 2]
    assert centre[0] > 260  # the big face on the right


@needs_faces
def test_face_partly_outside_the_frame_is_padded(one_thread):
    face = cartoon(seed=6)
    canvas = place_image(face, similarity(1.0, 0, -70.0, 10.0), smooth_background(280, 300, 4))
    a = dc.align_faces(canvas, size=128)
    assert a.found.all() and torch.isfinite(a.crops).all()
    left = a.crops[0, :, :, :10]  # outside the frame: padded, blurred towards the median, not black or garbage
    assert float(left.std()) < 0.5 and float(left.mean()) > -0.9
    back = dc.paste_faces(canvas, a.crops, a)
    assert back.shape == canvas.shape and psnr(back, canvas).item() > 30


def test_interpolated_transforms_sweep_between_frames():
    a, b = similarity(1.0, 0.0, 10.0, 0.0), similarity(2.0, 0.6, 50.0, 20.0)
    mid = alignment.interpolate_transforms(torch.stack([a, b]), [0.0, 1.0], [0.0, 0.5, 1.0], size=64)
    assert torch.allclose(mid[0], a, atol=1e-5) and torch.allclose(mid[2], b, atol=1e-5)
    s = math.sqrt(float(torch.det(mid[1, :2, :2])))
    assert abs(s - math.sqrt(2.0)) < 1e-4  # geometric mean of the scales
    assert abs(math.atan2(float(mid[1, 1, 0]), float(mid[1, 0, 0])) - 0.3) < 1e-4
    c = lambda m: m[:2, :2] @ torch.tensor([31.5, 31.5]) + m[:2, 2]  # noqa: E731
    assert torch.allclose(c(mid[1]), (c(a) + c(b)) / 2, atol=1e-4)


def test_missing_extra_names_it(monkeypatch):
    import builtins
    real = builtins.__import__

    def fake(name, *args, **kwargs):
        if name.startswith("mediapipe"):
            raise ImportError("No module named 'mediapipe'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(ImportError, match=r"faces"):
        dc.align_faces(torch.zeros(1, 3, 64, 64), size=64)


@needs_faces
@needs_photos
def test_batch_of_unrelated_warps_is_not_averaged_together(one_thread):
    """Several photos placed by very different transforms in one call: each transform is recovered on its own."""
    Ts = [similarity(1.5, 0.3, 70.0, 50.0), similarity(0.9, -0.25, 250.0, 180.0), similarity(1.3, 0.0, 40.0, 120.0),
          similarity(1.1, 0.2, 200.0, 20.0)]
    imgs = [photo(k % len(PHOTOS)) for k in range(len(Ts))]
    canvases = torch.cat([place_image(img, T, smooth_background(480, 560, k)) for k, (img, T) in enumerate(zip(imgs, Ts))])
    together = dc.align_faces(canvases, size=256)
    for k, T in enumerate(Ts):
        alone = dc.align_faces(canvases[k:k + 1], size=256)
        assert corner_error(together.transforms[k], alone.transforms[0], 256) < 3.0
        assert corner_error(together.transforms[k], T, 256) < 15.0


@needs_faces
def test_framing_from_a_generator(one_thread):
    G = dc.load_generator("builtin")
    big = builtin.render_faces(builtin.random_factors(1, seed=2), size=128)
    a = dc.align_faces(big, size=64, framing=G)
    assert a.framing.name == "builtin"


@needs_faces
@needs_photos
def test_small_face_in_a_large_frame_is_found_and_followed(one_thread):
    """A face too small for the face mesh's own detector on the whole frame (64 px in 1080p) is found by the
    search (full-range detector, tiles, then around the previous frame's face) and aligned as well as the
    photo itself; without the search it is lost."""
    import torch.nn.functional as F

    small = F.interpolate(photo(2), size=(64, 64), mode="area")  # the 256-px photo at a quarter
    shrink = torch.tensor([[0.25, 0, -0.375], [0, 0.25, -0.375], [0, 0, 1.0]])  # photo px -> small px (centres)
    moves = [similarity(1.0, 0.0, 1200.0 + 12 * k, 400.0 + 5 * k) for k in range(3)]
    bg = smooth_background(1080, 1920, 7)
    clip = torch.cat([place_image(small, m, bg) for m in moves])
    squares, found = alignment.detect_faces(clip, search=False)
    assert not found.any()
    base = dc.align_faces(photo(2), size=256)
    a = dc.align_faces(clip, size=256, smoothing=0)
    assert a.found.all()
    for k, m in enumerate(moves):
        # in frame pixels: the 256-px crop's corners land within 2 px of where the photo's own alignment puts them
        assert corner_error(a.transforms[k], m @ shrink @ base.transforms[0], 256) < 2.0
