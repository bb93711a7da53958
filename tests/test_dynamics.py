"""Latent dynamics: the fit / sample / save contract for every kind, errors, modes, and small recoveries."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

import dynode_core as dc
from dynamics_files import rewrite_config

KINDS = ("ode", "cde", "sde")
FAST = {"iterations": 15}  # cross-validation of the neural part is exercised in test_progress_and_cancel
REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "talking_face_wplus.safetensors"


def smooth_clip(times, L=3, D=8, seed=0):
    """A smooth motion in a 2-D subspace of [L, D] (a slowly decaying rotation): codes [T, L, D] at `times`."""
    g = torch.Generator().manual_seed(seed)
    basis = torch.linalg.qr(torch.randn(L * D, 2, generator=g))[0].T  # [2, L*D] orthonormal
    mean = torch.randn(L * D, generator=g)
    t = torch.as_tensor(times, dtype=torch.float32)
    r = 1.5 * torch.exp(-0.06 * t)
    y = torch.stack([r * torch.cos(0.55 * t), r * torch.sin(0.55 * t)], 1)  # [T, 2]
    return (mean + y @ basis).reshape(len(t), L, D), basis, mean


@pytest.fixture(scope="module")
def clip():
    times = torch.tensor([0.0, 0.7, 1.5, 2.0, 3.1, 4.0, 4.6, 5.5])
    codes, basis, _ = smooth_clip(times)
    return times, codes, basis


@pytest.fixture(scope="module")
def fitted(clip):
    times, codes, _ = clip
    return {kind: dc.fit_dynamics(times, codes, kind=kind, **FAST, **({} if kind == "cde" else {"neural": True}))
            for kind in KINDS}


# --------------------------------------------------------------------------------------------- contract


@pytest.mark.parametrize("kind", KINDS)
def test_shapes_and_modes(fitted, clip, kind):
    times, codes, _ = clip
    dyn = fitted[kind]
    assert isinstance(dyn, dc.Dynamics) and dyn.kind == kind
    grid = torch.linspace(-1.0, 7.0, 23)
    for keyframes in (None, True, False):
        out = dyn.sample(grid, seed=0, keyframes=keyframes)
        assert out.shape == (23, 3, 8) and out.dtype == torch.float32 and torch.isfinite(out).all()
    assert torch.equal(dyn.times, times)
    assert dyn.sample([2.5, 0.1], seed=0).shape == (2, 3, 8)  # lists, any order


@pytest.mark.parametrize("kind", KINDS)
def test_w_codes_numpy_inputs(kind):
    times = np.linspace(0, 2, 6)
    codes = smooth_clip(times, L=1, D=16)[0].numpy()
    opts = {**FAST, **({} if kind == "cde" else {"neural": False})}
    dyn = dc.fit_dynamics(times, codes, kind=kind, **opts)
    out = dyn.sample(np.array([0.25, 1.0]), z0=codes[0], seed=1)
    assert out.shape == (2, 1, 16)
    # [T, D] codes are read as W
    assert dc.fit_dynamics(list(times), codes[:, 0], kind=kind, **opts).sample([0.5]).shape == (1, 1, 16)


@pytest.mark.parametrize("kind", KINDS)
def test_keyframe_mode_passes_through_observations(fitted, clip, kind):
    times, codes, _ = clip
    dyn = fitted[kind]
    out = dyn.sample(times, seed=3)
    assert ((out - codes) ** 2).mean() <= 1e-4 * codes.var(0).mean()
    # and it is not the pure initial-value path, which only starts at the first code
    pure = dyn.sample(times, keyframes=False, seed=3)
    assert torch.allclose(pure[0], codes[0], atol=1e-4)


@pytest.mark.parametrize("kind", KINDS)
def test_two_frames_are_enough(kind):
    times = torch.tensor([0.0, 1.0])
    codes = smooth_clip(times)[0]
    dyn = dc.fit_dynamics(times, codes, kind=kind, iterations=5)
    out = dyn.sample(torch.tensor([-0.5, 0.0, 0.5, 1.0, 2.0]), seed=0)
    assert out.shape == (5, 3, 8) and torch.isfinite(out).all()
    assert torch.allclose(out[[1, 3]], codes, atol=1e-5)
    if kind == "ode":  # two frames: a straight segment in between
        assert torch.allclose(out[2], codes.mean(0), atol=1e-5)


def test_unsorted_times_are_sorted_with_codes(clip):
    times, codes, _ = clip
    perm = torch.randperm(len(times), generator=torch.Generator().manual_seed(0))
    a = dc.fit_dynamics(times, codes, neural=False, iterations=30)
    b = dc.fit_dynamics(times[perm], codes[perm], neural=False, iterations=30)
    grid = torch.linspace(-0.5, 6, 14)
    assert torch.allclose(a.sample(grid), b.sample(grid), atol=1e-5)
    assert torch.equal(b.times, times)


def test_fit_is_deterministic_for_a_seed(clip):
    times, codes, _ = clip
    grid = torch.linspace(-1, 7, 9)
    a = dc.fit_dynamics(times, codes, neural=True, iterations=20, seed=5).sample(grid, keyframes=False)
    b = dc.fit_dynamics(times, codes, neural=True, iterations=20, seed=5).sample(grid, keyframes=False)
    c = dc.fit_dynamics(times, codes, neural=True, iterations=20, seed=6).sample(grid, keyframes=False)
    assert torch.equal(a, b) and not torch.equal(a, c)


# --------------------------------------------------------------------------------------------- errors


def test_clip_errors(clip):
    times, codes, _ = clip
    with pytest.raises(ValueError, match="distinct"):
        dc.fit_dynamics(torch.tensor([0.0, 1.0, 1.0]), codes[:3])
    with pytest.raises(ValueError, match="NaN"):
        dc.fit_dynamics(torch.tensor([0.0, float("nan"), 2.0]), codes[:3])
    bad = codes[:3].clone()
    bad[1, 0, 0] = float("inf")
    with pytest.raises(ValueError, match=r"NaN or infinite.*frames \[1\]"):
        dc.fit_dynamics(times[:3], bad)
    with pytest.raises(ValueError, match="one time per code"):
        dc.fit_dynamics(times[:4], codes[:3])
    with pytest.raises(ValueError, match="at least 2 frames"):
        dc.fit_dynamics(times[:1], codes[:1])
    with pytest.raises(ValueError, match=r"\[T, L, D\]"):
        dc.fit_dynamics(times[:3], codes[:3, None])
    with pytest.raises(ValueError, match="1-D"):
        dc.fit_dynamics(times[:3, None], codes[:3])
    with pytest.raises(ValueError, match="identical"):
        dc.fit_dynamics(times[:3], codes[:1].expand(3, -1, -1))


def test_option_errors(clip):
    times, codes, _ = clip
    with pytest.raises(ValueError, match="unknown kind 'gru'.*'cde', 'ode', 'sde'"):
        dc.fit_dynamics(times, codes, kind="gru")
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['itres'\].*valid options: .*'iterations'"):
        dc.fit_dynamics(times, codes, itres=5)
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['window'\] for kind='cde'"):
        dc.fit_dynamics(times, codes, kind="cde", window=2)
    with pytest.raises(ValueError, match="iterations must be an integer >= 1"):
        dc.fit_dynamics(times, codes, iterations=0)
    with pytest.raises(ValueError, match="lr must be a positive number"):
        dc.fit_dynamics(times, codes, lr=-1)
    with pytest.raises(ValueError, match="neural must be"):
        dc.fit_dynamics(times, codes, neural="maybe")
    with pytest.raises(ValueError, match="tension"):
        dc.fit_dynamics(times, codes, tension=-1)
    with pytest.raises(TypeError, match="progress must be callable"):
        dc.fit_dynamics(times, codes, progress=3)
    # the CLI's spelling is an alias
    assert dc.fit_dynamics(times, codes, iters=2, neural=False).config["iterations"] == 2


def test_sample_errors(fitted):
    dyn = fitted["ode"]
    with pytest.raises(ValueError, match=r"z0 must be one code \[3, 8\]"):
        dyn.sample([0.0], z0=torch.zeros(2, 8))
    with pytest.raises(ValueError, match="NaN"):
        dyn.sample([0.0, float("nan")])
    with pytest.raises(ValueError, match="1-D"):
        dyn.sample(torch.zeros(2, 2))
    with pytest.raises(TypeError, match="keyframes"):
        dyn.sample([0.0], keyframes="yes")
    with pytest.raises(ValueError, match="seed"):
        dyn.sample([0.0], seed=-1)
    assert dyn.sample([0.0], seed=np.int64(3)).shape == (1, 3, 8)


# --------------------------------------------------------------------------------------------- files


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_round_trip(fitted, clip, kind, tmp_path):
    times, codes, _ = clip
    dyn = fitted[kind]
    path = tmp_path / "sub" / f"{kind}.safetensors"
    dyn.metadata = {"generator": "abc123", "num_ws": "3"}
    try:
        dyn.save(path)
    finally:
        dyn.metadata = {}
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temp files left behind
    again = dc.load_dynamics(path)
    assert type(again) is type(dyn) and again.config == dyn.config
    assert again.metadata == {"generator": "abc123", "num_ws": "3"}
    grid = torch.linspace(-1, 7, 17)
    for keyframes in (True, False):
        assert torch.equal(again.sample(grid, seed=2, keyframes=keyframes), dyn.sample(grid, seed=2, keyframes=keyframes))
    z0 = codes[0] + 0.3
    assert torch.equal(again.sample(grid, z0=z0, seed=2), dyn.sample(grid, z0=z0, seed=2))


def test_files_from_before_pacing_load_unpaced(fitted, tmp_path):
    """A file written before the pace option existed has no "pace" in its config: it samples as it did."""
    path = tmp_path / "new.safetensors"
    fitted["ode"].save(path)
    old = rewrite_config(path, tmp_path / "old.safetensors", lambda config: config.pop("pace"))
    grid = torch.linspace(0, 5.5, 23)
    unpaced = dc.load_dynamics(old)
    assert unpaced.config["pace"] is False
    expected = dc.load_dynamics(path)
    expected.config["pace"] = False
    assert torch.equal(unpaced.sample(grid), expected.sample(grid))
    assert not torch.equal(unpaced.sample(grid), fitted["ode"].sample(grid))


def test_damaged_resolved_choices_are_refused(fitted, tmp_path):
    """A file whose resolved tension / continuation are not plain finite numbers is refused before sampling."""
    path = tmp_path / "good.safetensors"
    fitted["ode"].save(path)
    for change in ({"tension": [1.0, "x"]}, {"continuation": {"reversion": -1, "momentum": 0, "target": 0}},
                   {"extrapolation": "wild"}):
        bad = rewrite_config(path, tmp_path / "bad.safetensors", lambda config: config.update(change))
        with pytest.raises(ValueError, match="damaged"):
            dc.load_dynamics(bad)


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        dc.load_dynamics(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="cannot read"):
        dc.load_dynamics(junk)
    from safetensors.torch import save_file
    other = tmp_path / "codes.safetensors"
    save_file({"codes": torch.zeros(2, 1, 4)}, str(other), metadata={"format": "dynode-codes/1"})
    with pytest.raises(ValueError, match="not a DynODE dynamics file"):
        dc.load_dynamics(other)


# --------------------------------------------------------------------------------------------- behaviour


def test_sde_seeds(fitted, clip):
    times, codes, _ = clip
    sde = fitted["sde"]
    grid = torch.linspace(-0.5, 6.5, 30)
    a, b, c = sde.sample(grid, seed=1), sde.sample(grid, seed=1), sde.sample(grid, seed=2)
    assert torch.equal(a, b)
    between = ~dc.times.keyframe_mask(grid, times)
    assert (a - c)[between].abs().amax() > 1e-3
    # every sample still passes through the keyframes
    assert torch.allclose(sde.sample(times, seed=7), codes, atol=1e-4)
    assert (sde.sigma > 0).all()


@pytest.mark.parametrize("kind", KINDS)
def test_z0_outside_the_motion_subspace_is_carried(fitted, clip, kind):
    times, codes, basis = clip
    dyn = fitted[kind]
    g = torch.Generator().manual_seed(1)
    delta = torch.randn(24, generator=g)
    span = torch.cat([basis, (codes.flatten(1) - codes.flatten(1).mean(0))])  # motion directions
    q, _ = torch.linalg.qr(span.T)
    delta = (delta - q @ (q.T @ delta)).reshape(3, 8)  # an "edit" orthogonal to all of the clip's motion
    grid = torch.linspace(-1, 6.5, 12)
    for keyframes in (True, False):
        base = dyn.sample(grid, seed=4, keyframes=keyframes)
        moved = dyn.sample(grid, z0=codes[0] + delta, seed=4, keyframes=keyframes)
        assert torch.allclose(moved, base + delta, atol=1e-4)


def test_keyframes_with_z0_follow_the_clip_motion(fitted, clip):
    times, codes, _ = clip
    dyn = fitted["ode"]
    offset = torch.randn(3, 8, generator=torch.Generator().manual_seed(2))
    out = dyn.sample(times, z0=codes[0] + offset)  # default: keyframe mode, every keyframe moved by the offset
    assert torch.allclose(out, codes + offset, atol=1e-4)


def test_cde_motion_transfer(fitted, clip):
    times, codes, _ = clip
    cde = fitted["cde"]
    grid = torch.linspace(0, 5.5, 12)
    own = cde.sample(grid, keyframes=False)
    assert torch.allclose(cde.sample(grid, control=codes, control_times=times), own, atol=1e-5)
    other = smooth_clip(times + 10, seed=0)[0]  # another motion (a later part of the same kind of path)
    z0 = codes[0] + 1.0
    moved = cde.sample(grid + 10, z0=z0, control=other, control_times=times + 10)
    assert moved.shape == (12, 3, 8) and torch.isfinite(moved).all()
    assert not torch.allclose(moved, own + 1.0, atol=1e-3)  # driven by the other motion
    with pytest.raises(ValueError, match="cannot be combined"):
        cde.sample(grid, control=codes, control_times=times, keyframes=True)
    with pytest.raises(ValueError, match="control_times"):
        cde.sample(grid, control=codes)
    with pytest.raises(ValueError, match="control codes must be"):
        cde.sample(grid, control=codes[:, :2], control_times=times)


def test_progress_and_cancel(clip):
    times, codes, _ = clip
    calls = []
    dyn = dc.fit_dynamics(times, codes, iterations=7, neural=True, between="spline",
                          progress=lambda i, n: calls.append((i, n)))
    assert calls == [(i, 7) for i in range(1, 8)] and dyn.config["neural"] is True
    calls.clear()
    # the bridges' cross-validation with the MLP: one more short fit
    dc.fit_dynamics(times, codes, iterations=7, neural=True, progress=lambda i, n: calls.append((i, n)))
    assert calls == [(i, 14) for i in range(1, 15)]
    calls.clear()
    dc.fit_dynamics(times, codes, iterations=9, progress=lambda i, n: calls.append((i, n)))  # with cross-validation
    steps = [c[0] for c in calls]
    assert calls[-1] == (36, 36) and steps[:18] == list(range(1, 19)) and steps == sorted(set(steps))
    calls.clear()
    with pytest.raises(dc.Cancelled, match="after 3 of"):
        dc.fit_dynamics(times, codes, kind="sde", iterations=50, cancel=lambda: len(calls) >= 3,
                        progress=lambda i, n: calls.append(i))

    class Stop(Exception):
        pass

    def raising(i, n):
        if i == 2:
            raise Stop

    with pytest.raises(Stop):
        dc.fit_dynamics(times, codes, kind="cde", iterations=10, progress=raising)


# --------------------------------------------------------------------------------------------- recovery


def test_recovers_a_smooth_path():
    """Nine frames of a smooth motion: the in-between frames come back far better than by linear
    interpolation, cross-validation keeps the neural part, and the ODE continues the motion past the end."""
    times = torch.arange(9, dtype=torch.float32)
    codes, _, _ = smooth_clip(times)
    mid = times[:-1] + 0.5
    truth, _, _ = smooth_clip(mid)
    var = codes.var(0).mean()
    dyn = dc.fit_dynamics(times, codes, kind="ode", iterations=150)
    assert dyn.config["neural"] is True and dyn.config["tension"][0] <= 1.0  # smooth: MLP, curved main direction
    err = ((dyn.sample(mid) - truth) ** 2).mean()
    lerp = (((codes[:-1] + codes[1:]) / 2 - truth) ** 2).mean()
    assert err < 1e-3 * var and err < 0.1 * lerp
    # short extrapolation (half a gap and one gap) continuing the motion, against holding the last frame
    ahead = torch.tensor([8.5, 9.0])
    truth_ahead, _, _ = smooth_clip(ahead)
    err_ahead = ((dyn.sample(ahead) - truth_ahead) ** 2).mean()
    hold = ((codes[-1] - truth_ahead) ** 2).mean()
    assert err_ahead < 0.1 * hold and err_ahead < 1e-2 * var


def test_plain_forward_is_the_module_forward():
    """The fields' MLPs run as plain functions in the solvers: the same values and gradients as the modules."""
    from torch import nn

    from dynode_core.dynamics._mlp import plain_forward

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.SiLU(), nn.Linear(8, 6), nn.Tanh())
    x = torch.randn(5, 4)
    assert torch.equal(plain_forward(net)(x), net(x))
    plain_forward(net)(x).sum().backward()
    grad = net[0].weight.grad.clone()
    net.zero_grad()
    net(x).sum().backward()
    assert torch.equal(grad, net[0].weight.grad)
    with pytest.raises(TypeError, match="ReLU"):
        plain_forward(nn.Sequential(nn.Linear(2, 2), nn.ReLU()))


