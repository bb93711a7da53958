"""Keyframe mode past the first / last keyframe: the damped continuation (dynamics/_extrap.py)."""

import math

import pytest
import torch

import dynode_core as dc
from dynamics_files import rewrite_config
from dynode_core.dynamics import _extrap

KINDS = ("ode", "cde", "sde")


def reverting_clip(T=13, k=8, rate=0.7, seed=0):
    """An AR(1) walk around a fixed face (z_{n+1} - m = rate (z_n - m) + noise), [T + 8, 2, 8], unit spacing:
    the conditional mean n gaps ahead is m + rate^n (z_end - m), so holding the end frame should lose."""
    g = torch.Generator().manual_seed(seed)
    directions = torch.linalg.qr(torch.randn(16, k, generator=g))[0].T  # [k, 16]
    m = torch.randn(16, generator=g)
    y, ys = torch.randn(k, generator=g), []
    for _ in range(T + 8):
        ys.append(y)
        y = rate * y + math.sqrt(1 - rate ** 2) * torch.randn(k, generator=g)
    return (m + torch.stack(ys) @ directions).reshape(-1, 2, 8)


def test_settles_on_the_typical_face_far_out():
    """Far past either end every kind's path is the typical face m = (1 - b) mean + b far end, stays inside
    the keyframes' range on the way, and starts exactly at the end keyframe."""
    codes = reverting_clip(seed=1)[:13]
    times = torch.arange(13, dtype=torch.float32)
    flat = codes.flatten(1)
    low, high = flat.min(0).values, flat.max(0).values
    for kind in KINDS:
        dyn = dc.fit_dynamics(times, codes, kind=kind, iterations=5, **({} if kind == "cde" else {"neural": False}))
        c = dyn.config["continuation"]
        assert c is not None and c["reversion"] <= 12 and c["envelope"] == pytest.approx(6.0)
        for far, end, seed in ((72.0, 12, 0), (-60.0, 0, 1)):
            typical = (1 - c["target"]) * flat.mean(0) + c["target"] * flat[12 - end]
            if kind == "sde":  # the mean of the samples: the noise settles around it
                out = torch.stack([dyn.sample([far], seed=s)[0].flatten() for s in range(16)]).mean(0)
                assert (out - typical).abs().max() < 0.3 * (high - low).max()
            else:
                assert torch.allclose(dyn.sample([far])[0].flatten(), typical, atol=1e-4)
            assert torch.allclose(dyn.sample([end + math.copysign(1e-6, far)], seed=seed)[0], codes[end], atol=1e-3)
        if kind != "sde":
            path = dyn.sample(torch.cat([torch.linspace(-40, 0, 81), torch.linspace(12, 52, 81)])).flatten(1)
            slack = 0.25 * (high - low)  # momentum may carry the face a little past the extremes it was seen at
            assert ((path >= low - slack) & (path <= high + slack)).all()


def test_beats_hold_and_mean_on_reverting_walks():
    """Walks around a fixed face: 1-4 gaps ahead the continuation's squared error (summed over 12 walks) is
    below both holding the end keyframe's and the keyframes' mean code's, at every horizon."""
    err, hold, mean = torch.zeros(4), torch.zeros(4), torch.zeros(4)
    for seed in range(12):
        codes = reverting_clip(seed=seed)
        times = torch.arange(len(codes), dtype=torch.float32)
        dyn = dc.fit_dynamics(times[:13], codes[:13], neural=False, iterations=1)
        truth = codes[13:17].flatten(1)
        err += ((dyn.sample(times[13:17]).flatten(1) - truth) ** 2).sum(1)
        hold += ((codes[12].flatten() - truth) ** 2).sum(1)
        mean += ((codes[:13].flatten(1).mean(0) - truth) ** 2).sum(1)
    assert (err < 0.9 * hold).all() and (err < mean).all()


def test_steady_motion_is_continued_then_settles():
    """A face moving steadily one way, where the motion is predictable: the cross-validation finds that the
    unbounded continuation (long memory, no envelope) halves the bounded one's errors and keeps it, so the
    path moves on past the end; far out it still settles on the typical face."""
    times = torch.arange(8, dtype=torch.float32)
    direction = torch.randn(2, 8, generator=torch.Generator().manual_seed(3))
    codes = times[:, None, None] * direction
    params = _extrap.choose_continuation(codes.flatten(1).double(), times.double())
    assert params["momentum"] > 0 and params["reversion"] > 7 and params["envelope"] is None
    dyn = dc.fit_dynamics(times, codes, neural=False, iterations=1)
    along = dyn.sample(torch.tensor([7.0, 7.5, 8.0, 2000.0])).flatten(1) @ direction.flatten() / direction.pow(2).sum()
    target = dyn.config["continuation"]["target"]
    assert along[0] < along[1] < along[2] and along[3] == pytest.approx(3.5 * (1 - target), abs=1e-3)
    # the same motion with jitter the size of a step: no such evidence, the bounds stay
    jitter = torch.randn(8, 2, 8, generator=torch.Generator().manual_seed(4)) * direction.norm() / 4
    params = _extrap.choose_continuation((codes + jitter).flatten(1).double(), times.double())
    assert params["reversion"] <= 7 and params["envelope"] == pytest.approx(3.5)


