"""Checkpoint formats: DynODE safetensors, rosinality .pt, NVIDIA stylegan2-ada .pkl, and bad files.

Parity fixtures (tests/data, see its README) hold weights of small reference models under their native names and
the w / images the reference code produced; the tests rebuild native `.pt` / `.pkl` files from them in tmp_path.
"""

import argparse
import collections
import json
import os
import pickle
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import dynode_core as dc
from dynode_core import checkpoints as ck
from dynode_core.stylegan2 import Generator

torch.set_num_threads(1)
DATA = Path(__file__).parent / "data"
TOL = 1e-4
DUMMY_SRC = "raise RuntimeError('module_src of a checkpoint must never be executed')\n"


def read_fixture(name):
    with safe_open(str(DATA / name), framework="pt") as f:
        return f.metadata(), {k: f.get_tensor(k) for k in f.keys()}


def max_diff(a, b):
    return (a.float() - b.float()).abs().max().item()


def tiny_generator(seed=0, **kw):
    torch.manual_seed(seed)
    cfg = dict(resolution=32, z_dim=32, w_dim=32, n_mlp=2, channels={4: 32, 8: 32, 16: 16, 32: 16})
    G = Generator(**{**cfg, **kw}).eval()
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise.weight"):
                p.copy_(torch.randn(p.shape) * 0.3)
    G.estimate_w_avg(1000)
    return G


# ----------------------------------------------------------------------------------------------- safetensors


def test_safetensors_round_trip(tmp_path):
    G = tiny_generator(conv_clamp=128.0)
    path = ck.save_generator(G, tmp_path / "g.safetensors", metadata={"note": "hello", "steps": 12})
    H = dc.load_generator(path)
    assert H.config == G.config and H.conv_clamp == 128.0
    assert not H.training and not any(p.requires_grad for p in H.parameters())
    for k, v in G.state_dict().items():
        assert torch.equal(v, H.state_dict()[k]), k
    z = torch.randn(2, G.z_dim)
    with torch.no_grad():
        assert torch.equal(G(z, 0.7), H(z, 0.7))
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    assert meta["format"] == "dynode-stylegan2" and meta["format_version"] == "1"
    assert json.loads(meta["config"]) == G.config
    assert meta["note"] == "hello" and meta["steps"] == "12"
    assert [p.name for p in tmp_path.iterdir()] == ["g.safetensors"], "no temp files left behind"


