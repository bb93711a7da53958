"""Image encoders: tiny random-weight pSp / e4e / ReStyle checkpoints in the official layout, built here, and the
built-in encoder. The official networks' math was checked against the reference implementations separately
(docs/encoders.md); these tests check loading, shapes, the feedback loop, and bad input."""

import os
import pickle

import pytest
import torch

import dynode_core as dc
from dynode_core.checkpoints import CheckpointError
from dynode_core.encoders import load_encoder
from dynode_core.encoders.irse import ENCODER_TYPES
from dynode_core.metrics import psnr
from dynode_core.stylegan2 import Generator

pytestmark = pytest.mark.usefixtures("one_thread")

ARCH = {"input_nc": 3, "units": (1, 1, 2, 1), "widths": (16, 32, 48, 64), "stem": 16, "se": True, "n_styles": 6,
        "w_dim": 16}


def _tiny_decoder(seed: int = 0) -> Generator:
    torch.manual_seed(seed)
    return Generator(16, z_dim=16, w_dim=16, n_mlp=2, channels={4: 8, 8: 8, 16: 8})


def _randomise(net: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)


def write_official(path, encoder_type: str, input_nc: int = 3, seed: int = 0, latent_rows: int | None = None,
                   **opts) -> tuple[torch.nn.Module, Generator, torch.Tensor]:
    """An official-layout checkpoint: {'state_dict': {'encoder.*', 'decoder.*'}, 'latent_avg', 'opts'}."""
    torch.manual_seed(seed)
    net = ENCODER_TYPES[encoder_type]({**ARCH, "input_nc": input_nc}).eval()
    _randomise(net, seed)
    G = _tiny_decoder(seed)
    latent_avg = torch.randn(latent_rows or ARCH["n_styles"], ARCH["w_dim"]) * 0.3
    dec = {k: v for k, v in G.state_dict().items() if k != "w_avg"}
    sd = {**{f"encoder.{k}": v for k, v in net.state_dict().items()}, **{f"decoder.{k}": v for k, v in dec.items()}}
    o = {"encoder_type": encoder_type, "input_nc": input_nc, "output_size": 16, "start_from_latent_avg": True,
         "checkpoint_path": None, "lr": 1e-4, **opts}
    torch.save({"state_dict": sd, "latent_avg": latent_avg, "opts": o}, path)
    return net, G, latent_avg


@pytest.fixture
def frames():
    return torch.rand(2, 3, 256, 256, generator=torch.Generator().manual_seed(1)) * 2 - 1


@pytest.mark.parametrize("kind", ["Encoder4Editing", "GradualStyleEncoder", "BackboneEncoderUsingLastLayerIntoW",
                                  "BackboneEncoderUsingLastLayerIntoWPlus"])
def test_single_pass_encoders_add_latent_avg(tmp_path, frames, kind):
    net, _, latent_avg = write_official(tmp_path / "e.pt", kind)
    enc = load_encoder(tmp_path / "e.pt")
    assert (enc.num_ws, enc.w_dim, enc.input_size) == (6, 16, 256)
    codes = enc(frames)
    assert codes.shape == (2, 6, 16) and codes.dtype == torch.float32
    with torch.no_grad():
        raw = net(frames)
    torch.testing.assert_close(codes, raw + latent_avg, rtol=0, atol=1e-6)
    assert (codes[0] - codes[1]).abs().max() > 1e-4  # different images, different codes


def test_e4e_one_code_plus_deltas(tmp_path, frames):
    """With every delta block silenced, e4e gives the same code at every layer (w0 broadcast)."""
    write_official(tmp_path / "e.pt", "Encoder4Editing")
    ckpt = torch.load(tmp_path / "e.pt", weights_only=True)
    for k in ckpt["state_dict"]:
        if k.startswith("encoder.styles.") and not k.startswith("encoder.styles.0.") and "linear" in k:
            ckpt["state_dict"][k].zero_()
    ckpt["latent_avg"] = ckpt["latent_avg"][:1]  # one stored row is repeated for every style
    torch.save(ckpt, tmp_path / "w0.pt")
    codes = load_encoder(tmp_path / "w0.pt")(frames)
    torch.testing.assert_close(codes, codes[:, :1].expand_as(codes), rtol=0, atol=1e-6)


def test_pixel_sizes_and_channels(tmp_path):
    write_official(tmp_path / "e.pt", "GradualStyleEncoder")
    enc = load_encoder(tmp_path / "e.pt")
    x = torch.rand(1, 3, 256, 256) * 2 - 1
    small = torch.nn.functional.interpolate(x, size=(64, 64), mode="area")
    with pytest.warns(UserWarning, match="64x64 but 256x256"):
        assert enc(small).shape == (1, 6, 16)
    assert enc(torch.cat([x, x[:, :1] * 0 + 1], 1)).shape == (1, 6, 16)  # RGBA is composited
    with pytest.raises(ValueError, match=r"\[T, 3, H, W\]"):
        enc(torch.zeros(1, 2, 256, 256))
    with pytest.raises(ValueError, match="NaN"):
        enc(torch.full((1, 3, 256, 256), float("nan")))
    with pytest.raises(ValueError, match="iterations"):
        enc(x, iterations=0)