def test_tension_moves_off_the_prior_only_where_the_data_show_it():
    """Per direction the tension nearest the moderate prior within tolerance of the cross-validated best:
    where every tension fits (straight motion) the prior, a smooth curve gets a curve; with too few folds to
    judge directions apart one pooled tension, the straightest within tolerance."""
    from dynode_core.dynamics._interp import PRIOR_TENSION, TENSIONS, choose_tension

    knots = torch.arange(12, dtype=torch.float64)
    assert choose_tension(knots, torch.stack([knots, -2 * knots], 1)) == [PRIOR_TENSION] * 2
    curve = choose_tension(knots, torch.stack([torch.sin(0.5 * knots), knots], 1))
    assert curve[0] <= 1.0 and curve[1] == PRIOR_TENSION
    walk = torch.randn(6, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64).cumsum(0)
    assert choose_tension(knots[:6], walk) == [TENSIONS[-1]] * 3


def test_pacing_follows_speed_changes():
    """A motion along a straight line that speeds up and slows down again (ease in and out): paced keyframe
    paths put the in-between frames where the motion is, linear interpolation spreads them evenly."""
    from dynode_core.dynamics._interp import keyframe_distances, pace_embedding, pace_weights

    direction = torch.randn(2, 8, generator=torch.Generator().manual_seed(1))

    def codes_at(t):
        return ((1 - torch.cos(math.pi * t / 6)) / 2)[:, None, None] * direction

    times = torch.arange(7, dtype=torch.float32)
    mid = torch.linspace(0, 6, 61)
    paced = dc.fit_dynamics(times, codes_at(times), iterations=5, neural=False, tension=128.0)
    plain = dc.fit_dynamics(times, codes_at(times), iterations=5, neural=False, tension=128.0, pace=False)
    err = ((paced.sample(mid) - codes_at(mid)) ** 2).mean()
    lerp = ((plain.sample(mid) - codes_at(mid)) ** 2).mean()
    assert err < 0.5 * lerp
    # the correction: rows sum to 0, only a gap's two ends change, 0 at the knots and outside the range,
    # nothing to do at a constant speed, and the paced path never leaves its gap or turns back
    knots = times.double()
    # along one line the pacing coordinates keep the proportions of code-space distances
    d = keyframe_distances(pace_embedding(codes_at(times)))
    assert torch.allclose(d / d.sum(), keyframe_distances(codes_at(times)) / keyframe_distances(codes_at(times)).sum(),
                          atol=1e-6)
    W = pace_weights(knots, keyframe_distances(codes_at(times)), mid.double())
    assert torch.allclose(W.sum(1), torch.zeros(61, dtype=torch.float64), atol=1e-12)
    assert ((W != 0).sum(1) <= 2).all()
    assert W[::10].abs().max() == 0
    assert pace_weights(knots, torch.ones(6), mid.double()).abs().max() < 1e-12
    path = (W + dc.dynamics._interp.TensionSpline(knots, 1e9).weights(mid.double())) @ codes_at(times).flatten(1).double()
    along = path @ direction.flatten().double() / direction.pow(2).sum()
    assert (along.diff() >= -1e-6).all() and along.min() >= -1e-6 and along.max() <= 1 + 1e-6


