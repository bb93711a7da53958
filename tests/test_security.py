"""Library-level defences: bounds before allocation (under a 4 GB address-space cap), streamed decoding,
true-range images, atomic folders, temp-file hygiene, limits raised deliberately, built-in names."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import dynode_core as dc
from dynode_core import _limits
from dynode_core._files import atomic_folder, atomic_write
from dynode_core.video import _FRAME_RE, read_video

HERE = Path(__file__).resolve().parent

_MEMORY_SCRIPT = textwrap.dedent('''
    import resource, sys, json, time
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
    sys.path.insert(0, sys.argv[1])
    from pathlib import Path
    import torch
    torch.set_num_threads(1)
    import dynode_core as dc
    from dynode_core.cli import main
    from hostile_files import make_all
    d = Path(sys.argv[2])
    f = make_all(d, d / "PWNED")
    results = {}
    def read_video_ok(p):
        frames, fps = dc.read_video(p, max_frames=2)
        assert frames.shape[0] == 2, frames.shape
    def run(name, fn):
        t = time.perf_counter()
        try:
            fn()
            results[name] = "no error"
        except (ValueError, OSError) as e:
            results[name] = "refused: " + type(e).__name__
        except BaseException as e:
            results[name] = "FAILED: " + type(e).__name__ + ": " + str(e)[:200]
        results[name] += " %.1fs" % (time.perf_counter() - t)
    for k in ("n_mlp.safetensors", "resolution.safetensors", "channels.safetensors", "w_dim.safetensors",
              "stride0.pkl", "bigger_than_storage.pkl", "zip_stride0.pt", "zip_huge_numel.pt", "zip_short_record.pt"):
        run(k, lambda k=k: dc.load_generator(f[k]))
    run("dyn_forged", lambda: dc.load_dynamics(f["dyn_forged.safetensors"]))
    run("npz bomb", lambda: dc.load_direction(f["bomb.npz"]))
    run("forged npy", lambda: dc.load_direction(f["forged.npy"]))
    run("perceptual stride0", lambda: __import__("dynode_core.perceptual", fromlist=["x"]).load_perceptual_weights(f["zip_stride0.pt"]))
    run("gif fps comment", lambda: read_video_ok(f["fps_bomb.gif"]))
    run("grid factor", lambda: dc.sample_times([0, 1, 2], factor=10**6))
    run("grid extrapolate", lambda: dc.sample_times([0, 1, 2], extrapolate=1e9))
    run("grid times", lambda: dc.sample_times(times=list(range(10**6))))
    run("fit hidden", lambda: dc.fit_dynamics(torch.arange(3.0), torch.zeros(3, 1, 8), hidden=100000, iterations=1))
    print(json.dumps(results))
''')


def test_crafted_files_stay_under_4gb(tmp_path):
    """Every crafted size is refused (or read small) in a process capped at 4 GB of address space."""
    script = tmp_path / "mem.py"
    script.write_text(_MEMORY_SCRIPT)
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, str(script), str(HERE), str(tmp_path / "files")], capture_output=True,
                       text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    import json
    results = json.loads(r.stdout.strip().splitlines()[-1])
    bad = {k: v for k, v in results.items() if v.startswith("FAILED") or (v.startswith("no error") and k != "gif fps comment")}
    assert not bad, bad
    assert results["gif fps comment"].startswith("no error")
    assert not (tmp_path / "files" / "PWNED").exists()
    assert time.perf_counter() - t0 < 120


def test_limits_name_themselves_and_can_be_raised(monkeypatch):
    with pytest.raises(_limits.LimitError, match="DYNODE_MAX_FRAMES"):
        dc.sample_times([0, 1], factor=30000)
    monkeypatch.setenv("DYNODE_MAX_FRAMES", "40000")
    assert len(dc.sample_times([0, 1], factor=30000)) == 30001
    monkeypatch.setenv("DYNODE_MAX_FRAMES", "zero")
    with pytest.raises(_limits.LimitError, match="not a number"):
        dc.sample_times([0, 1], factor=2)


def test_gif_decoding_stops_at_max_frames(tmp_path):
    frames = [Image.new("RGB", (8, 8), (i % 256, 0, 0)) for i in range(2000)]
    frames[0].save(tmp_path / "long.gif", save_all=True, append_images=frames[1:], duration=40, loop=0)
    t = time.perf_counter()
    clip, fps = read_video(tmp_path / "long.gif", max_frames=2)
    fast = time.perf_counter() - t
    t = time.perf_counter()
    full, _ = read_video(tmp_path / "long.gif")
    slow = time.perf_counter() - t
    assert clip.shape[0] == 2 and full.shape[0] == 2000 and fps == 25
    assert fast < slow / 5, (fast, slow)  # only two frames were decoded
    with pytest.raises(_limits.LimitError, match="--max-frames"):
        os.environ["DYNODE_MAX_FRAMES"] = "100"
        try:
            read_video(tmp_path / "long.gif")
        finally:
            del os.environ["DYNODE_MAX_FRAMES"]


def test_gif_comment_cannot_blow_up_frames(tmp_path):
    im = [Image.new("RGB", (8, 8), (i * 100, 0, 0)) for i in range(2)]
    im[0].save(tmp_path / "c.gif", save_all=True, append_images=im[1:], duration=100, loop=0, comment="dynode fps=10000000")
    clip, fps = read_video(tmp_path / "c.gif")
    assert clip.shape[0] == 2 and fps == 10  # the absurd comment is ignored; the durations give 10 fps


def test_16_bit_png_and_float_tiff_keep_their_range(tmp_path):
    ramp = np.linspace(0, 65535, 64, dtype=np.uint16).reshape(8, 8)
    Image.fromarray(ramp).save(tmp_path / "a16.png")
    assert Image.open(tmp_path / "a16.png").mode.startswith("I")
    clip, _ = read_video(tmp_path / "a16.png")
    assert clip.shape == (1, 3, 8, 8)
    assert torch.allclose(clip[0, 0].flatten(), torch.from_numpy(ramp.flatten() / 65535.0 * 2 - 1).float(), atol=1e-4)
    flt = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    Image.fromarray(flt, mode="F").save(tmp_path / "f.tiff")
    clip, _ = read_video(tmp_path / "f.tiff")
    assert abs(float(clip.min()) + 1) < 1e-5 and abs(float(clip.max()) - 1) < 1e-5
    assert float(clip.mean()) == pytest.approx(0.0, abs=1e-4)  # not all white


def test_png_folder_is_replaced_whole_or_not_at_all(tmp_path):
    target = tmp_path / "frames"
    frames = torch.zeros(3, 3, 8, 8)
    dc.write_video(target, frames)
    before = {p.name: p.read_bytes() for p in target.iterdir()}

    def fail_midway(tmp):
        (Path(tmp) / "frame_000000.png").write_bytes(b"new")
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        atomic_folder(target, fail_midway, _FRAME_RE)
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["frames"]  # no temp folder left
    (target / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="notes.txt"):
        dc.write_video(target, frames[:1])
    assert (target / "notes.txt").read_text() == "mine" and len(list(target.iterdir())) == 4


def test_stale_temp_files_of_dead_processes_are_removed(tmp_path):
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    stale = tmp_path / f".out.bin.dynode-tmp-{p.pid}-abc.tmp.bin"
    stale.write_bytes(b"")
    mine = tmp_path / f".out.bin.dynode-tmp-{os.getpid()}-xyz.tmp.bin"
    mine.write_bytes(b"")
    atomic_write(tmp_path / "out.bin", lambda tmp: Path(tmp).write_bytes(b"data"))
    assert (tmp_path / "out.bin").read_bytes() == b"data"
    assert not stale.exists() and mine.exists()  # a live process's temp file is not touched


def test_sigterm_cleans_temp_files(tmp_path):
    """SIGTERM during a write: the CLI's handler raises, the temp file is removed, the target untouched."""
    script = tmp_path / "slow.py"
    script.write_text(textwrap.dedent(f'''
        import sys, time
        sys.argv = ["dynode"]
        from dynode_core import _guard
        from dynode_core._files import atomic_write
        _guard.install_signal_handlers()
        def slow(tmp):
            open(tmp, "wb").write(b"partial")
            print("writing", flush=True)
            time.sleep(30)
        try:
            atomic_write({str(tmp_path / "target.bin")!r}, slow)
        except KeyboardInterrupt:
            sys.exit(130)
    '''))
    (tmp_path / "target.bin").write_bytes(b"original")
    p = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "writing"
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=30) == 130
    assert sorted(x.name for x in tmp_path.iterdir()) == ["slow.py", "target.bin"]
    assert (tmp_path / "target.bin").read_bytes() == b"original"


