"""The public face: `__all__`, the names that moved (they warn), `Clip`, and the errors module."""

import warnings

import pytest
import torch

import dynode_core as dc
from dynode_core import errors


def test_all_names_exist_and_are_the_pipeline():
    for name in dc.__all__:
        assert hasattr(dc, name), name
    assert len(dc.__all__) == len(set(dc.__all__))
    for old in ("render_clip", "talking_clip", "psnr", "load_factor_encoder", "FACTOR_NAMES", "Inversion", "CodeFile"):
        assert old not in dc.__all__


def test_moved_names_still_work_with_a_deprecation_warning():
    with pytest.warns(DeprecationWarning, match=r"dynode_core.builtin.render_clip"):
        render = dc.render_clip
    assert render is dc.builtin.render_clip
    with pytest.warns(DeprecationWarning, match="moved"):
        assert dc.CodeFile is dc.Clip
    with pytest.warns(DeprecationWarning):
        assert dc.psnr is dc.metrics.psnr
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        dc.nonsense  # noqa: B018


def test_pipeline_names_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in dc.__all__:
            getattr(dc, name)


def test_errors_are_where_they_were():
    from dynode_core.checkpoints import CheckpointError
    from dynode_core.decoding import Cancelled

    assert CheckpointError is errors.CheckpointError is dc.CheckpointError
    assert Cancelled is errors.Cancelled is dc.Cancelled
    for cls in (errors.CheckpointError, errors.VideoError, errors.GeneratorMismatch, errors.OutOfRange,
                errors.MissingEntry):
        assert issubclass(cls, ValueError)  # input errors: the CLI reports them in one line
    assert issubclass(errors.OutOfRange, IndexError) and issubclass(errors.MissingEntry, KeyError)
    assert str(errors.MissingEntry("no entry 'x'")) == "no entry 'x'"  # not quoted like a KeyError


def test_clip_shapes_defaults_and_checks():
    clip = dc.Clip(torch.zeros(4, 3, 8, dtype=torch.float64), [0, 0.5, 1, 1.5], {"fps": 2.0})
    assert len(clip) == 4 and clip.codes.dtype == torch.float32 and clip.times.dtype == torch.float32
    assert clip.space == "w+" and clip.generator is None and clip.identity == {}
    w = dc.Clip(torch.zeros(3, 8))
    assert w.codes.shape == (3, 1, 8) and w.space == "w" and torch.equal(w.times, torch.arange(3.0))
    with pytest.raises(ValueError, match="one entry per code"):
        dc.Clip(torch.zeros(3, 1, 8), torch.arange(4.0))
    with pytest.raises(ValueError, match=r"\[T, L, D\]"):
        dc.Clip(torch.zeros(8))
    with pytest.raises(TypeError, match="torch.Tensor"):
        dc.Clip([[0.0]])
    codes, times, meta = clip  # unpacks like the old load_codes result
    assert codes is clip.codes and meta == {"fps": 2.0}
    first = clip.select(0)
    assert len(first) == 1 and float(first.times[0]) == 0 and first.metadata == clip.metadata
    assert float(clip.select(-1).times[0]) == 1.5
    assert len(clip.select(torch.tensor([True, False, True, False]))) == 2
    moved = clip.with_codes(clip.codes + 1)
    assert moved.metadata == clip.metadata and float(moved.codes.mean()) == 1.0
    with pytest.raises(TypeError, match="unknown field"):
        clip.replace(fps=3)


def _tiny(seed):
    torch.manual_seed(seed)
    return dc.Generator(8, z_dim=16, w_dim=16, n_mlp=2, channels={4: 16, 8: 16}).eval()


def test_clip_identity_travels_through_save_and_load(tmp_path):
    G = _tiny(0)
    clip = dc.Clip(torch.randn(3, G.num_ws, 16), torch.tensor([0.0, 0.25, 0.5]), {"fps": 4.0}).stamped(G)
    assert clip.generator == dc.codes.generator_fingerprint(G) and clip.identity["num_ws"] == str(G.num_ws)
    path = dc.save_codes(tmp_path / "c.safetensors", clip)
    back = dc.load_codes(path, G)
    assert isinstance(back, dc.Clip) and back.generator == clip.generator
    assert torch.equal(back.codes, clip.codes) and torch.equal(back.times, clip.times)
    assert back.metadata["fps"] == "4.0" and back.metadata["format"] == "dynode-codes/1"
    # the old call shape writes the same file
    dc.save_codes(tmp_path / "old.safetensors", clip.codes, clip.times, G=G, metadata={"fps": 4.0})
    assert dc.load_codes(tmp_path / "old.safetensors", G).metadata == back.metadata
    with pytest.raises(TypeError, match="takes the times from the clip"):
        dc.save_codes(tmp_path / "x.safetensors", clip, clip.times)
    with pytest.raises(dc.GeneratorMismatch, match="another generator"):
        dc.load_codes(path, _tiny(1))


def test_cli_reports_input_errors_in_one_line_but_bugs_as_tracebacks(tmp_path, monkeypatch, capsys):
    from dynode_core import cli

    codes = dc.save_codes(tmp_path / "c.safetensors", torch.zeros(3, 10, 128))
    # a user mistake deep in the library (a component index out of range) is one line, exit 2
    assert cli.main(["edit", str(codes), "--direction", "smile", "--index", "9", "--strength", "1",
                     "--mode", "all", "--out", str(tmp_path / "e.safetensors"), "-q"]) == 2
    assert "error:" in capsys.readouterr().err

    def buggy(args):
        return {}["missing"]  # a KeyError from our own code is a bug, not the user's mistake

    real = cli.build_parser

    def parser():
        p = real()
        for action in p._subparsers._group_actions:
            action.choices["edit"].set_defaults(func=buggy)
        return p

    monkeypatch.setattr(cli, "build_parser", parser)
    with pytest.raises(KeyError):
        cli.main(["edit", str(codes), "--direction", "smile", "--strength", "1", "--mode", "all",
                  "--out", str(tmp_path / "e2.safetensors"), "-q"])


def test_comfyui_requirements_match_the_package_dependencies():
    """requirements.txt (what a ComfyUI user installs; ComfyUI brings torch) must not fall behind pyproject."""
    import pathlib
    import tomllib

    root = pathlib.Path(__file__).resolve().parents[1]
    deps = tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]
    reqs = [line.strip() for line in (root / "requirements.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    assert sorted(d for d in deps if not d.startswith("torch>") and not d.startswith("torch=")) == sorted(reqs)


def test_package_data_ships_every_asset():
    import pathlib
    import tomllib

    root = pathlib.Path(__file__).resolve().parents[1]
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["dynode_core"]
    assets = [p for p in (root / "dynode_core" / "assets").rglob("*") if p.is_file()]
    shipped = {p for pat in patterns for p in (root / "dynode_core").glob(pat) if p.is_file()}
    assert assets and set(assets) <= shipped, sorted(set(map(str, assets)) - set(map(str, shipped)))