def test_float64_default_dtype(clip):
    """Models are float32 whatever torch's default dtype is (a user script may set float64)."""
    times, codes, _ = clip
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        for kind in KINDS:
            out = dc.fit_dynamics(times.double(), codes.double(), kind=kind, iterations=3).sample([0.5, 9.0])
            assert out.dtype == torch.float32 and torch.isfinite(out).all()
    finally:
        torch.set_default_dtype(before)


@pytest.mark.skipif(not REAL.is_file(), reason="shared real codes not present")
def test_real_codes_w_plus():
    from safetensors.torch import load_file

    data = load_file(str(REAL))
    codes, times = data["latents"], data["times"]
    assert codes.shape == (11, 18, 512)
    even, odd = list(range(0, 11, 2)), list(range(1, 11, 2))
    dyn = dc.fit_dynamics(times[even], codes[even], neural=False, iterations=100)
    assert ((dyn.sample(times[even]) - codes[even]) ** 2).mean() <= 1e-4 * codes.var(0).mean()
    lerp = (codes[[i - 1 for i in odd]] + codes[[i + 1 for i in odd]]) / 2
    ratio = ((dyn.sample(times[odd]) - codes[odd]) ** 2).mean() / ((lerp - codes[odd]) ** 2).mean()
    assert ratio < 1.0  # measured 0.982 (pacing); linear interpolation is the ratio's denominator
    first = dc.fit_dynamics(times[:8], codes[:8], neural=False, iterations=100)
    hold = ((codes[7] - codes[8:]) ** 2).mean()
    assert ((first.sample(times[8:]) - codes[8:]) ** 2).mean() < hold


