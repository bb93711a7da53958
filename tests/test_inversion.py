"""Inversion, decoding and code files, on a tiny random generator."""

import pytest
import torch

import dynode_core as dc

from dynode_core.clip import Clip
from dynode_core.codes import generator_fingerprint, load_codes, save_codes
from dynode_core.decoding import Cancelled, decode
from dynode_core.inversion import PerceptualLoss, bisection_passes, invert
from dynode_core.metrics import psnr
from dynode_core.stylegan2 import Generator


def _tiny(seed=0):
    torch.manual_seed(seed)
    G = Generator(16, z_dim=32, w_dim=32, n_mlp=2, channels={4: 32, 8: 32, 16: 16}).eval()
    G.estimate_w_avg(2000)
    return G


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def G():
    return _tiny()


@pytest.fixture(scope="module")
def clip(G):
    """Frames the generator itself makes along a smooth path in W, and that path [T, 1, D]."""
    g = torch.Generator().manual_seed(1)
    w = G.mapping(torch.randn(2, G.z_dim, generator=g), truncation_psi=0.7).detach()
    a = torch.linspace(0, 1, 8)[:, None]
    ws = torch.lerp(w[0], w[1], a)[:, None]
    return decode(G, ws), ws


def _psnr(clip):
    return torch.tensor(clip.metadata["psnr"])


def test_bisection_passes_cover_every_frame_once():
    assert bisection_passes(16) == [[0, 7, 15], [3, 11], [1, 5, 9, 13], [2, 4, 6, 8, 10, 12, 14]]
    assert bisection_passes(1) == [[0]] and bisection_passes(2) == [[0, 1]]
    for n in (1, 2, 3, 5, 17):
        flat = [i for p in bisection_passes(n) for i in p]
        assert sorted(flat) == list(range(n))


def test_inversion_recovers_generated_frames_in_w(G, clip):
    frames, ws = clip
    calls = []
    res = invert(G, frames, space="w", steps=200, progress=lambda d, t: calls.append((d, t)))
    assert res.codes.shape == (8, 1, G.w_dim) and _psnr(res).shape == (8,)
    # An exact solution exists (these frames are the generator's own); 35 dB is an RMS error of under 2 % of
    # the value range, far above what the average code gives (checked below).
    assert _psnr(res).mean() > 35 and _psnr(res).min() > 28
    start = psnr(decode(G, G.w_avg.view(1, 1, -1).expand(8, 1, -1)), frames)
    assert start.mean() < 20
    # and the codes themselves come back: error far below the spread of the path
    err = (res.codes - ws).square().mean()
    spread = (ws - ws.mean(0)).square().mean()
    assert err < 0.05 * spread
    assert calls[-1][0] == calls[-1][1] and [d for d, _ in calls] == list(range(1, len(calls) + 1))
    # PSNR reported equals PSNR of decoding the returned codes
    assert torch.allclose(_psnr(res), psnr(decode(G, res.codes), frames), atol=1e-3)


def test_inversion_wplus_shapes_and_quality(G, clip):
    frames, _ = clip
    res = invert(G, frames[:4], space="w+", steps=100)
    assert res.codes.shape == (4, G.num_ws, G.w_dim)
    assert _psnr(res).mean() > 24
    clip = invert(G, frames[:1], space="w+", steps=5)
    assert isinstance(clip, Clip) and clip.codes.shape == (1, G.num_ws, G.w_dim)
    assert clip.metadata["inversion"] == "optimisation"  # "auto": no encoder for a generator of its own kind
    assert clip.generator == generator_fingerprint(G) and clip.device == G.device


def test_init_refines_previous_codes(G, clip):
    frames, ws = clip
    noisy = ws + 0.05 * torch.randn(ws.shape, generator=torch.Generator().manual_seed(0))
    before = psnr(decode(G, noisy), frames).mean()
    res = invert(G, frames, space="w", init=noisy, warm_steps=60)
    assert _psnr(res).mean() > before + 3


def test_smoothness_makes_codes_smoother(G, clip):
    frames, _ = clip
    noisy = frames + 0.3 * torch.randn(frames.shape, generator=torch.Generator().manual_seed(0))
    kw = dict(space="w", steps=40, warm_steps=20, polish_steps=40)
    rough = invert(G, noisy, smoothness=0.0, **kw)
    smooth = invert(G, noisy, smoothness=50.0, **kw)
    tv = lambda c: (c[1:] - c[:-1]).square().sum()  # noqa: E731
    assert tv(smooth.codes) < 0.8 * tv(rough.codes)


def test_runs_under_inference_mode_and_with_inference_generator(clip):
    frames, _ = clip
    with torch.inference_mode():
        G = _tiny()  # parameters created as inference tensors, as ComfyUI does
        G.estimate_w_avg(500)
        out = invert(G, frames[:2], space="w", steps=10)
        assert out.codes.shape == (2, 1, 32)
    with torch.no_grad():
        out2 = invert(_tiny(), frames[:2], space="w", steps=10)
    assert out2.codes.shape == (2, 1, 32)