@pytest.mark.parametrize("kind", ["BackboneEncoder", "ProgressiveBackboneEncoder", "GradualStyleEncoder"])
def test_restyle_feedback_loop(tmp_path, frames, kind):
    net, G, latent_avg = write_official(tmp_path / "r.pt", kind, input_nc=6)
    enc = load_encoder(tmp_path / "r.pt")
    assert enc.iterative and enc.default_iterations == 5
    pool = lambda img: torch.nn.functional.adaptive_avg_pool2d(img, (256, 256))  # noqa: E731
    with torch.no_grad():
        G.w_avg.copy_(latent_avg[0])
        avg_image = pool(G.synthesis(latent_avg[None])).expand(2, -1, -1, -1)
        first = net(torch.cat([frames, avg_image], 1)) + latent_avg
        second = first + net(torch.cat([frames, pool(G.synthesis(first))], 1))
    torch.testing.assert_close(enc(frames, iterations=1), first, rtol=0, atol=1e-5)
    torch.testing.assert_close(enc(frames, iterations=2), second, rtol=0, atol=1e-5)
    assert (enc(frames) - enc(frames, iterations=2)).abs().max() > 1e-4  # 5 passes by default


def test_restyle_without_decoder_is_refused(tmp_path):
    write_official(tmp_path / "r.pt", "BackboneEncoder", input_nc=6)
    ckpt = torch.load(tmp_path / "r.pt", weights_only=True)
    ckpt["state_dict"] = {k: v for k, v in ckpt["state_dict"].items() if k.startswith("encoder.")}
    torch.save(ckpt, tmp_path / "nodec.pt")
    with pytest.raises(CheckpointError, match="decoder"):
        load_encoder(tmp_path / "nodec.pt")


def test_load_generator_reads_the_decoder(tmp_path):
    _, G, latent_avg = write_official(tmp_path / "e.pt", "Encoder4Editing")
    G2 = dc.load_generator(tmp_path / "e.pt")
    assert (G2.resolution, G2.num_ws, G2.w_dim) == (16, 6, 16)
    torch.testing.assert_close(G2.w_avg, latent_avg[0])
    ws = torch.randn(2, 6, 16)
    torch.testing.assert_close(G2.synthesis(ws), G.synthesis(ws), rtol=0, atol=1e-6)


def test_bad_files(tmp_path):
    write_official(tmp_path / "e.pt", "Encoder4Editing")
    ckpt = torch.load(tmp_path / "e.pt", weights_only=True)
    ckpt["opts"]["encoder_type"] = "FancyEncoder"
    torch.save(ckpt, tmp_path / "unknown.pt")
    with pytest.raises(CheckpointError, match="FancyEncoder"):
        load_encoder(tmp_path / "unknown.pt")
    ckpt["opts"]["encoder_type"] = "ResNetBackboneEncoder"
    torch.save(ckpt, tmp_path / "resnet.pt")
    with pytest.raises(CheckpointError, match="ResNet34"):
        load_encoder(tmp_path / "resnet.pt")
    G = _tiny_decoder()
    torch.save({"g_ema": G.state_dict()}, tmp_path / "gen.pt")
    with pytest.raises(CheckpointError, match="no 'encoder"):
        load_encoder(tmp_path / "gen.pt")
    data = (tmp_path / "e.pt").read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="damaged or truncated"):
        load_encoder(tmp_path / "trunc.pt")
    with pytest.raises(CheckpointError, match="no such file"):
        load_encoder(tmp_path / "missing.pt")


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_checkpoint_runs_nothing(tmp_path):
    evil = _Evil()
    evil.marker = tmp_path / "pwned"
    torch.save({"state_dict": {"encoder.x": torch.zeros(1)}, "opts": evil}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="not allowed"):
        load_encoder(tmp_path / "evil.pt")
    with open(tmp_path / "evil.pkl", "wb") as f:
        pickle.dump(evil, f)
    with pytest.raises(CheckpointError):
        load_encoder(tmp_path / "evil.pkl")
    assert not evil.marker.exists()


def test_builtin_encoder_reads_the_face():
    """The built-in encoder's codes draw the frame about as well as the true factors' codes (the oracle)."""
    G = dc.load_generator("builtin")
    enc = load_encoder("builtin")
    assert (enc.num_ws, enc.w_dim, enc.input_size) == (G.num_ws, G.w_dim, 64)
    t = torch.arange(8) / 6.0
    f = dc.builtin.talking_clip(t, seed=3)
    frames = dc.builtin.render_faces(f)
    codes = enc(frames)
    assert codes.shape == (8, G.num_ws, G.w_dim)
    with torch.no_grad():
        rec = G.synthesis(codes)
        oracle = G.synthesis(dc.builtin.load_factor_encoder()(f)[:, None])
    assert psnr(rec, frames).mean() > psnr(oracle, frames).mean() - 1.5
    other = enc(torch.flip(frames, [0]))
    torch.testing.assert_close(other, torch.flip(codes, [0]), rtol=0, atol=1e-5)  # frames are independent