def test_ode_integrator_matches_torchdiffeq_rk4():
    """The fit's hand-written RK4 is torchdiffeq's fixed-grid rk4 (3/8 rule) on the rescaled problem, and the
    MLP-free field's flow is exact."""
    torchdiffeq = pytest.importorskip("torchdiffeq", reason="torchdiffeq (the test extra) is the reference")
    from dynode_core.dynamics.ode import _Fields, flow

    torch.manual_seed(0)
    fields = _Fields(3, 16, neural=True)
    torch.nn.init.normal_(fields.net[-1].weight, std=0.5)  # a field that is not just the linear pull
    y = torch.randn(6, 3)
    duration = torch.tensor([0.3, 1.0, 2.0, 0.0, 1.7, 0.9])
    forward = torch.tensor([True, False, True, True, False, False])
    n = math.ceil(2.0 / 0.25)
    s = torch.linspace(0, 1, n + 1)
    ref = torchdiffeq.odeint(lambda _, x: duration[:, None] * fields(x, forward), y, s, method="rk4")[-1]
    assert torch.allclose(flow(fields, y, duration, forward, 0.25), ref, atol=1e-5)
    assert torch.equal(flow(fields, y, torch.zeros(6), forward, 0.25), y)

    linear = _Fields(3, 16, neural=False)
    exact = y * torch.exp(-torch.nn.functional.softplus(linear.raw_rate)[0] * duration)[:, None]
    rows = forward.clone().fill_(True)
    assert torch.allclose(flow(linear, y, duration, rows, 0.25), exact)
    ref = torchdiffeq.odeint(lambda _, x: duration[:, None] * linear(x, rows), y, s, method="rk4")[-1]
    assert torch.allclose(exact, ref, atol=1e-5)


