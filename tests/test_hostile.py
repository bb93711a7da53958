"""Hostile and careless command lines: every one must exit 2 with at most 3 lines on stderr, no traceback,
nothing executed, and no pre-existing file changed. Crafted files come from tests/hostile_files.py."""

from __future__ import annotations

import os
import re
import shutil

import pytest
import torch

import dynode_core as dc
from dynode_core.cli import main
from dynode_core.codes import generator_fingerprint

from hostile_files import make_all, tree_hash

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    files = root / "files"
    victim = root / "PWNED"
    f = make_all(files, victim)
    G = dc.load_generator("builtin")
    g = torch.Generator().manual_seed(0)
    codes = G.mapping(torch.randn(4, G.z_dim, generator=g)).detach()[:, None]
    dc.save_codes(files / "codes.safetensors", codes, torch.arange(4.0) / 4, G=G)
    other = dc.save_codes(files / "other_gen_codes.safetensors", codes, torch.arange(4.0) / 4,
                          metadata={"generator": "0123456789abcdef", "w_dim": str(G.w_dim), "num_ws": str(G.num_ws)})
    dyn = dc.fit_dynamics(torch.arange(4.0) / 4, codes, iterations=2)
    dyn.metadata = {"generator": generator_fingerprint(G), "w_dim": str(G.w_dim), "num_ws": str(G.num_ws)}
    dyn.save(files / "dyn.safetensors")
    dc.write_video(files / "clip.gif", dc.decode(G, codes), fps=4)
    (files / "existing.safetensors").write_bytes(b"precious")
    (files / "existing.gif").write_bytes(b"precious gif")
    (files / "a_file").write_bytes(b"i am a file")
    os.mkfifo(files / "fifo.gif")  # reading it would block forever
    (files / "frames").mkdir()
    (files / "frames" / "holiday.jpg").write_bytes(b"user photo")
    (files / "frames" / "frame_000000.png").write_bytes(b"old frame")
    f.update({k: files / k for k in ("codes.safetensors", "dyn.safetensors", "clip.gif", "existing.safetensors",
                                     "existing.gif", "a_file", "frames", "fifo.gif")})
    f["other_gen_codes.safetensors"] = other
    return root, files, victim, f


GEN_FILES = ["empty.pt", "random.safetensors", "random.pkl", "truncated.safetensors", "huge_header.safetensors",
             "code.pkl", "code_reduce.pt", "stride0.pkl", "bigger_than_storage.pkl", "negative_shape.pkl",
             "zip_stride0.pt", "zip_overrun.pt", "zip_short_record.pt", "zip_huge_numel.pt", "n_mlp.safetensors",
             "resolution.safetensors", "not_pow2.safetensors", "channels.safetensors", "w_dim.safetensors",
             "config_list.safetensors", "config_garbage.safetensors", "codes.safetensors", "clip.gif", "frames",
             "fifo.gif"]
CLIP_FILES = ["truncated.png", "fifo.gif", "not_a_video.mp4", "not_an_image.gif", "empty.pt", "a_file",
              "codes.safetensors"]
DIRECTION_FILES = ["fifo.gif", "bomb.npz", "truncated.npz", "forged.npy", "truncated_dir.pt", "code_reduce.pt", "empty.pt",
                   "frames", "random.safetensors", "zip_stride0.pt"]
CODE_FILES = ["fifo.gif", "nan_codes.safetensors", "inf_times.safetensors", "no_codes.safetensors", "random.safetensors",
              "empty.pt", "dyn.safetensors", "frames", "truncated.safetensors"]
DYN_FILES = ["dyn_forged.safetensors", "dyn_missing.safetensors", "codes.safetensors", "random.safetensors",
             "empty.pt", "frames"]

