"""The `dynode` command: smoke runs with tiny settings and clear errors for bad input."""

import json
import pytest
import torch

import dynode_core as dc
from dynode_core.cli import main
from dynode_core.stylegan2 import Generator


pytestmark = pytest.mark.usefixtures("one_thread")


def _tiny(seed):
    torch.manual_seed(seed)
    G = Generator(16, z_dim=16, w_dim=16, n_mlp=1, channels={4: 16, 8: 16, 16: 8}).eval()
    G.estimate_w_avg(500)
    return G


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Two tiny generators saved as checkpoints, and a GIF made by the first one."""
    d = tmp_path_factory.mktemp("cli")
    G, other = _tiny(0), _tiny(1)
    dc.save_generator(G, d / "g.safetensors")
    dc.save_generator(other, d / "other.safetensors")
    ws = torch.lerp(*G.mapping(torch.randn(2, 16, generator=torch.Generator().manual_seed(0))).detach(),
                    torch.linspace(0, 1, 6)[:, None])
    dc.write_video(d / "clip.gif", dc.decode(G, ws).clamp(-1, 1), fps=5)  # 200 ms: exact in GIF units
    return d


def run(*args):
    return main([str(a) for a in args])


def test_tune_writes_a_new_generator(files, tmp_path, capsys):
    codes, tuned = tmp_path / "codes.safetensors", tmp_path / "tuned.safetensors"
    assert run("invert", files / "g.safetensors", files / "clip.gif", "--out", codes, "--steps", 8,
               "--encoder", "none", "--device", "cpu", "-q") == 0
    assert dc.load_codes(codes).metadata["inversion"] == "optimisation"
    before = (files / "g.safetensors").read_bytes()
    assert run("tune", files / "g.safetensors", files / "clip.gif", "--codes", codes, "--out", tuned,
               "--tune-steps", 3, "--device", "cpu", "-q") == 0
    G2 = dc.load_generator(tuned)
    assert G2.num_ws == 6 and (files / "g.safetensors").read_bytes() == before
    assert run("tune", files / "g.safetensors", files / "clip.gif", "--codes", codes, "--out", tuned,
               "--tune-steps", 3, "--device", "cpu", "-q") == 2  # no silent overwrite
    assert "--overwrite" in capsys.readouterr().err
    assert run("tune", files / "g.safetensors", files / "clip.gif", "--codes", codes, "--every", 2, "--out",
               tmp_path / "t2.safetensors", "--device", "cpu", "-q") == 2
    assert "same --every" in capsys.readouterr().err
    assert run("invert", files / "g.safetensors", files / "clip.gif", "--out", tmp_path / "c2.safetensors",
               "--encoder", "builtin", "--device", "cpu", "-q") == 2  # 10 x 128 codes for a 6 x 16 generator
    assert "num_ws" in capsys.readouterr().err


def test_invert_decode_edit_roundtrip(files, tmp_path, capsys):
    codes = tmp_path / "codes.safetensors"
    assert run("invert", files / "g.safetensors", files / "clip.gif", "--out", codes, "--steps", 20,
               "--every", 2, "--device", "cpu", "-q") == 0
    f = dc.load_codes(codes)
    assert f.codes.shape == (3, 6, 16)
    assert torch.allclose(f.times, torch.tensor([0.0, 0.4, 0.8]), atol=1e-3)  # seconds, from the GIF's fps
    assert len(json.loads(f.metadata["psnr"])) == 3
    assert run("decode", files / "g.safetensors", codes, "--out", tmp_path / "out.gif", "--device", "cpu",
               "-q") == 0
    frames, fps = dc.read_video(tmp_path / "out.gif")
    assert frames.shape == (3, 3, 16, 16) and fps == pytest.approx(2.5, rel=0.05)
    assert run("decode", files / "g.safetensors", codes, "--out", tmp_path / "png", "--device", "cpu", "-q") == 0
    assert len(list((tmp_path / "png").glob("frame_*.png"))) == 3

    torch.save(torch.randn(16), tmp_path / "dir.pt")
    edited = tmp_path / "edited.safetensors"
    assert run("edit", codes, "--direction", tmp_path / "dir.pt", "--strength", 2, "--mode", "all",
               "--layers", "0:3", "--out", edited, "-q") == 0
    e = dc.load_codes(edited)
    diff = e.codes - f.codes
    assert torch.allclose(diff[:, 3:], torch.zeros_like(diff[:, 3:])) and diff[:, :3].abs().sum() > 0
    assert e.metadata["generator"] == f.metadata["generator"]  # identity carried over to derived files


def test_codes_from_another_generator_are_refused(files, tmp_path, capsys):
    codes = tmp_path / "codes.safetensors"
    G = dc.load_generator(files / "g.safetensors")
    dc.save_codes(codes, torch.randn(2, G.num_ws, G.w_dim), G=G)
    assert run("decode", files / "other.safetensors", codes, "--out", tmp_path / "x.gif", "--device", "cpu") == 2
    assert "another generator" in capsys.readouterr().err
    assert not (tmp_path / "x.gif").exists()
    with pytest.warns(UserWarning, match="another generator"):
        assert run("decode", files / "other.safetensors", codes, "--out", tmp_path / "x.gif", "--device", "cpu",
                   "--force", "-q") == 0
    wrong = tmp_path / "wrong.safetensors"
    dc.save_codes(wrong, torch.randn(2, 4, 16))  # 4 layers: not W (1) and not this generator's W+ (6)
    assert run("decode", files / "g.safetensors", wrong, "--out", tmp_path / "y.gif", "--device", "cpu") == 2
    assert "num_ws" in capsys.readouterr().err


def test_missing_and_bad_files(files, tmp_path, capsys):
    assert run("decode", tmp_path / "nope.safetensors", tmp_path / "c.safetensors", "--out", tmp_path / "o.gif") == 2
    assert "not found" in capsys.readouterr().err
    assert run("invert", files / "g.safetensors", tmp_path / "none.gif", "--out", tmp_path / "c.safetensors") == 2
    assert "not found" in capsys.readouterr().err
    (tmp_path / "junk.safetensors").write_bytes(b"junk" * 10)
    assert run("decode", files / "g.safetensors", tmp_path / "junk.safetensors", "--out", tmp_path / "o.gif",
               "--device", "cpu") == 2
    assert "safetensors" in capsys.readouterr().err
    assert run("edit", tmp_path / "junk.safetensors", "--direction", "x", "--strength", 1,
               "--out", tmp_path / "e.safetensors") == 2
    assert run("convert", tmp_path / "nope.pt", tmp_path / "g2.safetensors") == 2
    assert "not found" in capsys.readouterr().err
    assert run("invert", files / "g.safetensors", files / "clip.gif", "--out", tmp_path / "c.safetensors",
               "--device", "tpu") == 2
    assert "--device" in capsys.readouterr().err


def test_edit_initial_needs_dynamics(files, tmp_path, capsys):
    codes = tmp_path / "codes.safetensors"
    dc.save_codes(codes, torch.randn(3, 6, 16))
    torch.save(torch.randn(16), tmp_path / "dir.pt")
    assert run("edit", codes, "--direction", tmp_path / "dir.pt", "--strength", 1, "--out",
               tmp_path / "e.safetensors") == 2
    assert "--dynamics" in capsys.readouterr().err


def test_convert(files, tmp_path):
    assert run("convert", files / "g.safetensors", tmp_path / "g2.safetensors", "-q") == 0
    G2 = dc.load_generator(tmp_path / "g2.safetensors")
    assert dc.codes.generator_fingerprint(G2) == dc.codes.generator_fingerprint(dc.load_generator(files / "g.safetensors"))


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("demo", "invert", "tune", "fit", "sample", "edit", "decode", "convert"):
        assert cmd in out


needs_dynamics = pytest.mark.skipif(not hasattr(dc, "fit_dynamics"), reason="dynode_core has no fit_dynamics yet")


@needs_dynamics
def test_fit_sample_edit_with_dynamics(tmp_path):
    t = torch.linspace(0, 1, 5)
    base = torch.randn(1, 6, 16, generator=torch.Generator().manual_seed(0))
    vel = torch.randn(1, 6, 16, generator=torch.Generator().manual_seed(1))
    codes = base + t[:, None, None] * vel + 0.1 * torch.sin(3 * t)[:, None, None]
    src = dc.save_codes(tmp_path / "codes.safetensors", codes, t, metadata={"generator": "abc", "num_ws": "6",
                                                                            "w_dim": "16"})
    dyn = tmp_path / "dyn.safetensors"
    assert run("fit", src, "--out", dyn, "--device", "cpu", "--option", "iterations=30", "--option", "neural=false",
               "-q") == 0
    dense = tmp_path / "dense.safetensors"
    assert run("sample", dyn, "--codes", src, "--factor", 4, "--extrapolate", 0.5, "--out", dense, "-q") == 0
    f = dc.load_codes(dense)
    assert f.codes.shape[1:] == (6, 16) and len(f.times) == 17 + 8  # 0.5 s past the end at 0.0625 s spacing
    assert f.metadata["generator"] == "abc"
    assert torch.allclose(f.times[:17], torch.linspace(0, 1, 17), atol=1e-6)
    bare = tmp_path / "bare.safetensors"  # without --codes: the fitted times; the identity the fit carried
    assert run("sample", dyn, "--out", bare, "-q") == 0
    b = dc.load_codes(bare)
    assert torch.allclose(b.times, t) and b.metadata["generator"] == "abc" and b.metadata["num_ws"] == "6"
    # starting from another clip's first code moves the whole path there
    other = dc.save_codes(tmp_path / "other.safetensors", codes + 3.0, t)
    moved = tmp_path / "moved.safetensors"
    assert run("sample", dyn, "--codes", src, "--z0", other, "--out", moved, "-q") == 0
    m = dc.load_codes(moved)
    assert torch.allclose(m.codes[0], codes[0] + 3.0, atol=1e-4)
    pure = tmp_path / "pure.safetensors"
    assert run("sample", dyn, "--codes", src, "--no-keyframes", "--out", pure, "-q") == 0
    p = dc.load_codes(pure)
    assert p.codes.shape == codes.shape and torch.allclose(p.codes[0], codes[0], atol=1e-4)
    torch.save(torch.randn(16), tmp_path / "dir.pt")
    edited = tmp_path / "edited.safetensors"
    assert run("edit", src, "--direction", tmp_path / "dir.pt", "--strength", 1.5, "--dynamics", dyn,
               "--factor", 2, "--out", edited, "-q") == 0
    e = dc.load_codes(edited)
    d = torch.load(tmp_path / "dir.pt")
    assert e.codes.shape == (9, 6, 16) and torch.allclose(e.codes[0], codes[0] + 1.5 * d, atol=1e-4)
    assert run("sample", tmp_path / "missing.safetensors", "--out", moved) == 2


@needs_dynamics
def test_demo_quick(tmp_path):
    if not dc.checkpoints.BUILTIN_GENERATOR.is_file():
        pytest.skip("the built-in generator asset is not in this checkout")
    out = tmp_path / "demo"
    assert run("demo", "--out", out, "--quick", "--device", "cpu", "-q") == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("psnr_dynamics", "psnr_linear", "psnr_keyframes_inversion", "seconds"):
        assert key in metrics
    assert metrics["psnr_dynamics"] > 5 and metrics["psnr_linear"] > 5
    for name in ("comparison.gif", "comparison.webp", "interpolated.gif", "sde_variations.gif",
                 "contact_sheet.png", "trajectory.png", "keyframe_codes.safetensors", "dynamics.safetensors"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    frames, _ = dc.read_video(out / "interpolated.gif")
    n = metrics["frames"]
    assert len(frames) == n["keyframes"] + n["interpolated"] + n["extrapolated"]
    assert not list(out.glob(".*"))  # no temporary files left behind