def test_dynamics_adam_is_torch_adam():
    """The fits' own Adam + cosine decay takes the steps of torch.optim.Adam + CosineAnnealingLR."""
    from dynode_core.dynamics._optim import optimise

    torch.manual_seed(0)
    target = torch.randn(5, 4)
    a = torch.zeros(5, 4, requires_grad=True)
    b = torch.zeros(5, 4, requires_grad=True)
    optimise(lambda: ((a - target) ** 3).abs().sum(), [a], 40, 0.05, None, None)
    opt = torch.optim.Adam([b], lr=0.05)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 40, eta_min=0.05 / 20)
    for _ in range(40):
        opt.zero_grad()
        ((b - target) ** 3).abs().sum().backward()
        opt.step()
        sched.step()
    assert torch.allclose(a, b, atol=1e-5)
    assert not torch.allclose(a, torch.zeros_like(a))


# --------------------------------------------------------------------------------------------- bridges


@pytest.fixture(scope="module")
def bridged(clip):
    """Every kind with between="flow" (the learned dynamics between the keyframes)."""
    times, codes, _ = clip
    return {kind: dc.fit_dynamics(times, codes, kind=kind, between="flow", **FAST,
                                  **({} if kind == "cde" else {"neural": True})) for kind in KINDS}


@pytest.mark.parametrize("kind", KINDS)
def test_bridges_pass_through_keyframes(bridged, fitted, clip, kind):
    times, codes, _ = clip
    dyn = bridged[kind]
    assert dyn.config["between"] == "flow"
    assert ((dyn.sample(times, seed=3) - codes) ** 2).mean() <= 1e-10 * codes.var(0).mean()
    grid = torch.linspace(0, 5.5, 45)
    path = dyn.sample(grid, seed=3)
    assert torch.isfinite(path).all()
    spline = fitted[kind]
    spline.config["between"], before = "spline", spline.config["between"]
    try:  # the bridges are another path than the spline's, and continuous across the keyframes
        assert (path - spline.sample(grid, seed=3)).abs().amax() > 1e-4
    finally:
        spline.config["between"] = before
    near = dyn.sample(torch.cat([times[1:-1] - 1e-4, times[1:-1] + 1e-4]), seed=3)
    assert (near - codes[1:-1].repeat(2, 1, 1)).abs().amax() < 1e-2
    offset = torch.randn(3, 8, generator=torch.Generator().manual_seed(2))  # z0: through the moved keyframes
    assert torch.allclose(dyn.sample(times, z0=codes[0] + offset, seed=3), codes + offset, atol=1e-4)
    if kind == "sde":  # bridge noise around the drift's bridges: seeds differ between keyframes only
        other = dyn.sample(grid, seed=4)
        between = ~dc.times.keyframe_mask(grid, times)
        assert (other - path)[between].abs().amax() > 1e-3 and (other - path)[~between].abs().amax() < 1e-4