def test_generator_grad_flags_restored(clip):
    G = _tiny()
    G.requires_grad_(True)
    invert(G, clip[0][:1], space="w", steps=2)
    assert all(p.requires_grad for p in G.parameters())
    assert all(p.grad is None for p in G.parameters())


def test_other_sizes_gray_and_rgba(G, clip):
    frames, _ = clip
    big = torch.nn.functional.interpolate(frames[:2], size=(48, 64), mode="bilinear")
    with pytest.warns(UserWarning, match="48x64"):
        assert invert(G, big, space="w", steps=2).codes.shape == (2, 1, 32)
    gray = frames[:2].mean(1, keepdim=True)
    assert invert(G, gray, space="w", steps=2).codes.shape == (2, 1, 32)
    rgba = torch.cat([frames[:2], torch.ones(2, 1, 16, 16)], 1)
    assert invert(G, rgba, space="w", steps=2).codes.shape == (2, 1, 32)
    assert invert(G, frames[0], space="w", steps=2).codes.shape == (1, 1, 32)  # a single [3, H, W] frame


def test_bad_inputs(G, clip):
    frames, _ = clip
    with pytest.raises(ValueError, match="empty"):
        invert(G, torch.zeros(0, 3, 16, 16))
    with pytest.raises(ValueError, match="space"):
        invert(G, frames, space="z")
    with pytest.raises(ValueError, match="uint8"):
        invert(G, frames * 127.5 + 127.5)
    with pytest.raises(ValueError, match=r"\[T, 3, H, W\]"):
        invert(G, torch.zeros(2, 2, 16, 16))
    with pytest.raises(TypeError):
        invert(G, frames.numpy())
    with pytest.raises(ValueError, match="NaN"):
        invert(G, torch.full((1, 3, 16, 16), float("nan")))
    with pytest.raises(ValueError, match="steps"):
        invert(G, frames, steps=0)
    with pytest.raises(ValueError, match="init"):
        invert(G, frames, init=torch.zeros(3, 1, 32))
    with pytest.warns(UserWarning, match=r"\[0, 1\]"):
        invert(G, (frames[:1].clamp(-1, 1) + 1) / 2, space="w", steps=1)


def test_cancel(G, clip):
    n = []
    with pytest.raises(Cancelled):
        invert(G, clip[0], steps=50, progress=lambda d, t: n.append(d), cancel=lambda: len(n) >= 3)
    assert len(n) == 3


def test_perceptual_loss_from_local_torchvision_state_dict(tmp_path, G, clip):
    from dynode_core.perceptual import _VGG16_CFG  # a randomly initialised VGG16, saved as torchvision would
    layers, c = [], 3
    for v in _VGG16_CFG:
        if v == "M":
            layers.append(torch.nn.MaxPool2d(2))
        else:
            layers += [torch.nn.Conv2d(c, v, 3, padding=1), torch.nn.ReLU()]
            c = v
    sd = {f"features.{k}": v for k, v in torch.nn.Sequential(*layers).state_dict().items()}
    torch.save(sd, tmp_path / "vgg16.pth")
    loss = PerceptualLoss(tmp_path / "vgg16.pth")
    x = clip[0][:2]
    assert torch.allclose(loss(x, x), torch.zeros(2), atol=1e-6)
    assert (loss(x, x.flip(-1)) > 0).all()
    out = invert(G, x, space="w", steps=3, perceptual=tmp_path / "vgg16.pth")
    assert out.codes.shape == (2, 1, 32)
    with pytest.raises(FileNotFoundError, match="never downloaded"):
        PerceptualLoss(tmp_path / "missing.pt")
    torch.save({"something": torch.zeros(3)}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="torchvision VGG16"):
        PerceptualLoss(tmp_path / "bad.pt")


def test_perceptual_loss_refuses_torchscript(tmp_path):
    class Net(torch.nn.Module):  # stands in for NVIDIA's vgg16.pt: loading TorchScript would run its code
        def forward(self, img: torch.Tensor, resize_images: bool = False, return_lpips: bool = True):
            return torch.nn.functional.avg_pool2d(img / 255.0, 4).flatten(1)

    torch.jit.script(Net()).save(str(tmp_path / "vgg16.pt"))
    with pytest.raises(ValueError, match="convert-perceptual"):
        PerceptualLoss(tmp_path / "vgg16.pt")


# --- decoding ------------------------------------------------------------------------------------------------