def test_save_is_atomic(tmp_path, monkeypatch):
    G = tiny_generator()
    path = tmp_path / "g.safetensors"
    ck.save_generator(G, path)
    before = path.read_bytes()

    def broken(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(ck, "save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        ck.save_generator(tiny_generator(seed=1), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["g.safetensors"]


def test_load_device_and_dtype(tmp_path):
    G = tiny_generator()
    path = ck.save_generator(G, tmp_path / "g.safetensors")
    H = dc.load_generator(str(path), device="cpu", dtype=torch.bfloat16)
    assert H.device == torch.device("cpu") and H.input.input.dtype == torch.bfloat16
    z = torch.randn(2, G.z_dim)
    with torch.no_grad():
        ref, out = G(z, 0.7), H(z, 0.7)
    assert out.dtype == torch.bfloat16
    err = (out.float() - ref).abs()
    assert err.mean() < 0.03 * ref.abs().mean() and err.max() < 0.1 * ref.abs().max()


def test_builtin_name(monkeypatch, tmp_path):
    missing = tmp_path / "nowhere" / "builtin_generator.safetensors"
    monkeypatch.setattr(ck, "BUILTIN_GENERATOR", missing)
    with pytest.raises(dc.CheckpointError, match="built-in generator is missing") as e:
        dc.load_generator("builtin")
    assert str(missing) in str(e.value)
    G = tiny_generator()
    monkeypatch.setattr(ck, "BUILTIN_GENERATOR", ck.save_generator(G, tmp_path / "b.safetensors"))
    assert dc.load_generator("builtin").config == G.config


def test_shipped_builtin_asset_if_present():
    if not dc.checkpoints.BUILTIN_GENERATOR.is_file():
        pytest.skip("the built-in generator asset has not been trained/installed yet")
    G = dc.load_generator("builtin")
    assert G.resolution >= 64
    with torch.no_grad():
        img = G(torch.randn(1, G.z_dim))
    assert img.shape == (1, 3, G.resolution, G.resolution) and torch.isfinite(img).all()


# ----------------------------------------------------------------------------------------------- rosinality .pt


@pytest.fixture(scope="module")
def rosinality():
    meta, t = read_fixture("rosinality_tiny.safetensors")
    state = {k[len("g_ema."):]: v for k, v in t.items() if k.startswith("g_ema.")}
    return json.loads(meta["args"]), state, t


def check_rosinality(G, t, latent_avg=True):
    z = t["z"]
    with torch.no_grad():
        assert max_diff(G.mapping(z), t["w"]) < TOL
        img1 = G.synthesis(G.mapping(z)[:, None].expand(-1, G.num_ws, -1), noise_mode="const")
        assert max_diff(img1, t["img_psi1"]) < TOL
        assert max_diff(G.synthesis(t["wplus"], noise_mode="const"), t["img_wplus"]) < TOL
        if latent_avg:
            w = G.mapping(z, truncation_psi=0.7)
            assert max_diff(w, t["w_psi07"]) < TOL
            assert max_diff(G.synthesis(w[:, None].expand(-1, G.num_ws, -1)), t["img_psi07"]) < TOL


def test_rosinality_converted_pt(tmp_path, rosinality):
    args, state, t = rosinality
    path = tmp_path / "converted.pt"
    torch.save({"g_ema": state, "latent_avg": t["latent_avg"]}, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a stored latent_avg means nothing is estimated
        G = dc.load_generator(path)
    assert (G.resolution, G.z_dim, G.w_dim, G.n_mlp) == (args["size"], args["style_dim"], args["style_dim"],
                                                         args["n_mlp"])
    assert G.channels == {int(k): v for k, v in args["channels"].items()}
    assert torch.equal(G.w_avg, t["latent_avg"])
    assert not G.training and not any(p.requires_grad for p in G.parameters())
    check_rosinality(G, t)


def test_rosinality_training_checkpoint(tmp_path, rosinality):
    args, state, t = rosinality
    g = {k: v + 0.01 for k, v in state.items()}  # the non-EMA generator must be ignored
    opt = {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.zeros(3)}},
           "param_groups": [{"lr": 0.002, "betas": (0.0, 0.99), "eps": 1e-8, "params": [0]}]}
    ns = argparse.Namespace(size=args["size"], latent=args["style_dim"], n_mlp=args["n_mlp"], channel_multiplier=1,
                            path="/data/ffhq.lmdb", iter=800000, r1=10.0, ckpt=None, distributed=False, arch="stylegan2")
    path = tmp_path / "050000.pt"
    torch.save({"g": g, "d": {"convs.0.0.weight": torch.randn(4, 3, 1, 1)}, "g_ema": state, "g_optim": opt,
                "d_optim": opt, "args": ns}, path)
    with pytest.warns(UserWarning, match="estimated w_avg as the mean of the mapping network") as rec:
        G = dc.load_generator(path)
    assert rec[0].filename == __file__, "warnings point at the caller"
    check_rosinality(G, t, latent_avg=False)
    # the estimate is a (different-sample) mean of the same mapping network as the reference's latent_avg
    assert max_diff(G.w_avg, t["latent_avg"]) < 0.1 * t["latent_avg"].abs().max()


def test_rosinality_bare_state_dict_and_legacy_serialization(tmp_path, rosinality):
    _, state, t = rosinality
    path = tmp_path / "legacy.pt"
    torch.save({**state, "latent_avg": t["latent_avg"]}, path, _use_new_zipfile_serialization=False)
    G = dc.load_generator(path)
    check_rosinality(G, t)


def test_rosinality_numpy_values(tmp_path, rosinality):
    _, state, t = rosinality
    ns = argparse.Namespace(lr=np.float64(0.002), dtype=np.dtype("float32"), seeds=np.arange(3))
    torch.save({"g_ema": state, "latent_avg": t["latent_avg"].numpy(), "args": ns}, tmp_path / "np.pt")
    G = dc.load_generator(tmp_path / "np.pt")
    check_rosinality(G, t)


def test_rosinality_without_noise_buffers(tmp_path, rosinality):
    _, state, t = rosinality
    state = {k: v for k, v in state.items() if not k.startswith("noises.")}
    torch.save({"g_ema": state, "latent_avg": t["latent_avg"]}, tmp_path / "old.pt")
    with pytest.warns(UserWarning, match="stores no noise buffers") as rec:
        G = dc.load_generator(tmp_path / "old.pt")
    assert rec[0].filename == __file__, "warnings point at the caller"
    with pytest.warns(UserWarning, match="stores no noise buffers"):
        H = dc.load_generator(tmp_path / "old.pt")
    with torch.no_grad():
        assert max_diff(G.mapping(t["z"]), t["w"]) < TOL
        assert torch.equal(G.synthesis(t["wplus"]), H.synthesis(t["wplus"])), "const noise is reproducible"
        assert max_diff(G.synthesis(t["wplus"]), t["img_wplus"]) > 1e-3  # (different noise than the reference's)


# ----------------------------------------------------------------------------------------------- NVIDIA .pkl


class _Obj:
    """Pickles as `fn(*args)`; used to emit the globals real snapshots contain."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


@pytest.fixture
def fake_nvidia(monkeypatch):
    """Stand-in `torch_utils.persistence` / `dnnlib.util` modules, only so `pickle` can *write* the same global
    names real stylegan2-ada-pytorch snapshots reference. The loader never imports them."""

    def _reconstruct_persistent_obj(meta):
        raise AssertionError("only used for writing")

    class EasyDict(dict):
        pass

    persistence = types.ModuleType("torch_utils.persistence")
    _reconstruct_persistent_obj.__module__ = persistence.__name__
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    util = types.ModuleType("dnnlib.util")
    EasyDict.__module__, EasyDict.__qualname__ = util.__name__, "EasyDict"
    util.EasyDict = EasyDict
    torch_utils, dnnlib = types.ModuleType("torch_utils"), types.ModuleType("dnnlib")
    torch_utils.persistence, dnnlib.util = persistence, util
    for mod in (torch_utils, persistence, dnnlib, util):
        monkeypatch.setitem(sys.modules, mod.__name__, mod)
    return types.SimpleNamespace(reconstruct=_reconstruct_persistent_obj, EasyDict=EasyDict)


def _decode(v, fake):
    if isinstance(v, list):
        return [_decode(x, fake) for x in v]
    if not isinstance(v, dict):
        return v
    if "__np__" in v:
        return np.dtype(v["__np__"]).type(v["v"])
    if "__easydict__" in v:
        return fake.EasyDict({k: _decode(x, fake) for k, x in v["__easydict__"].items()})
    if "__odict__" in v:
        return collections.OrderedDict((k, _decode(x, fake)) for k, x in v["__odict__"])
    if "__dict__" in v:
        return {k: _decode(x, fake) for k, x in v["__dict__"].items()}
    if "__set__" in v:
        return set(_decode(v["__set__"], fake))
    if "__tuple__" in v:
        return tuple(_decode(v["__tuple__"], fake))
    raise ValueError(v)


def persistent(fake, class_name, state, src=DUMMY_SRC):
    meta = dict(type="class", version=6, module_src=src, class_name=class_name, state=state)
    return _Obj(fake.reconstruct, meta)


def nvidia_module_tree(fake, structure, tensors, prefix="", src=DUMMY_SRC, edit=None):
    """Rebuild the pickled module tree of a stylegan2-ada-pytorch network from the fixture's description."""
    node = structure[prefix]
    state = _decode(node["attrs"], fake)
    key = lambda name: f"G_ema.{prefix}{'.' if prefix else ''}{name}"
    state["_parameters"] = collections.OrderedDict(
        (n, torch.nn.Parameter(tensors[key(n)].clone(), requires_grad=False)) for n in node["parameters"])
    state["_buffers"] = collections.OrderedDict((n, tensors[key(n)].clone()) for n in node["buffers"])
    state["_modules"] = collections.OrderedDict(
        (n, nvidia_module_tree(fake, structure, tensors, f"{prefix}{'.' if prefix else ''}{n}", src, edit))
        for n in node["modules"])
    class_name = node["class_name"]
    if edit:
        class_name = edit(prefix, class_name, state)
    return persistent(fake, class_name, state, src)


@pytest.fixture(scope="module")
def nvidia():
    meta, t = read_fixture("nvidia_tiny.safetensors")
    return json.loads(meta["structure"]), t


def write_snapshot(path, fake, structure, t, protocol=4, src=DUMMY_SRC, edit=None, keys=("G", "D", "G_ema")):
    G = nvidia_module_tree(fake, structure, t, src=src, edit=edit)
    odict = collections.OrderedDict
    D = persistent(fake, "Discriminator", {"_parameters": odict(w=torch.nn.Parameter(torch.randn(4, 3), False)),
                                           "_buffers": odict(), "_modules": odict(), "_init_kwargs": fake.EasyDict(
                                               c_dim=0, img_resolution=32, block_kwargs=fake.EasyDict())}, src)
    aug = persistent(fake, "AugmentPipe", {"_parameters": odict(), "_buffers": odict(p=torch.zeros([])),
                                           "_modules": odict(), "xflip": 1.0, "rotate90": 1.0}, src)
    snap = {"training_set_kwargs": {"class_name": "training.dataset.ImageFolderDataset", "path": "/data/x.zip",
                                    "use_labels": False, "max_size": 1000, "xflip": False, "resolution": 32}}
    snap.update({k: {"G": G, "D": D, "G_ema": G}[k] for k in keys})
    snap["augment_pipe"] = aug
    data = pickle.dumps(snap, protocol=protocol)
    Path(path).write_bytes(data)
    return data


def check_nvidia(G, t):
    z = t["z"]
    with torch.no_grad():
        assert max_diff(G.mapping(z), t["w"]) < TOL
        w = G.mapping(z, truncation_psi=0.7)
        assert max_diff(w, t["w_psi07"]) < TOL
        assert max_diff(G.synthesis(w[:, None].expand(-1, G.num_ws, -1), noise_mode="const"), t["img_psi07"]) < TOL
        assert max_diff(G.synthesis(t["wplus"], noise_mode="const"), t["img_wplus"]) < TOL
        assert max_diff(G.synthesis(t["wplus"], noise_mode="none"), t["img_wplus_none"]) < TOL


def test_nvidia_pkl_parity(tmp_path, fake_nvidia, nvidia):
    structure, t = nvidia
    path = tmp_path / "network-snapshot-000100.pkl"
    data = write_snapshot(path, fake_nvidia, structure, t)
    assert b"torch_utils.persistence" in data and b"_reconstruct_persistent_obj" in data
    assert b"multiarray" in data, "numpy scalars (weight_gain, act_gain) are part of real snapshots"
    G = dc.load_generator(path)
    kw = structure["synthesis.b4.conv1"]["attrs"]["__dict__"]
    assert G.conv_clamp == kw["conv_clamp"] == 1.5
    assert (G.resolution, G.z_dim, G.w_dim, G.n_mlp) == (32, 16, 16, 2)
    assert G.channels == {4: 16, 8: 16, 16: 16, 32: 8}
    assert torch.equal(G.w_avg, t["G_ema.mapping.w_avg"])
    check_nvidia(G, t)


def test_nvidia_pkl_numpy_1x_and_2x_names(tmp_path, fake_nvidia, nvidia):
    structure, t = nvidia
    # protocol 2 writes globals as text lines, so the numpy module name can be swapped for the other major version's
    data = write_snapshot(tmp_path / "p2.pkl", fake_nvidia, structure, t, protocol=2)
    assert b"c_codecs\nencode\n" in data
    names = [b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n"]
    here, other = names if names[0] in data else names[::-1]
    assert here in data
    swapped = data.replace(here, other)
    for variant, blob in (("installed numpy", data), ("other numpy major version", swapped)):
        p = tmp_path / "variant.pkl"
        p.write_bytes(blob)
        check_nvidia(dc.load_generator(p), t)


def test_nvidia_generator_pickled_alone(tmp_path, fake_nvidia, nvidia):
    structure, t = nvidia
    (tmp_path / "g.pkl").write_bytes(pickle.dumps(nvidia_module_tree(fake_nvidia, structure, t)))
    check_nvidia(dc.load_generator(tmp_path / "g.pkl"), t)


def test_nvidia_without_g_ema_uses_g(tmp_path, fake_nvidia, nvidia):
    structure, t = nvidia
    write_snapshot(tmp_path / "g.pkl", fake_nvidia, structure, t, keys=("G",))
    with pytest.warns(UserWarning, match="no 'G_ema'") as rec:
        G = dc.load_generator(tmp_path / "g.pkl")
    assert rec[0].filename == __file__, "warnings point at the caller"
    check_nvidia(G, t)


def test_nvidia_embedded_source_is_never_run(tmp_path, fake_nvidia, nvidia):
    structure, t = nvidia
    marker = tmp_path / "ran.txt"
    src = f"open({str(marker)!r}, 'w').write('executed')\nimport os\nos.system('touch {marker}')\n"
    write_snapshot(tmp_path / "s.pkl", fake_nvidia, structure, t, src=src)
    check_nvidia(dc.load_generator(tmp_path / "s.pkl"), t)
    assert not marker.exists()


def test_nvidia_missing_w_avg_is_estimated(tmp_path, fake_nvidia, nvidia):
    structure, t = nvidia
    t = {k: v for k, v in t.items()}

    def drop_w_avg(prefix, class_name, state):
        if prefix == "mapping":
            state["_buffers"].pop("w_avg")
        return class_name

    write_snapshot(tmp_path / "n.pkl", fake_nvidia, structure, t, edit=drop_w_avg)
    with pytest.warns(UserWarning, match="no stored truncation centre"):
        G = dc.load_generator(tmp_path / "n.pkl")
    with torch.no_grad():
        assert max_diff(G.mapping(t["z"]), t["w"]) < TOL
        assert max_diff(G.synthesis(t["wplus"]), t["img_wplus"]) < TOL


# ----------------------------------------------------------------------------------------------- convert


def test_convert_checkpoint_pt_and_pkl(tmp_path, fake_nvidia, rosinality, nvidia):
    _, state, rt = rosinality
    torch.save({"g_ema": state, "latent_avg": rt["latent_avg"]}, tmp_path / "r.pt")
    out = dc.convert_checkpoint(tmp_path / "r.pt", tmp_path / "r.safetensors")
    check_rosinality(dc.load_generator(out), rt)
    structure, nt = nvidia
    write_snapshot(tmp_path / "n.pkl", fake_nvidia, structure, nt)
    out = dc.convert_checkpoint(str(tmp_path / "n.pkl"), str(tmp_path / "sub" / "n.safetensors"))
    G = dc.load_generator(out)
    check_nvidia(G, nt)
    assert G.conv_clamp == 1.5
    with safe_open(str(out), framework="pt") as f:
        meta = f.metadata()
    assert meta["source_format"] == "nvidia-stylegan2-ada-pytorch" and meta["source"] == "n.pkl"
    assert meta["w_avg"] == "checkpoint"
    with pytest.raises(dc.CheckpointError, match="onto itself"):
        dc.convert_checkpoint(out, out)


# ----------------------------------------------------------------------------------------------- bad files


def assert_refused(path, *fragments):
    with pytest.raises(dc.CheckpointError) as e:
        dc.load_generator(path)
    msg = str(e.value)
    for frag in fragments:
        assert frag.lower() in msg.lower(), f"{frag!r} not in {msg!r}"
    assert "Supported formats" in msg or "built-in" in msg
    return msg


def test_missing_file_and_directory(tmp_path):
    assert_refused(tmp_path / "nope.pt", "no such file", "nope.pt")
    assert_refused(tmp_path, "directory")
    assert isinstance(dc.CheckpointError("x"), ValueError)


def test_random_empty_and_truncated_files(tmp_path, fake_nvidia, rosinality, nvidia):
    rnd = tmp_path / "random.bin"
    rnd.write_bytes(np.random.default_rng(0).bytes(4096))
    assert_refused(rnd, "unrecognised file contents")
    (tmp_path / "empty.pt").write_bytes(b"")
    assert_refused(tmp_path / "empty.pt", "empty")

    _, state, rt = rosinality
    torch.save({"g_ema": state, "latent_avg": rt["latent_avg"]}, tmp_path / "r.pt")
    blob = (tmp_path / "r.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(blob[: len(blob) // 2])
    assert_refused(tmp_path / "cut.pt", "damaged or truncated PyTorch file")

    structure, nt = nvidia
    blob = write_snapshot(tmp_path / "n.pkl", fake_nvidia, structure, nt)
    (tmp_path / "cut.pkl").write_bytes(blob[: len(blob) // 2])
    assert_refused(tmp_path / "cut.pkl", "truncated")

    G = tiny_generator()
    blob = ck.save_generator(G, tmp_path / "g.safetensors").read_bytes()
    (tmp_path / "cut1.safetensors").write_bytes(blob[:40])
    assert_refused(tmp_path / "cut1.safetensors", "truncated safetensors")
    (tmp_path / "cut2.safetensors").write_bytes(blob[: len(blob) - 100])
    assert_refused(tmp_path / "cut2.safetensors", "damaged or truncated safetensors")


def test_foreign_safetensors_and_pt(tmp_path):
    save_file({"weight": torch.zeros(3)}, str(tmp_path / "other.safetensors"))
    assert_refused(tmp_path / "other.safetensors", "without DynODE generator metadata")
    torch.save({"model": {"weight": torch.zeros(3)}, "epoch": 3}, tmp_path / "other.pt")
    assert_refused(tmp_path / "other.pt", "keys ['epoch', 'model']", "expected 'g_ema'")
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    assert_refused(tmp_path / "tensor.pt", "holding a Tensor")
    torch.save({"g_ema": {"style.1.weight": torch.zeros(4, 4)}}, tmp_path / "partial.pt")
    assert_refused(tmp_path / "partial.pt", "a StyleGAN2 state dict without")


def test_pickles_that_would_run_code_are_refused(tmp_path):
    marker = tmp_path / "pwned"
    cmd = f"touch {marker}"
    for i, blob in enumerate([
        pickle.dumps(_Obj(os.system, cmd)),  # protocol 4, as a malicious snapshot would be written
        f"cos\nsystem\n(S'{cmd}'\ntR.".encode(),  # protocol 0
        b"\x80\x02cbuiltins\neval\nX\x0b\x00\x00\x00print(12345)\x85R.",
    ]):
        p = tmp_path / f"evil{i}.pkl"
        p.write_bytes(blob)
        msg = assert_refused(p, "refused", "never runs code")
        assert "system" in msg or "eval" in msg
    torch.save({"g_ema": {}, "x": _Obj(os.system, cmd)}, tmp_path / "evil.pt")
    assert_refused(tmp_path / "evil.pt", "system", "not allowed")
    assert not marker.exists()


def test_tensorflow_era_pickle(tmp_path):
    # what a TF-era StyleGAN2 network pickle opens with: dnnlib.tflib.network.Network objects
    blob = b"\x80\x04(cdnnlib.tflib.network\nNetwork\n)\x81}b" + b"t."
    (tmp_path / "stylegan2-ffhq-config-f.pkl").write_bytes(blob)
    assert_refused(tmp_path / "stylegan2-ffhq-config-f.pkl", "TensorFlow-era", "dnnlib.tflib.network.Network",
                   "legacy.py")


def test_stylegan3_pickle(tmp_path, fake_nvidia):
    odict = collections.OrderedDict

    def mod(cls, params=(), modules=(), **attrs):
        return persistent(fake_nvidia, cls, {
            **attrs, "_parameters": odict((n, torch.nn.Parameter(torch.zeros(2), False)) for n in params),
            "_buffers": odict(), "_modules": odict(modules)})

    syn = mod("SynthesisNetwork", modules=[("input", mod("SynthesisInput", ["weight"])),
                                           ("L0_36_512", mod("SynthesisLayer", ["weight"]))])
    G = mod("Generator", modules=[("synthesis", syn), ("mapping", mod("MappingNetwork", modules=[
        ("fc0", mod("FullyConnectedLayer", ["weight", "bias"]))]))], z_dim=2, c_dim=0)
    (tmp_path / "sg3.pkl").write_bytes(pickle.dumps({"G": G, "G_ema": G, "D": None}))
    assert_refused(tmp_path / "sg3.pkl", "StyleGAN3")


def test_conditional_and_unsupported_nvidia_variants(tmp_path, fake_nvidia, nvidia):
    structure, t = nvidia

    def conditional(prefix, class_name, state):
        if prefix == "":
            state["c_dim"] = 10
        return class_name

    write_snapshot(tmp_path / "c.pkl", fake_nvidia, structure, t, edit=conditional)
    assert_refused(tmp_path / "c.pkl", "class-conditional", "c_dim=10")

    def resnet(prefix, class_name, state):
        if class_name == "SynthesisBlock":
            state["architecture"] = "resnet"
        return class_name

    write_snapshot(tmp_path / "r.pkl", fake_nvidia, structure, t, edit=resnet)
    assert_refused(tmp_path / "r.pkl", "architecture 'resnet'")

    (tmp_path / "dict.pkl").write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    assert_refused(tmp_path / "dict.pkl", "keys ['weights']", "expected 'G_ema'")