@pytest.mark.parametrize("kind", KINDS)
def test_bridged_models_round_trip(bridged, kind, tmp_path):
    dyn = bridged[kind]
    dyn.save(tmp_path / "b.safetensors")
    again = dc.load_dynamics(tmp_path / "b.safetensors")
    assert again.config == dyn.config and again.config["between"] == "flow"
    grid = torch.linspace(-1, 7, 33)
    assert torch.equal(again.sample(grid, seed=2), dyn.sample(grid, seed=2))


def test_bridge_of_the_true_flow_is_the_true_path():
    """Keyframes of a path that IS a flow (a rotation, with its time reversal as the backward field): the
    bridges of that flow reproduce the path between the keyframes (RK4 dense output), the spline does not."""
    from dynode_core.dynamics._bridge import bridge
    from dynode_core.dynamics._interp import TensionSpline

    class Rotation(torch.nn.Module):  # the interface of ode._Fields: velocity(forward)(y), forward(y, forward)
        neural = True

        def __init__(self, drift=0.0):
            super().__init__()
            self.drift = drift

        def velocity(self, forward):
            def v(y):
                turn = torch.stack([-0.8 * y[:, 1], 0.8 * y[:, 0]], 1)
                return torch.where(forward[:, None], turn, -turn) + self.drift
            return v

        def forward(self, y, forward):
            return self.velocity(forward)(y)

    knots = torch.tensor([0.0, 1.0, 2.5, 3.0, 4.5])
    q = torch.linspace(0, 4.5, 46)
    truth = torch.stack([torch.cos(0.8 * q), torch.sin(0.8 * q)], 1)
    keys = torch.stack([torch.cos(0.8 * knots), torch.sin(0.8 * knots)], 1)
    err = (bridge(Rotation(), keys, knots, q, 0.25) - truth).abs().amax()
    spline = TensionSpline(knots.double(), 0.0).weights(q.double()).float() @ keys
    assert err < 1e-4 and err < 0.01 * (spline - truth).abs().amax()
    # a field that is wrong by a constant drift is still exact at the keyframes, and the miss is corrected
    drifting = bridge(Rotation(drift=0.05), keys, knots, knots, 0.25)
    assert torch.allclose(drifting, keys, atol=1e-6)