CASES = (
    [("convert", "{%s}" % g, "{out}/g.safetensors") for g in GEN_FILES]
    + [("decode", "{%s}" % g, "{codes.safetensors}", "--out", "{out}/v.gif", "--device", "cpu", "-q")
       for g in GEN_FILES[:8]]
    + [("invert", "builtin", "{%s}" % c, "--out", "{out}/c.safetensors", "--steps", "1", "--device", "cpu", "-q")
       for c in CLIP_FILES]
    + [("edit", "{codes.safetensors}", "--direction", "{%s}" % d, "--strength", "1", "--mode", "all",
        "--out", "{out}/e.safetensors") for d in DIRECTION_FILES]
    + [("fit", "{%s}" % c, "--out", "{out}/d.safetensors", "--option", "iterations=1") for c in CODE_FILES]
    + [("decode", "builtin", "{%s}" % c, "--out", "{out}/v.gif", "--device", "cpu", "-q") for c in CODE_FILES]
    + [("sample", "{%s}" % d, "--out", "{out}/s.safetensors") for d in DYN_FILES]
    + [("convert-perceptual", "{%s}" % p, "{out}/p.safetensors") for p in ("code_reduce.pt", "zip_stride0.pt",
                                                                           "random.pkl", "empty.pt", "frames")]
    + [
        # odd numbers
        ("invert", "builtin", "{clip.gif}", "--out", "{out}/c.safetensors", "--fps", "nan"),
        ("invert", "builtin", "{clip.gif}", "--out", "{out}/c.safetensors", "--fps", "inf"),
        ("invert", "builtin", "{clip.gif}", "--out", "{out}/c.safetensors", "--fps", "0"),
        ("invert", "builtin", "{clip.gif}", "--out", "{out}/c.safetensors", "--fps", "-1"),
        ("invert", "builtin", "{clip.gif}", "--out", "{out}/c.safetensors", "--fps", "1e12"),
        ("invert", "builtin", "{clip.gif}", "--out", "{out}/c.safetensors", "--max-frames", "-1"),
        ("invert", "builtin", "{clip.gif}", "--out", "{out}/c.safetensors", "--max-frames", "0"),
        ("invert", "builtin", "{clip.gif}", "--out", "{out}/c.safetensors", "--max-frames", "1e9"),
        ("invert", "builtin", "{clip.gif}", "--out", "{out}/c.safetensors", "--smoothness", "-1"),
        ("invert", "builtin", "{clip.gif}", "--out", "{out}/c.safetensors", "--steps", "1e300"),
        ("invert", "builtin", "{clip.gif}", "--out", "{out}/c.safetensors", "--every", "0"),
        ("invert", "builtin", "{clip.gif}", "--out", "{out}/c.safetensors", "--batch-size", "0"),
        ("invert", "builtin", "{clip.gif}", "--out", "{out}/c.safetensors", "--perceptual", "{code_reduce.pt}"),
        ("invert", "builtin", "{clip.gif}", "--out", "{out}/c.safetensors", "--perceptual", "{zip_stride0.pt}"),
        ("invert", "builtin", "{clip.gif}", "--out", "{out}/c.safetensors", "--perceptual", "{frames}"),
        ("invert", "builtin", "{clip.gif}", "--out", "{out}/c.txt"),
        ("invert", "builtin", "{clip.gif}", "--out", "{a_file}/c.safetensors"),
        ("invert", "builtin", "{clip.gif}", "--out", "{existing.safetensors}"),
        ("invert", "builtin", "{clip.gif}", "--out", "{frames}"),
        ("invert", "builtin", "{clip.gif}", "--out", "{out}/c.safetensors", "--device", "cuda"),
        ("invert", "builtin", "{clip.gif}", "--out", "{out}/c.safetensors", "--device", "tpu"),
        ("edit", "{codes.safetensors}", "--direction", "smile", "--strength", "nan", "--mode", "all", "--out", "{out}/e.safetensors"),
        ("edit", "{codes.safetensors}", "--direction", "smile", "--strength", "inf", "--mode", "all", "--out", "{out}/e.safetensors"),
        ("edit", "{codes.safetensors}", "--direction", "smile", "--strength", "1", "--layers", "5:2", "--mode", "all", "--out", "{out}/e.safetensors"),
        ("edit", "{codes.safetensors}", "--direction", "smile", "--strength", "1", "--layers", "99", "--mode", "all", "--out", "{out}/e.safetensors"),
        ("edit", "{codes.safetensors}", "--direction", "smile", "--strength", "1", "--layers", "a:b", "--mode", "all", "--out", "{out}/e.safetensors"),
        ("edit", "{codes.safetensors}", "--direction", "smile", "--strength", "1", "--index", "99", "--mode", "all", "--out", "{out}/e.safetensors"),
        ("edit", "{codes.safetensors}", "--direction", "no_such_direction", "--strength", "1", "--mode", "all", "--out", "{out}/e.safetensors"),
        ("edit", "{codes.safetensors}", "--direction", "smile", "--strength", "1", "--out", "{out}/e.safetensors"),
        ("edit", "{other_gen_codes.safetensors}", "--direction", "smile", "--strength", "1", "--dynamics", "{dyn.safetensors}", "--out", "{out}/e.safetensors"),
        ("edit", "{codes.safetensors}", "--direction", "smile", "--strength", "1", "--mode", "all", "--out", "{codes.safetensors}", "--overwrite"),
        ("sample", "{dyn.safetensors}", "--out", "{out}/s.safetensors", "--factor", "1000000"),
        ("sample", "{dyn.safetensors}", "--out", "{out}/s.safetensors", "--factor", "0"),
        ("sample", "{dyn.safetensors}", "--out", "{out}/s.safetensors", "--extrapolate", "1e9"),
        ("sample", "{dyn.safetensors}", "--out", "{out}/s.safetensors", "--extrapolate", "-1"),
        ("sample", "{dyn.safetensors}", "--out", "{out}/s.safetensors", "--extrapolate", "nan"),
        ("sample", "{dyn.safetensors}", "--out", "{out}/s.safetensors", "--times", ",".join(["1"] * 100000)),
        ("sample", "{dyn.safetensors}", "--out", "{out}/s.safetensors", "--times", "0,nan"),
        ("sample", "{dyn.safetensors}", "--out", "{out}/s.safetensors", "--times", "0,x"),
        ("sample", "{dyn.safetensors}", "--out", "{out}/s.safetensors", "--codes", "{other_gen_codes.safetensors}"),
        ("sample", "{dyn.safetensors}", "--out", "{out}/s.safetensors", "--z0", "{other_gen_codes.safetensors}"),
        ("sample", "{dyn.safetensors}", "--out", "{dyn.safetensors}", "--overwrite"),
        ("sample", "{dyn.safetensors}", "--out", "{existing.safetensors}"),
        ("fit", "{codes.safetensors}", "--out", "{codes.safetensors}"),
        ("fit", "{codes.safetensors}", "--out", "{codes.safetensors}", "--overwrite"),
        ("fit", "{codes.safetensors}", "--out", "{out}/d.safetensors", "--option", "hidden=100000"),
        ("fit", "{codes.safetensors}", "--out", "{out}/d.safetensors", "--option", "iterations=1e12"),
        ("fit", "{codes.safetensors}", "--out", "{out}/d.safetensors", "--option", "lr=abc"),
        ("fit", "{codes.safetensors}", "--out", "{out}/d.safetensors", "--option", "lr=NaN"),
        ("fit", "{codes.safetensors}", "--out", "{out}/d.safetensors", "--option", "foo=1"),
        ("fit", "{codes.safetensors}", "--out", "{out}/d.safetensors", "--option", "noequals"),
        ("fit", "{codes.safetensors}", "--out", "{out}/d.safetensors", "--option", "step=1e-12"),
        ("fit", "{codes.safetensors}", "--out", "{out}/d.safetensors", "--option", "rank=[1]"),
        ("fit", "{codes.safetensors}", "--out", "{out}/d.safetensors", "--option", "keyframes=3"),
        ("decode", "builtin", "{other_gen_codes.safetensors}", "--out", "{out}/v.gif"),
        ("decode", "builtin", "{codes.safetensors}", "--out", "{out}/v.gif", "--fps", "0"),
        ("decode", "builtin", "{codes.safetensors}", "--out", "{out}/v.gif", "--fps", "nan"),
        ("decode", "builtin", "{codes.safetensors}", "--out", "{out}/v.gif", "--batch-size", "-3"),
        ("decode", "builtin", "{codes.safetensors}", "--out", "{out}/v.txt"),
        ("decode", "builtin", "{codes.safetensors}", "--out", "{existing.gif}"),
        ("decode", "builtin", "{codes.safetensors}", "--out", "{frames}"),
        ("decode", "builtin", "{codes.safetensors}", "--out", "{frames}", "--overwrite"),
        ("convert", "builtin", "{existing.safetensors}"),
        ("convert", "{codes.safetensors}", "{codes.safetensors}", "--overwrite"),
        ("convert", "{out}/missing.pkl", "{out}/g.safetensors"),
        ("demo", "--out", "{a_file}"),
        ("invert", "builtin", "{clip.gif}", "--out", "{out}/c.safetensors", "--encoder", "{code_reduce.pt}", "-q"),
        ("invert", "builtin", "{clip.gif}", "--out", "{out}/c.safetensors", "--encoder", "{zip_stride0.pt}", "-q"),
        ("invert", "builtin", "{clip.gif}", "--out", "{out}/c.safetensors", "--encoder", "{frames}", "-q"),
        ("tune", "builtin", "{clip.gif}", "--out", "{existing.safetensors}"),
        ("tune", "builtin", "{clip.gif}", "--out", "{out}/g.safetensors", "--lr", "nan"),
        ("tune", "builtin", "{clip.gif}", "--out", "{out}/g.safetensors", "--tune-steps", "0"),
        ("tune", "builtin", "{clip.gif}", "--out", "{out}/g.safetensors", "--codes", "{other_gen_codes.safetensors}", "-q"),
        ("tune", "builtin", "{fifo.gif}", "--out", "{out}/g.safetensors", "-q"),
        ("video", "{not_a_video.mp4}", "--out", "{out}/o.mp4", "-q"),
        ("video", "{empty.pt}", "--out", "{out}/o.mp4", "-q"),
        ("video", "{not_a_video.mp4}", "--out", "{existing.gif}"),
        ("video", "{not_a_video.mp4}", "--out", "{not_a_video.mp4}", "--overwrite"),
        ("video", "{not_a_video.mp4}", "--out", "{out}/o.mp4", "--factor", "0"),
        ("video", "{not_a_video.mp4}", "--out", "{out}/o.mp4", "--factor", "1e9"),
        ("video", "{not_a_video.mp4}", "--out", "{out}/o.mp4", "--max-frames", "-1"),
        ("video", "{not_a_video.mp4}", "--out", "{out}/o.mp4", "--steps", "nan"),
        ("video", "{not_a_video.mp4}", "--out", "{out}/o.mp4", "--seed", "-5"),
        ("video", "{not_a_video.mp4}", "--out", "{out}/o.mp4", "--generator", "{code.pkl}", "-q"),
        ("video", "{not_a_video.mp4}", "--out", "{out}/o.mp4", "--edit", "smile:nan", "-q"),
        ("nosuchcommand",),
        ("invert",),
        ("sample", "{dyn.safetensors}", "--out", "{out}/s.safetensors", "--bogus"),
    ]
)


