"""The ComfyUI node classes, called directly as ComfyUI would (no ComfyUI needed), on a tiny generator."""

import os
import sys
import types

import numpy as np
import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repo root: comfy_nodes

import dynode_core as dc  # noqa: E402
import comfy_nodes  # noqa: E402
from comfy_nodes import _runtime  # noqa: E402
from comfy_nodes.sockets import Codes, Direction, DynamicsSpec  # noqa: E402

N = comfy_nodes.NODE_CLASS_MAPPINGS
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN"}
SOCKET_TYPES = {"DYNODE_GENERATOR", "DYNODE_CODES", "DYNODE_DYNAMICS_SPEC", "DYNODE_DYNAMICS", "DYNODE_TIMES",
                "DYNODE_DIRECTION", "DYNODE_FACES", "DYNODE_ENCODER", "IMAGE", "FLOAT"}


def run(node_id, **inputs):
    """Call a node the way ComfyUI does: a fresh instance, its FUNCTION, under torch.inference_mode()."""
    cls = N[node_id]
    with torch.inference_mode():
        out = getattr(cls(), cls.FUNCTION)(**inputs)
    if isinstance(out, dict):
        return out
    assert isinstance(out, tuple) and len(out) == len(cls.RETURN_TYPES)
    return out


def tiny_generator(seed=0):
    torch.manual_seed(seed)
    G = dc.Generator(32, z_dim=32, w_dim=32, n_mlp=2, channels={4: 32, 8: 32, 16: 16, 32: 16}).eval()
    G.estimate_w_avg(500)
    return G


@pytest.fixture(scope="module")
def G(tmp_path_factory):
    """A tiny generator loaded through the loader node (from a file, as a user's checkpoint would be)."""
    path = tmp_path_factory.mktemp("gen") / "tiny.safetensors"
    dc.save_generator(tiny_generator(), path)
    (G,) = run("DynodeLoadGenerator", generator_name=str(path))
    return G


