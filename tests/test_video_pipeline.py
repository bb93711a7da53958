"""MP4 in, MP4 out: video_stream (PyAV) and `dynode video` / dc.video_pipeline.process_video on the scene."""

import warnings

import numpy as np
import pytest
import torch

import dynode_core as dc
from dynode_core import builtin
from dynode_core.metrics import psnr
from dynode_core.video import frames_from_uint8, frames_to_uint8
from dynode_core import alignment
from dynode_core.cli import main
from dynode_core.builtin import scene_clip
from dynode_core.video_pipeline import output_times, process_video, source_background
from dynode_core.video_stream import VideoError, VideoReader, VideoWriter

av = pytest.importorskip("av")
needs_faces = pytest.mark.skipif(not alignment.faces_available(),
                                 reason="needs the optional extra 'faces' (pip install -e '.[faces]')")


def _with_audio(path, frames, fps):
    """An MP4 with the frames and one second of a sine tone (AAC)."""
    c = av.open(str(path), "w")
    v = c.add_stream("libx264", rate=fps)
    v.width, v.height, v.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
    a = c.add_stream("aac", rate=16000)
    a.layout = "mono"
    for p in frames:
        for pk in v.encode(av.VideoFrame.from_ndarray(p, format="rgb24")):
            c.mux(pk)
    for pk in v.encode():
        c.mux(pk)
    fr = av.AudioFrame.from_ndarray((np.sin(np.arange(16000) / 9) * 0.3).astype(np.float32)[None], format="fltp",
                                    layout="mono")
    fr.sample_rate, fr.pts = 16000, 0
    for pk in list(a.encode(fr)) + list(a.encode()):
        c.mux(pk)
    c.close()


def test_reader_writer_round_trip_keeps_fps_audio_and_size(tmp_path):
    pix = frames_to_uint8(scene_clip(torch.arange(6) / 6.0, size=(48, 64), face=32)).numpy()
    src = tmp_path / "src.mp4"
    _with_audio(src, pix, 6)
    with VideoReader(src) as r:
        assert r.fps == 6 and r.has_audio and r.size == (48, 64)
        chunks = list(r.chunks(4))
    assert [len(c[0]) for c in chunks] == [4, 2]
    times = np.concatenate([c[1] for c in chunks])
    assert np.allclose(times, np.arange(6) / 6.0, atol=1e-3)
    out = tmp_path / "out.mp4"
    with VideoWriter(out, 12, audio_from=src) as w:
        w.write(np.repeat(pix, 2, 0))
    with VideoReader(out) as r:
        assert r.fps == 12 and r.has_audio
        back, _ = r.read()
    assert back.shape == (12, 48, 64, 3)
    assert np.abs(back[::2].astype(int) - pix).mean() < 4  # H.264 at crf 18


def test_bad_videos_raise_video_error(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 10)
    with pytest.raises(VideoError, match="not a video"):
        VideoReader(junk)
    with pytest.raises(ValueError):
        dc.read_video(junk)
    # an interrupted write leaves nothing under the name asked for
    out = tmp_path / "partial.mp4"
    with pytest.raises(RuntimeError):
        with VideoWriter(out, 8) as w:
            w.write(np.zeros((2, 16, 16, 3), np.uint8))
            raise RuntimeError("stop")
    assert not out.exists() and not list(tmp_path.glob(".partial*"))


def test_output_grid_and_nearest_background():
    t = torch.tensor([0.0, 0.25, 0.5])
    g = output_times(t, 4.0, 4)
    assert len(g) == 9 and torch.allclose(g[-1], torch.tensor(0.5))
    assert source_background(t, g).tolist() == [0, 0, 0, 1, 1, 1, 1, 2, 2]


def test_cli_video_refuses_bad_input_in_one_line(tmp_path, capsys):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 100)
    assert main(["video", str(junk), "--out", str(tmp_path / "o.mp4"), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not a video" in err
    existing = tmp_path / "exists.mp4"
    existing.write_bytes(b"keep me")
    assert main(["video", str(junk), "--out", str(existing), "-q"]) == 2
    assert "--overwrite" in capsys.readouterr().err and existing.read_bytes() == b"keep me"
    assert main(["video", str(junk), "--out", str(tmp_path / "o.mp4"), "--edit", "smile", "-q"]) == 2
    capsys.readouterr()
    # fit options are checked before the video is read; a valid one gets as far as the video
    assert main(["video", str(junk), "--out", str(tmp_path / "o.mp4"), "--option", "bogus=1", "-q"]) == 2
    assert "bogus" in capsys.readouterr().err
    assert main(["video", str(junk), "--out", str(tmp_path / "o.mp4"), "--option", "between=sometimes", "-q"]) == 2
    assert "between" in capsys.readouterr().err
    assert main(["video", str(junk), "--out", str(tmp_path / "o.mp4"), "--option", "between=spline", "-q"]) == 2
    assert "not a video" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["video", "--help"])
    assert "--factor" in capsys.readouterr().out


@needs_faces
def test_process_video_on_the_scene(tmp_path, one_thread):
    times = torch.arange(6) / 4.0
    frames = scene_clip(times, size=(96, 128), face=64)
    src = tmp_path / "scene.mp4"
    _with_audio(src, frames_to_uint8(frames).numpy(), 4)
    out = tmp_path / "out.mp4"
    G = dc.load_generator("builtin")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = process_video(src, out, G, factor=2, invert_options={"steps": 20, "warm_steps": 4},
                                fit_options={"iterations": 3, "neural": False})
    assert summary["frames_out"] == 11 and summary["fps_out"] == 8 and summary["faces_found"] == 6
    with VideoReader(out) as r:
        assert r.fps == 8 and r.has_audio
        result, _ = r.read()
    assert result.shape == (11, 96, 128, 3)
    src_pix = frames_to_uint8(frames).numpy().astype(int)
    # the corners of the frame are far from the face: the (static) background comes back as it went in
    for k in (0, 1, 4):  # source frames and in-between frames alike
        corner = np.abs(result[k, :12, :12].astype(int) - src_pix[k // 2, :12, :12])
        assert corner.mean() < 4
    with pytest.raises(FileExistsError):
        process_video(src, out, G, factor=2)


def test_reanimate_draws_one_sde_path_across_chunks(one_thread):
    # The SDE is sampled once for the whole output grid: chunk by chunk it would draw a new path per chunk.
    from dynode_core.video_pipeline import reanimate

    G = dc.load_generator("builtin")
    times = torch.arange(4) / 2.0
    codes = builtin.load_factor_encoder()(builtin.talking_clip(times)).detach()[:, None].expand(-1, G.num_ws, -1)
    dyn = dc.fit_dynamics(times, codes.contiguous(), kind="sde", iterations=10)
    size = G.resolution
    eye = torch.eye(3).expand(len(times), 3, 3).clone()
    faces = alignment.AlignedFaces(None, eye, torch.ones(len(times), dtype=torch.bool), size, (size, size),
                                   alignment.FRAMINGS["builtin"])
    grid = output_times(times, 2.0, 4)
    frames = torch.zeros(3, size, size)
    crops = torch.cat([c for _, c in reanimate(G, dyn, faces, times, grid, lambda i: frames, seed=3, chunk=3)])
    whole = dc.decode(G, dyn.sample(grid, seed=3)).cpu()
    assert torch.allclose(crops, whole, atol=1e-5)