def _argv(case, f, out):
    subs = {k: str(v) for k, v in f.items()}
    subs["out"] = str(out)
    return [re.sub(r"\{([^{}]+)\}", lambda m: subs[m.group(1)], a) for a in case]


@pytest.mark.parametrize("case", CASES, ids=[" ".join(c)[:70] for c in CASES])
def test_hostile_command_exits_2_in_one_line(case, world, tmp_path, capsys):
    root, files, victim, f = world
    before = tree_hash(files)
    argv = _argv(case, f, tmp_path)
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse
        rc = e.code
    err = capsys.readouterr().err
    lines = [ln for ln in err.replace("\r", "\n").splitlines() if ln.strip()]
    assert rc == 2, (argv, err)
    assert len(lines) <= 3, err
    assert "Traceback" not in err
    assert not victim.exists(), "a crafted file ran code"
    assert tree_hash(files) == before, "a pre-existing file changed"
    leftovers = [p.name for p in list(files.rglob("*")) + list(tmp_path.rglob("*")) if ".dynode-tmp-" in p.name]
    assert not leftovers


def test_real_bugs_keep_their_traceback(world, tmp_path, monkeypatch):
    """A KeyError from our own code is a bug: exit 1 with a traceback (here: raised by a patched command)."""
    import dynode_core.cli as cli

    def boom(args):
        raise KeyError("rank")
    root, files, victim, f = world
    monkeypatch.setattr(cli, "cmd_fit", boom)
    with pytest.raises(KeyError):
        main(["fit", str(f["codes.safetensors"]), "--out", str(tmp_path / "d.safetensors")])