def test_cross_validation_picks_the_flow_on_smooth_motion():
    """Eleven frames of a smooth rotation, every other one given: the cross-validation keeps the MLP and its
    bridges, which follow the motion far better than the keyframe spline."""
    times = torch.arange(11, dtype=torch.float32)
    codes, _, _ = smooth_clip(times)
    train, test = times[::2], times[1::2]
    dyn = dc.fit_dynamics(train, codes[::2], iterations=150)
    assert dyn.config["neural"] is True and dyn.config["between"] == "flow"
    cv = dyn.config["cv_between_error"]
    assert cv["flow"] < cv["spline"]
    err = ((dyn.sample(test) - codes[1::2]) ** 2).mean()
    dyn.config["between"] = "spline"
    assert err < 0.5 * ((dyn.sample(test) - codes[1::2]) ** 2).mean()


@pytest.mark.parametrize("kind", ("ode", "sde"))
def test_cross_validation_keeps_the_spline_on_a_random_walk(kind):
    """A random walk (the next code is the last one plus fresh noise): no field predicts where it goes next,
    so the cross-validation keeps the keyframe spline, with the MLP forced on too."""
    g = torch.Generator().manual_seed(3)
    codes = torch.randn(12, 3, 8, generator=g).cumsum(0)
    times = torch.arange(12, dtype=torch.float32)
    dyn = dc.fit_dynamics(times, codes, kind=kind, iterations=30, neural=True)
    assert dyn.config["between"] == "spline" and set(dyn.config["cv_between_error"]) == {"spline", "flow"}
    if kind == "ode":
        assert dc.fit_dynamics(times, codes, iterations=30).config["between"] == "spline"  # MLP-free field