@pytest.fixture(scope="module")
def clip(G):
    """Six frames the tiny generator draws along a smooth path, as an IMAGE batch, at times k / 4 s."""
    g = torch.Generator().manual_seed(1)
    w = G.mapping(torch.randn(2, G.z_dim, generator=g), truncation_psi=0.7).detach()
    a = torch.linspace(0, 1, 6)[:, None]
    ws = ((1 - a) * w[0] + a * w[1])[:, None]
    with torch.no_grad():
        frames = G.synthesis(ws)
    images = ((frames + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1).contiguous()
    return images, torch.arange(6, dtype=torch.float32) / 4


@pytest.fixture(scope="module")
def codes(G, clip):
    images, times = clip
    (c,) = run("DynodeInvert", generator=G, images=images, space="w+", steps=12, smoothness=0.0, seed=0, times=times)
    return c


# --- the pack's contract with ComfyUI ------------------------------------------------------------------------

def test_every_node_declares_what_comfyui_reads():
    assert set(comfy_nodes.NODE_DISPLAY_NAME_MAPPINGS) == set(N)
    for node_id, cls in N.items():
        assert node_id.startswith("Dynode")
        spec = cls.INPUT_TYPES()
        assert set(spec) <= {"required", "optional", "hidden"} and spec["required"]
        for section in ("required", "optional"):
            for name, entry in spec.get(section, {}).items():
                kind, opts = entry[0], entry[1]
                assert isinstance(kind, list) or kind in WIDGET_TYPES | SOCKET_TYPES, (node_id, name, kind)
                assert opts.get("tooltip"), f"{node_id}.{name} has no tooltip"
                if kind in ("INT", "FLOAT"):
                    assert opts["min"] <= opts["default"] <= opts["max"], (node_id, name)
                if isinstance(kind, list) and "default" in opts:
                    assert opts["default"] in kind, (node_id, name)
        assert isinstance(cls.RETURN_TYPES, tuple) and all(t in SOCKET_TYPES for t in cls.RETURN_TYPES)
        assert callable(getattr(cls, cls.FUNCTION))
        assert cls.CATEGORY.startswith("DynODE") and cls.DESCRIPTION
        if cls.RETURN_TYPES:
            assert len(cls.RETURN_NAMES) == len(cls.RETURN_TYPES) == len(cls.OUTPUT_TOOLTIPS)
        else:
            assert cls.OUTPUT_NODE


def test_one_spec_node_per_kind_all_feeding_fit_dynamics():
    kinds = {}
    for node_id, cls in N.items():
        if cls.RETURN_TYPES == ("DYNODE_DYNAMICS_SPEC",):
            defaults = {k: v[1].get("default", v[0][0] if isinstance(v[0], list) else None)
                        for k, v in cls.INPUT_TYPES()["required"].items()}
            (spec,) = run(node_id, **defaults)
            assert isinstance(spec, DynamicsSpec)
            kinds[spec.kind] = node_id
            library = dc.dynamics_options(spec.kind)  # a graph with untouched widgets fits like the library
            assert {k: library[k] for k in defaults} == defaults
    assert set(kinds) == {"ode", "cde", "sde"}
    assert N["DynodeFitDynamics"].INPUT_TYPES()["required"]["spec"][0] == "DYNODE_DYNAMICS_SPEC"


def test_root_init_is_the_comfyui_entry_point():
    """ComfyUI imports the repo folder as a package from its __init__.py."""
    import importlib.util
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    spec = importlib.util.spec_from_file_location("dynode_pack_under_test", os.path.join(root, "__init__.py"),
                                                  submodule_search_locations=[root])
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        assert set(module.NODE_CLASS_MAPPINGS) == set(N)
        assert module.NODE_DISPLAY_NAME_MAPPINGS == comfy_nodes.NODE_DISPLAY_NAME_MAPPINGS
    finally:
        for name in [m for m in sys.modules if m == spec.name or m.startswith(spec.name + ".")]:
            del sys.modules[name]


# --- generator, clip, inversion, decoding ---------------------------------------------------------------------

def test_loader_lists_builtin_first_and_loads_files(G):
    names = N["DynodeLoadGenerator"].INPUT_TYPES()["required"]["generator_name"][0]
    assert names[0] == "builtin"
    assert (G.w_dim, G.num_ws, G.resolution) == (32, 8, 32)
    assert not any(p.is_inference() for p in G.parameters()), "weights loaded under inference_mode"
    with pytest.raises(FileNotFoundError, match="stylegan"):
        run("DynodeLoadGenerator", generator_name="no_such_generator.safetensors")


@pytest.mark.skipif(not dc.checkpoints.BUILTIN_GENERATOR.is_file(), reason="built-in generator asset not present yet")
def test_loader_builtin():
    (G,) = run("DynodeLoadGenerator", generator_name="builtin")
    assert G.resolution == 64 and G.num_ws == 10 and G.w_dim == 128


def test_render_clip_is_an_image_batch_with_times():
    images, times = run("DynodeRenderClip", frames=5, fps=4.0, seed=3, size=32)
    assert images.shape == (5, 32, 32, 3) and images.dtype == torch.float32
    assert 0 <= float(images.min()) and float(images.max()) <= 1 and float(images.std()) > 0.05
    assert torch.allclose(times, torch.arange(5) / 4.0)
    # the same seed at explicit times draws the same frames (the motion is a function of time)
    again, t2 = run("DynodeRenderClip", frames=1, fps=1.0, seed=3, size=32, times=times[1::2])
    assert torch.equal(t2, times[1::2]) and torch.allclose(again, images[1::2], atol=1e-6)


def test_invert_then_decode_reconstructs_the_clip(G, clip, codes):
    images, times = clip
    assert isinstance(codes, Codes) and codes.codes.shape == (6, G.num_ws, G.w_dim)
    assert torch.equal(codes.times, times) and not codes.codes.requires_grad
    (decoded,) = run("DynodeDecode", generator=G, codes=codes, batch_size=4)
    assert decoded.shape == images.shape and decoded.dtype == torch.float32
    mse = float((decoded - images).square().mean())
    mean_code = Codes(G.w_avg.expand(6, G.num_ws, -1).clone(), times)
    (average,) = run("DynodeDecode", generator=G, codes=mean_code, batch_size=4)
    assert mse < 0.5 * float((average - images).square().mean()), "inversion did not get closer than the average face"


def test_invert_checks_its_inputs(G, clip):
    images, times = clip
    with pytest.raises(ValueError, match="6 frames but 5 times"):
        run("DynodeInvert", generator=G, images=images, space="w", steps=1, smoothness=0.0, seed=0, times=times[:5])
    with pytest.raises(ValueError, match="empty"):
        run("DynodeInvert", generator=G, images=images[:0], space="w", steps=1, smoothness=0.0, seed=0)
    (c,) = run("DynodeInvert", generator=G, images=images[:2], space="w", steps=2, smoothness=0.0, seed=0)
    assert c.codes.shape == (2, 1, G.w_dim) and torch.equal(c.times, torch.tensor([0.0, 1.0]))


def test_decode_names_the_mismatch(G):
    wrong_layers = Codes(torch.zeros(3, 14, G.w_dim), torch.arange(3.0))
    with pytest.raises(ValueError, match="14 layers.*num_ws = 8"):
        run("DynodeDecode", generator=G, codes=wrong_layers, batch_size=2)
    wrong_width = Codes(torch.zeros(3, 8, 512), torch.arange(3.0))
    with pytest.raises(ValueError, match="w_dim 512"):
        run("DynodeDecode", generator=G, codes=wrong_width, batch_size=2)


# --- times, dynamics, editing, plots ------------------------------------------------------------------------------

def test_sample_times(codes):
    (t,) = run("DynodeSampleTimes", codes=codes, factor=4, extrapolate=0.5, extra_times="0.1, 3")
    key = codes.times
    assert torch.isin(key, t).all() and float(t.max()) == 3.0 and 0.1 in [round(v, 6) for v in t.tolist()]
    # 21 interpolated times, 0.5 s past the end at the interpolated spacing (8 more), 2 explicit ones
    assert torch.all(t[1:] > t[:-1]) and t.numel() == 4 * 5 + 1 + 8 + 2
    with pytest.raises(ValueError, match="comma-separated"):
        run("DynodeSampleTimes", codes=codes, factor=1, extrapolate=0.0, extra_times="one, two")


def test_fit_sample_save_load_dynamics(G, codes, tmp_path, monkeypatch):
    monkeypatch.setattr(_runtime, "user_dirs", lambda: (str(tmp_path), str(tmp_path)))
    (spec,) = run("DynodeNeuralODE", **{**_defaults("DynodeNeuralODE"), "iterations": 30})
    assert spec.kind == "ode" and spec.options["keyframes"] is True
    (dyn,) = run("DynodeFitDynamics", codes=codes, spec=spec, seed=0)
    (times,) = run("DynodeSampleTimes", codes=codes, factor=2, extrapolate=0.0, extra_times="")
    (path,) = run("DynodeSampleTrajectory", dynamics=dyn, times=times, seed=0, mode="auto")
    assert path.codes.shape == (times.numel(), G.num_ws, G.w_dim) and torch.equal(path.times, times)
    assert torch.isfinite(path.codes).all()
    # keyframe mode passes through the observed codes; the in-between codes are new
    assert torch.allclose(path.codes[::2], codes.codes, atol=1e-4)
    assert not torch.allclose(path.codes[1::2], codes.codes[:-1], atol=1e-3)
    # another start runs the learned motion from there (initial-value mode), shifted by the offset
    moved = Codes(codes.codes[:1] + 0.5, codes.times[:1])
    (other,) = run("DynodeSampleTrajectory", dynamics=dyn, times=times, seed=0, mode="auto", z0=moved)
    assert torch.allclose(other.codes[0], moved.codes[0], atol=1e-4)
    assert not torch.allclose(other.codes, path.codes)
    saved = run("DynodeSaveDynamics", dynamics=dyn, filename_prefix="dynode/test")
    (rel,) = saved["ui"]["text"]
    assert rel.startswith("dynode/test_00001") and (tmp_path / rel).is_file()
    (loaded,) = run("DynodeLoadDynamics", file=str(tmp_path / rel))
    (again,) = run("DynodeSampleTrajectory", dynamics=loaded, times=times, seed=0, mode="auto")
    assert torch.allclose(again.codes, path.codes, atol=1e-5)
    with pytest.raises(ValueError, match="mode must be one of"):
        run("DynodeSampleTrajectory", dynamics=dyn, times=times, seed=0, mode="sideways")


def _defaults(node_id):
    req = N[node_id].INPUT_TYPES()["required"]
    return {k: v[1].get("default", v[0][0] if isinstance(v[0], list) else None) for k, v in req.items()}


def test_fit_rejects_a_non_spec(codes):
    with pytest.raises(TypeError, match="Neural ODE"):
        run("DynodeFitDynamics", codes=codes, spec={"kind": "ode"}, seed=0)


def test_edit_initial_moves_the_first_code(codes, tmp_path):
    L, D = codes.codes.shape[1:]
    path = tmp_path / "dir.npy"
    vec = np.random.default_rng(0).standard_normal(D).astype(np.float32)
    np.save(path, vec)
    (direction,) = run("DynodeLoadDirection", direction_name=str(path), component=-1, normalize=True)
    assert isinstance(direction, Direction) and abs(float(direction.vector.norm()) - 1) < 1e-5
    (first,) = run("DynodeEditInitial", codes=codes, direction=direction, strength=2.0, mode=comfy_nodes.edit_nodes.FIRST,
                   first_layer=0, last_layer=-1)
    assert first.codes.shape == (1, L, D) and torch.equal(first.times, codes.times[:1])
    assert torch.allclose(first.codes[0] - codes.codes[0], 2.0 * direction.vector.expand(L, D), atol=1e-5)
    (coarse,) = run("DynodeEditInitial", codes=codes, direction=direction, strength=2.0,
                    mode=comfy_nodes.edit_nodes.EVERY, first_layer=0, last_layer=1)
    delta = coarse.codes - codes.codes
    assert coarse.codes.shape == codes.codes.shape
    assert delta[:, :2].abs().sum() > 0 and torch.count_nonzero(delta[:, 2:]) == 0
    with pytest.raises(ValueError, match="do not fit codes with 8 layers"):
        run("DynodeEditInitial", codes=codes, direction=direction, strength=1.0, mode=comfy_nodes.edit_nodes.FIRST,
            first_layer=3, last_layer=9)


def test_builtin_directions_are_listed():
    names = N["DynodeLoadDirection"].INPUT_TYPES()["required"]["direction_name"][0]
    assert [n for n in names if n.startswith("builtin: ")] == ["builtin: " + n for n in dc.editing.builtin_directions()]


def test_save_and_load_codes(G, codes, tmp_path, monkeypatch):
    monkeypatch.setattr(_runtime, "user_dirs", lambda: (str(tmp_path / "in"), str(tmp_path / "out")))
    out = run("DynodeSaveCodes", codes=codes, filename_prefix="clips/a", generator=G)
    out2 = run("DynodeSaveCodes", codes=codes, filename_prefix="clips/a")
    assert out["ui"]["text"] == ["clips/a_00001.codes.safetensors"]
    assert out2["ui"]["text"] == ["clips/a_00002.codes.safetensors"]
    (loaded,) = run("DynodeLoadCodes", file=str(tmp_path / "out" / "clips" / "a_00001.codes.safetensors"),
                    generator=G)
    assert torch.equal(loaded.codes, codes.codes) and torch.equal(loaded.times, codes.times)
    other = tiny_generator(seed=5)
    with pytest.raises(ValueError, match="another generator"):
        run("DynodeLoadCodes", file=str(tmp_path / "out" / "clips" / "a_00001.codes.safetensors"), generator=other)
    with pytest.raises(ValueError, match="outside the output folder"):
        run("DynodeSaveCodes", codes=codes, filename_prefix="../escape")


def test_plot_trajectory_is_an_image(codes):
    path = Codes(torch.nn.functional.interpolate(codes.codes.permute(1, 2, 0), size=11, mode="linear",
                                                 align_corners=True).permute(2, 0, 1), torch.linspace(0, 1.25, 11))
    (img,) = run("DynodePlotTrajectory", observed=codes, width=320, height=240, labels="fitted", path_1=path)
    assert img.shape == (1, 240, 320, 3) and img.dtype == torch.float32
    assert float(img.min()) < 0.5 < float(img.max()) <= 1.0
    # the path is drawn in colour (blue), the background is white
    px = img[0].reshape(-1, 3)
    assert ((px[:, 2] - px[:, 0]) > 0.3).sum() > 50


# --- the ComfyUI side of the runtime, with stand-in ComfyUI modules -------------------------------------------------

class _Interrupted(Exception):
    pass


@pytest.fixture
def fake_comfy(tmp_path, monkeypatch):
    state = {"interrupt_after": None, "updates": [], "calls": 0}

    def throw():
        state["calls"] += 1
        if state["interrupt_after"] is not None and state["calls"] > state["interrupt_after"]:
            raise _Interrupted()

    class Bar:
        def __init__(self, total):
            self.total = total

        def update_absolute(self, value, total=None, preview=None):
            state["updates"].append((value, total))

    mm = types.SimpleNamespace(get_torch_device=lambda: torch.device("cpu"), unet_offload_device=lambda: torch.device("cpu"),
                               intermediate_device=lambda: torch.device("cpu"), throw_exception_if_processing_interrupted=throw,
                               free_memory=lambda *a, **k: None)
    utils = types.SimpleNamespace(ProgressBar=Bar)
    models = tmp_path / "models"
    fp = types.SimpleNamespace(models_dir=str(models), folder_names_and_paths={},
                               get_input_directory=lambda: str(tmp_path / "input"),
                               get_output_directory=lambda: str(tmp_path / "output"))

    def get_filename_list(folder):
        paths, exts = fp.folder_names_and_paths[folder]
        return sorted(f for p in paths if os.path.isdir(p) for f in os.listdir(p) if os.path.splitext(f)[1] in exts)

    def get_full_path(folder, name):
        for p in fp.folder_names_and_paths[folder][0]:
            if os.path.isfile(os.path.join(p, name)):
                return os.path.join(p, name)
        return None

    fp.get_filename_list, fp.get_full_path = get_filename_list, get_full_path
    fp.get_folder_paths = lambda folder: list(fp.folder_names_and_paths[folder][0])
    monkeypatch.setattr(_runtime, "_comfy", lambda: (mm, utils, fp))
    state["models"], state["tmp"] = models, tmp_path
    return state


def test_model_folders_progress_and_interruption_in_comfyui(fake_comfy, G, clip):
    models = fake_comfy["models"]
    (models / "stylegan").mkdir(parents=True)
    dc.save_generator(tiny_generator(), models / "stylegan" / "mine.safetensors")
    (models / "stylegan" / "notes.txt").write_text("not a checkpoint")
    names = N["DynodeLoadGenerator"].INPUT_TYPES()["required"]["generator_name"][0]
    assert names == ["builtin", "mine.safetensors"]
    (mine,) = run("DynodeLoadGenerator", generator_name="mine.safetensors")
    assert mine.num_ws == 8

    images, times = clip
    run("DynodeInvert", generator=G, images=images[:3], space="w", steps=4, smoothness=0.0, seed=0)
    done = [v for v, _ in fake_comfy["updates"]]
    assert len(done) >= 4 and done == sorted(done) and done[-1] == fake_comfy["updates"][-1][1]

    fake_comfy["updates"].clear()
    fake_comfy["interrupt_after"] = fake_comfy["calls"] + 3
    with pytest.raises(_Interrupted):
        run("DynodeInvert", generator=G, images=images, space="w", steps=50, smoothness=0.0, seed=0)
    assert len(fake_comfy["updates"]) <= 3, "inversion went on after Cancel"

    (fake_comfy["tmp"] / "output" / "dynode").mkdir(parents=True)
    (fake_comfy["tmp"] / "input").mkdir()
    (fake_comfy["tmp"] / "output" / "dynode" / "x.codes.safetensors").write_bytes(b"")
    (fake_comfy["tmp"] / "input" / "y.codes.safetensors").write_bytes(b"")
    files = N["DynodeLoadCodes"].INPUT_TYPES()["required"]["file"][0]
    assert files == ["y.codes.safetensors", "dynode/x.codes.safetensors [output]"]
    assert _runtime.user_file_path(files[1]) == str(fake_comfy["tmp"] / "output" / "dynode" / "x.codes.safetensors")


def _fit(codes, node_id, **options):
    (spec,) = run(node_id, **{**_defaults(node_id), "iterations": 15, **options})
    (dyn,) = run("DynodeFitDynamics", codes=codes, spec=spec, seed=0)
    return dyn


def test_sde_seeds_and_cde_motion_transfer(codes):
    (times,) = run("DynodeSampleTimes", codes=codes, factor=3, extrapolate=0.0, extra_times="")
    sde = _fit(codes, "DynodeNeuralSDE")
    (a,) = run("DynodeSampleTrajectory", dynamics=sde, times=times, seed=1, mode="auto")
    (b,) = run("DynodeSampleTrajectory", dynamics=sde, times=times, seed=1, mode="auto")
    (c,) = run("DynodeSampleTrajectory", dynamics=sde, times=times, seed=2, mode="auto")
    assert torch.equal(a.codes, b.codes) and not torch.allclose(a.codes, c.codes)
    assert torch.allclose(a.codes[::3], codes.codes, atol=1e-4), "SDE samples leave the keyframes"

    cde = _fit(codes, "DynodeNeuralCDE")
    (own,) = run("DynodeSampleTrajectory", dynamics=cde, times=times, seed=0, mode="initial value")
    other = Codes(codes.codes.flip(0), codes.times)  # the same clip played backwards drives it
    (moved,) = run("DynodeSampleTrajectory", dynamics=cde, times=times, seed=0, mode="auto", control=other)
    assert moved.codes.shape == own.codes.shape and not torch.allclose(moved.codes, own.codes)
    ode = _fit(codes, "DynodeNeuralODE")
    with pytest.raises(ValueError, match="needs Neural CDE"):
        run("DynodeSampleTrajectory", dynamics=ode, times=times, seed=0, mode="auto", control=other)


def test_fit_errors_reach_the_user(codes):
    (spec,) = run("DynodeNeuralODE", **_defaults("DynodeNeuralODE"))
    one = Codes(codes.codes[:1], codes.times[:1])
    with pytest.raises(ValueError, match="2"):
        run("DynodeFitDynamics", codes=one, spec=spec, seed=0)


def test_fit_and_decode_report_progress_and_stop_on_cancel(fake_comfy, G, codes):
    (spec,) = run("DynodeNeuralODE", **{**_defaults("DynodeNeuralODE"), "iterations": 12})
    run("DynodeFitDynamics", codes=codes, spec=spec, seed=0)
    done, total = fake_comfy["updates"][-1]
    assert done == total >= 12 and len(fake_comfy["updates"]) >= 12
    fake_comfy["updates"].clear()
    run("DynodeDecode", generator=G, codes=codes, batch_size=2)
    assert [v for v, _ in fake_comfy["updates"]] == [2, 4, 6]

    (spec,) = run("DynodeNeuralODE", **{**_defaults("DynodeNeuralODE"), "iterations": 500})
    fake_comfy["updates"].clear()
    fake_comfy["interrupt_after"] = fake_comfy["calls"] + 4
    with pytest.raises(_Interrupted):
        run("DynodeFitDynamics", codes=codes, spec=spec, seed=0)
    assert len(fake_comfy["updates"]) <= 4, "fitting went on after Cancel"
    fake_comfy["interrupt_after"] = fake_comfy["calls"] + 1
    with pytest.raises(_Interrupted):
        run("DynodeDecode", generator=G, codes=codes, batch_size=1)


def test_encoder_and_tune_nodes(G, clip, codes):
    images, times = clip
    (enc,) = run("DynodeLoadEncoder", encoder_name="builtin")
    assert (enc.num_ws, enc.w_dim) == (10, 128)
    with pytest.raises(ValueError, match="num_ws"):  # the built-in encoder does not fit the tiny generator
        run("DynodeInvert", generator=G, images=images[:2], space="w+", steps=2, smoothness=0.0, seed=0,
            encoder=enc)
    (c,) = run("DynodeInvert", generator=G, images=images[:2], space="w", steps=2, smoothness=0.0, seed=0,
               start="optimisation only")
    assert c.metadata["inversion"] == "optimisation"
    before = {k: v.clone() for k, v in G.state_dict().items()}
    G2, c2 = run("DynodeTuneGenerator", generator=G, images=images, codes=codes, steps=3, learning_rate=3e-4,
                locality=1.0, seed=0)
    assert G2 is not G and all(torch.equal(v, G.state_dict()[k]) for k, v in before.items())
    assert torch.equal(c2.codes, codes.codes) and c2.generator != codes.generator
    (frames,) = run("DynodeDecode", generator=G2, codes=c2, batch_size=4)
    assert frames.shape == images.shape