def test_overwrite_flag_allows_replacing(world, tmp_path):
    root, files, victim, f = world
    out = tmp_path / "e.safetensors"
    out.write_bytes(b"old")
    args = ["edit", str(f["codes.safetensors"]), "--direction", "smile", "--strength", "1", "--mode", "all",
            "--out", str(out), "-q"]
    assert main(args) == 2 and out.read_bytes() == b"old"
    assert main(args + ["--overwrite"]) == 0 and dc.load_codes(out).codes.shape[:2] == (4, 1)


def test_force_accepts_mismatched_stamps(world, tmp_path):
    root, files, victim, f = world
    out = tmp_path / "s.safetensors"
    args = ["sample", str(f["dyn.safetensors"]), "--out", str(out), "--z0", str(f["other_gen_codes.safetensors"]), "-q"]
    assert main(args) == 2 and not out.exists()
    assert main(args + ["--force"]) == 0
    # without --z0 the output carries the dynamics file's own stamp
    out2 = tmp_path / "s2.safetensors"
    assert main(["sample", str(f["dyn.safetensors"]), "--out", str(out2), "-q"]) == 0
    G = dc.load_generator("builtin")
    assert dc.load_codes(out2).metadata["generator"] == generator_fingerprint(G)


def test_png_folder_output_is_atomic_and_keeps_user_files(world, tmp_path):
    root, files, victim, f = world
    target = tmp_path / "frames"
    assert main(["decode", "builtin", str(f["codes.safetensors"]), "--out", str(target), "--device", "cpu", "-q"]) == 0
    assert sorted(p.name for p in target.iterdir()) == [f"frame_{i:06d}.png" for i in range(4)]
    short = tmp_path / "short.safetensors"
    dc.save_codes(short, dc.load_codes(f["codes.safetensors"]).codes[:2], G=dc.load_generator("builtin"))
    assert main(["decode", "builtin", str(short), "--out", str(target), "--device", "cpu", "-q"]) == 2
    assert main(["decode", "builtin", str(short), "--out", str(target), "--device", "cpu", "-q", "--overwrite"]) == 0
    assert sorted(p.name for p in target.iterdir()) == ["frame_000000.png", "frame_000001.png"]
    assert not [p for p in tmp_path.iterdir() if ".dynode-tmp-" in p.name]
    shutil.rmtree(target)