def test_cde_trains_long_clips_in_windows_that_chain_into_the_full_solve():
    """A long clip is trained in windows of at most _WINDOW RK4 steps solved side by side, each starting where
    the one before ended at the previous call; with the parameters held still, the windows' path equals the
    full solve's, and gradients reach the field through every window."""
    from dynode_core.dynamics.cde import _WINDOW

    times = torch.arange(90, dtype=torch.float32) / 8  # 89 gaps of 2 steps: 3 windows
    codes = smooth_clip(times)[0]
    dyn = dc.fit_dynamics(times, codes, kind="cde", iterations=1, between="flow")
    y, tau = dyn.basis.encode(dyn.key_codes.flatten(1)), dyn._tau(dyn.key_times)
    assert 2 * _WINDOW < 2 * 89 <= 3 * _WINDOW
    at_knots = dyn._knot_path(y, tau)
    with torch.no_grad():
        full = dyn._path(tau, y, tau)
        for _ in range(3):
            windows = at_knots()
    assert windows.shape == full.shape == y.shape
    assert torch.allclose(windows, full, atol=1e-5)
    # the last window starts from a detached state: its knots still train the field through its own steps
    dyn.vector.net[0].weight.grad = None
    ((at_knots()[-10:] - y[-10:]) ** 2).mean().backward()
    assert dyn.vector.net[0].weight.grad.abs().sum() > 0


def test_cde_keeps_its_path_unless_the_spline_wins_clearly():
    """kind="cde" compares its corrected path with the spline on held-out keyframes and keeps the path (what
    it did before the option) unless the spline cuts the log error by a third per held-out keyframe."""
    from dynode_core.dynamics._bridge import MARGIN, held_out

    g = torch.Generator().manual_seed(3)
    codes = torch.randn(12, 3, 8, generator=g).cumsum(0)
    times = torch.arange(12, dtype=torch.float32)
    dyn = dc.fit_dynamics(times, codes, kind="cde", iterations=30)
    cv = dyn.config["cv_between_error"]
    spline_wins = cv["spline"] < cv["flow"] - len(held_out(12)[1]) * math.log(MARGIN)
    assert dyn.config["between"] == ("spline" if spline_wins else "flow")
    # nothing to test it on: the path, as before the option (ode: the spline)
    for kind, before in (("cde", "flow"), ("ode", "spline")):
        assert dc.fit_dynamics(times[:2], codes[:2], kind=kind, iterations=5).config["between"] == before
        assert dc.fit_dynamics(times, codes, kind=kind, iterations=5, keyframes=False).config["between"] == before


def test_files_from_before_the_bridges_sample_as_before(fitted, tmp_path):
    """A file without the `between` option: ODE / SDE files take the spline between keyframes, CDE files the
    CDE's corrected path, as they did."""

    def drop_between(config):
        del config["between"]
        config.pop("cv_between_error", None)

    grid = torch.linspace(0, 5.5, 23)
    for kind, before in (("ode", "spline"), ("sde", "spline"), ("cde", "flow")):
        path = tmp_path / f"{kind}.safetensors"
        fitted[kind].save(path)
        old = rewrite_config(path, tmp_path / f"old-{kind}.safetensors", drop_between)
        loaded = dc.load_dynamics(old)
        assert loaded.config["between"] == before
        expected = dc.load_dynamics(path)
        expected.config["between"] = before
        assert torch.equal(loaded.sample(grid, seed=1), expected.sample(grid, seed=1))


def test_between_option_errors(clip, fitted, tmp_path):
    times, codes, _ = clip
    with pytest.raises(ValueError, match="option between must be 'auto'.*'spline'.*'flow'.*got 'curvy'"):
        dc.fit_dynamics(times, codes, between="curvy")
    path = tmp_path / "good.safetensors"
    fitted["ode"].save(path)
    # a fit always resolves "auto"
    bad = rewrite_config(path, tmp_path / "bad.safetensors", lambda config: config.update(between="auto"))
    with pytest.raises(ValueError, match="damaged.*between 'auto'"):
        dc.load_dynamics(bad)