def test_builtin_direction_not_shadowed_by_a_folder(tmp_path, monkeypatch):
    (tmp_path / "smile").mkdir()
    monkeypatch.chdir(tmp_path)
    d = dc.load_direction("smile")
    assert d.ndim in (1, 2) and torch.isfinite(d).all()
    with pytest.raises(IsADirectoryError):
        dc.load_direction("./smile")


def test_save_codes_refuses_non_finite(tmp_path):
    with pytest.raises(ValueError, match="NaN"):
        dc.save_codes(tmp_path / "c.safetensors", torch.full((2, 1, 4), float("nan")))
    assert not (tmp_path / "c.safetensors").exists()


def test_write_video_rejects_bad_fps(tmp_path):
    for fps in (float("nan"), float("inf"), 0, -1, 1e9):
        with pytest.raises(ValueError):
            dc.write_video(tmp_path / "v.gif", torch.zeros(2, 3, 8, 8), fps=fps)
    assert not list(tmp_path.iterdir())


def test_tensor_layout_checks():
    from dynode_core._limits import check_tensor_layout
    assert check_tensor_layout((2, 3), (3, 1), 0, 6) == 6
    with pytest.raises(ValueError, match="reaches element"):
        check_tensor_layout((2, 3), (3, 1), 1, 6)
    with pytest.raises(ValueError, match="negative"):
        check_tensor_layout((-2, 3), (3, 1), 0, 6)
    with pytest.raises(_limits.LimitError):
        check_tensor_layout((10**6, 10**6), (0, 0), 0, 1)