def test_files_without_an_envelope_sample_as_before(tmp_path):
    """A file written before the envelope existed (continuation without "envelope") continues with the old
    formula m + exp(-h / R) (y_e - m + v M (1 - exp(-h / M))), and inside the observed range nothing changes."""
    codes = reverting_clip(seed=2)[:9]
    times = torch.arange(9, dtype=torch.float32)
    dyn = dc.fit_dynamics(times, codes, neural=False, iterations=1)
    path = tmp_path / "new.safetensors"
    dyn.save(path)
    c = {"reversion": 2.0, "momentum": 1.0, "target": 0.5}
    old = rewrite_config(path, tmp_path / "old.safetensors", lambda config: config.update(continuation=c))
    loaded = dc.load_dynamics(old)
    inside = torch.linspace(0, 8, 33)
    assert torch.equal(loaded.sample(inside), dyn.sample(inside))
    h = torch.tensor([0.5, 1.0, 3.0, 7.0])
    y = loaded.basis.encode(codes.flatten(1))
    m = 0.5 * y.mean(0) + 0.5 * y[0]
    v = y[-1] - y[-2]
    expected = m + torch.exp(-h / 2)[:, None] * (y[-1] - m + v * (1 - torch.exp(-h))[:, None])
    got = loaded.basis.encode(loaded.sample(8 + h).flatten(1))
    assert torch.allclose(got, expected, atol=1e-4)
    rewrite_config(path, old, lambda config: config.update(continuation={**c, "envelope": -1.0}))
    with pytest.raises(ValueError, match="damaged"):
        dc.load_dynamics(old)


def test_pixels_of_built_in_clips_beat_hold_and_mean():
    """Built-in clips (keyframes at 4/s over 3 s, W codes of the true factors): half a second past the last
    keyframe the decoded path is, on average over four clips, at least as close to the renderer's frames as
    the better of holding the last keyframe and the mean keyframe code, clip by clip."""
    from dynode_core.builtin import load_factor_encoder, render_clip, talking_clip
    from dynode_core.metrics import psnr

    G, E = dc.load_generator("builtin"), load_factor_encoder()
    key_t = torch.arange(13, dtype=torch.float32) / 4
    q = torch.tensor([3.25, 3.5])
    gains = []
    for seed in range(4):
        with torch.no_grad():
            z = E(talking_clip(key_t, seed))[:, None]
        truth = render_clip(q, seed=seed, size=G.resolution)
        hold = psnr(dc.decode(G, z[-1:].expand(2, -1, -1)), truth)
        mean = psnr(dc.decode(G, z.mean(0, keepdim=True).expand(2, -1, -1)), truth)
        dyn = dc.fit_dynamics(key_t, z, neural=False, iterations=1)
        gains.append(psnr(dc.decode(G, dyn.sample(q)), truth) - torch.maximum(hold, mean))
    gains = torch.stack(gains)
    assert (gains.mean(0) > 0).all() and gains.min() > -3.0


def test_sde_spread_grows_past_the_end_and_stays_the_clips():
    """SDE samples past the last keyframe: their spread grows with the distance from it, and far out it is
    about the keyframes' own spread, not wider (the samples stay faces of the clip); the mean of the samples
    is the continuation."""
    codes = reverting_clip(seed=1)[:13]
    times = torch.arange(13, dtype=torch.float32)
    sde = dc.fit_dynamics(times, codes, kind="sde", neural=False, iterations=1)
    q = torch.tensor([12.5, 14.0, 40.0])
    samples = torch.stack([sde.basis.encode(sde.sample(q, seed=s).flatten(1)) for s in range(48)])  # [S, 3, k]
    spread = samples.std(0).norm(dim=1)
    own = sde.basis.encode(codes.flatten(1)).std(0).norm()
    assert spread[0] < spread[1] < 1.3 * own and 0.5 * own < spread[2] < 1.3 * own
    ode = dc.fit_dynamics(times, codes, kind="ode", neural=False, iterations=1)
    centre = sde.basis.encode(ode.sample(q).flatten(1))
    assert ((samples.mean(0) - centre).norm(dim=1) < 0.5 * spread).all()