def test_decode_chunked_equals_unchunked(G):
    ws = G.mapping(torch.randn(7, G.z_dim)).detach()[:, None].expand(-1, G.num_ws, -1)
    whole = decode(G, ws, batch_size=64)
    seen = []
    chunked = decode(G, ws, batch_size=3, progress=lambda d, t: seen.append((d, t)))
    assert whole.shape == (7, 3, 16, 16) and torch.allclose(whole, chunked, atol=1e-5)
    assert seen == [(3, 7), (6, 7), (7, 7)]
    # W codes [N, 1, D] and [N, D] render like the W+ codes that repeat them
    assert torch.allclose(decode(G, ws[:, :1]), whole, atol=1e-5)
    assert torch.allclose(decode(G, ws[:, 0]), whole, atol=1e-5)
    # const noise: the same code renders the same twice; random noise does not
    assert torch.equal(decode(G, ws[:1]), decode(G, ws[:1]))
    G.noises.noise_0.normal_()
    with torch.no_grad():
        for conv in (G.conv1, *G.convs):
            conv.noise.weight.fill_(0.5)
    assert not torch.equal(decode(G, ws[:1], noise_mode="random"), decode(G, ws[:1], noise_mode="random"))


def test_decode_errors_and_cancel(G):
    with pytest.raises(ValueError, match="w_dim"):
        decode(G, torch.zeros(2, G.num_ws, 16))
    with pytest.raises(ValueError, match="num_ws"):
        decode(G, torch.zeros(2, 3, G.w_dim))
    with pytest.raises(ValueError, match="empty"):
        decode(G, torch.zeros(0, 1, G.w_dim))
    with pytest.raises(ValueError, match="batch_size"):
        decode(G, torch.zeros(1, 1, G.w_dim), batch_size=0)
    with pytest.raises(Cancelled):
        decode(G, torch.zeros(4, 1, G.w_dim), batch_size=1, cancel=lambda: True)


# --- code files ------------------------------------------------------------------------------------------------

def test_codes_roundtrip_and_generator_checks(tmp_path, G):
    codes = torch.randn(5, G.num_ws, G.w_dim)
    times = torch.tensor([0.0, 0.1, 0.25, 0.3, 0.5])
    path = save_codes(tmp_path / "c.safetensors", codes, times, G=G, metadata={"psnr": [1.0, 2.0]})
    back = load_codes(path, G)
    assert torch.equal(back.codes, codes) and torch.equal(back.times, times)
    assert back.metadata["num_ws"] == str(G.num_ws) and back.metadata["space"] == "w+"
    assert back.metadata["generator"] == generator_fingerprint(G)
    # another generator with the same sizes: a fingerprint mismatch
    other = _tiny(seed=5)
    assert generator_fingerprint(other) != generator_fingerprint(G)
    with pytest.raises(ValueError, match="another generator"):
        load_codes(path, other)
    with pytest.warns(UserWarning, match="another generator"):
        load_codes(path, other, strict=False)
    # another generator with other sizes
    big = Generator(32, z_dim=32, w_dim=32, n_mlp=1, channels={4: 8, 8: 8, 16: 8, 32: 8})
    with pytest.raises(ValueError, match="num_ws"):
        load_codes(path, big)
    # fingerprint is stable across dtype round trips of the same weights
    assert generator_fingerprint(_tiny().half().float()) == generator_fingerprint(_tiny())


def test_codes_files_errors(tmp_path, G):
    with pytest.raises(FileNotFoundError):
        load_codes(tmp_path / "none.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"12345678junk")
    with pytest.raises(ValueError, match="not a readable"):
        load_codes(tmp_path / "junk.safetensors")
    with pytest.raises(ValueError, match=".safetensors"):
        save_codes(tmp_path / "c.pt", torch.zeros(1, 1, 32))
    with pytest.raises(ValueError, match="times"):
        save_codes(tmp_path / "c.safetensors", torch.zeros(2, 1, 32), times=torch.zeros(3))
    with pytest.raises(ValueError, match="w_dim"):
        save_codes(tmp_path / "c.safetensors", torch.zeros(2, 1, 16), G=G)
    # a foreign file with a `latents` tensor and no metadata (like ../shared/data) loads
    from safetensors.torch import save_file
    save_file({"latents": torch.zeros(3, G.num_ws, 32), "times": torch.arange(3.0)}, str(tmp_path / "f.safetensors"))
    assert load_codes(tmp_path / "f.safetensors", G).codes.shape == (3, G.num_ws, 32)


def test_options_object_and_unknown_option(G, clip):
    frames, _ = clip
    opts = dc.InversionOptions(space="w", steps=4)
    a = invert(G, frames[:2], options=opts)
    b = invert(G, frames[:2], space="w", steps=4)
    torch.testing.assert_close(a.codes, b.codes)
    with pytest.raises(TypeError, match="stepz"):
        invert(G, frames, stepz=3)
    with pytest.raises(ValueError, match="refine_steps"):
        dc.InversionOptions(refine_steps=-1)


def test_times_and_encoder_mismatch(G, clip):
    frames, _ = clip
    out = invert(G, frames[:3], space="w", steps=2, times=torch.tensor([0.0, 0.5, 1.0]))
    assert out.times.tolist() == [0.0, 0.5, 1.0]
    with pytest.raises(ValueError, match=r"num_ws.*builtin|builtin.*num_ws"):
        invert(G, frames[:1], encoder=dc.load_encoder("builtin"))