# --- ComfyUI file inputs -------------------------------------------------------------------------------------

def test_comfy_file_inputs_stay_inside_comfyui_folders(tmp_path, monkeypatch):
    import types
    from comfy_nodes import _runtime
    from comfy_nodes.edit_nodes import LoadDirection

    inp, out, models = tmp_path / "input", tmp_path / "output", tmp_path / "models"
    for d in (inp, out, models / "stylegan_directions"):
        d.mkdir(parents=True)
    secret = tmp_path / "secret.npy"
    np.save(secret, np.ones(128, np.float32))
    (inp / "ok.codes.safetensors").write_bytes(b"x")
    (inp / "link.codes.safetensors").symlink_to(secret)
    fp = types.SimpleNamespace(models_dir=str(models), folder_names_and_paths={},
                               get_input_directory=lambda: str(inp), get_output_directory=lambda: str(out))
    fp.get_filename_list = lambda folder: sorted(os.listdir(fp.folder_names_and_paths[folder][0][0]))
    fp.get_full_path = lambda folder, name: os.path.join(fp.folder_names_and_paths[folder][0][0], name)
    fp.get_folder_paths = lambda folder: list(fp.folder_names_and_paths[folder][0])
    monkeypatch.setattr(_runtime, "_comfy", lambda: (None, None, fp))

    assert _runtime.user_file_path("ok.codes.safetensors") == str(inp / "ok.codes.safetensors")
    for bad in ("../secret.npy", str(secret), "link.codes.safetensors", "../output/../secret.npy [output]",
                "a/../../secret.npy", "x\0y"):
        with pytest.raises(ValueError):
            _runtime.user_file_path(bad)
    for bad in ("../../secret.npy", str(secret)):
        with pytest.raises((ValueError, FileNotFoundError)):
            _runtime.model_path(_runtime.DIRECTION_FOLDER, bad)
    for bad in ("builtin: ../../../secret.npy", f"builtin: {secret}", "builtin: nope"):
        with pytest.raises(ValueError, match="not a built-in direction"):
            LoadDirection().run(bad, -1, False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "smile").mkdir()  # a folder named like a built-in direction does not hide it
    (d,) = LoadDirection().run("builtin: smile", -1, False)
    assert torch.isfinite(d.vector if hasattr(d, "vector") else d[0]).all()


def test_clip_size_is_checked_frame_by_frame(tmp_path, monkeypatch):
    for i in range(5):
        Image.new("RGB", (32, 32), (i * 40, 0, 0)).save(tmp_path / f"f{i}.png")
    assert read_video(tmp_path)[0].shape[0] == 5  # a long default cap does not refuse short clips
    monkeypatch.setenv("DYNODE_MAX_CLIP_ELEMENTS", str(3 * 32 * 32 * 4))
    with pytest.raises(_limits.LimitError, match="5 frames"):
        read_video(tmp_path)
    assert read_video(tmp_path, max_frames=4)[0].shape[0] == 4
