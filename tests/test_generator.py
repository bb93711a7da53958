"""The pure-PyTorch StyleGAN2 generator: shapes, noise modes, truncation, input checks."""

import pytest
import torch

import dynode_core as dc
from dynode_core.stylegan2 import Generator

torch.set_num_threads(1)

CONFIGS = [
    dict(resolution=4, z_dim=8, w_dim=8, n_mlp=1, channels={4: 8}),
    dict(resolution=16, z_dim=12, w_dim=16, n_mlp=2, channels={4: 16, 8: 8, 16: 8}),
    dict(resolution=32, z_dim=32, w_dim=32, n_mlp=2, channels={4: 32, 8: 32, 16: 16, 32: 16}),
    dict(resolution=64, z_dim=16, w_dim=16, n_mlp=3, channels={4: 16, 8: 16, 16: 8, 32: 8, 64: 4}, conv_clamp=256.0),
]


def tiny(seed: int = 0, **kw) -> Generator:
    torch.manual_seed(seed)
    cfg = dict(CONFIGS[2], **kw)
    G = Generator(**cfg).eval().requires_grad_(False)
    with torch.no_grad():  # non-zero noise strengths and biases, so every code path matters
        for name, p in G.named_parameters():
            if name.endswith("noise.weight"):
                p.copy_(torch.randn(p.shape) * 0.3)
            elif name.endswith("bias"):
                p.add_(torch.randn(p.shape) * 0.1)
    return G


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"res{c['resolution']}")
def test_shapes_and_sizes(cfg):
    torch.manual_seed(0)
    G = Generator(**cfg).eval()
    log2 = cfg["resolution"].bit_length() - 1
    assert (G.resolution, G.z_dim, G.w_dim) == (cfg["resolution"], cfg["z_dim"], cfg["w_dim"])
    assert G.num_ws == 2 * log2 - 2
    z = torch.randn(3, G.z_dim)
    with torch.no_grad():
        w = G.mapping(z)
        img = G.synthesis(w[:, None].expand(-1, G.num_ws, -1))
    assert w.shape == (3, G.w_dim)
    assert G.w_avg.shape == (G.w_dim,)
    assert img.shape == (3, 3, G.resolution, G.resolution)
    assert torch.isfinite(img).all()
    # the config rebuilds the same layout
    H = Generator(**G.config)
    assert {k: v.shape for k, v in H.state_dict().items()} == {k: v.shape for k, v in G.state_dict().items()}


def test_noise_modes():
    G = tiny()
    ws = G.mapping(torch.randn(2, G.z_dim))[:, None].expand(-1, G.num_ws, -1)
    a = G.synthesis(ws, noise_mode="const")
    b = G.synthesis(ws, noise_mode="const")
    assert torch.equal(a, b), "const noise must be deterministic"
    r1, r2 = G.synthesis(ws, noise_mode="random"), G.synthesis(ws, noise_mode="random")
    assert (r1 - r2).abs().max() > 1e-3, "random noise must change the image"
    assert (r1 - a).abs().max() > 1e-3
    n = G.synthesis(ws, noise_mode="none")
    assert torch.equal(n, G.synthesis(ws, noise_mode="none"))
    assert (n - a).abs().max() > 1e-3, "disabling noise must change the image when noise strengths are non-zero"
    with pytest.raises(ValueError, match="noise_mode"):
        G.synthesis(ws, noise_mode="fixed")


def test_noise_none_equals_zero_strength():
    G = tiny()
    ws = G.mapping(torch.randn(2, G.z_dim))[:, None].expand(-1, G.num_ws, -1)
    n = G.synthesis(ws, noise_mode="none")
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise.weight"):
                p.zero_()
    torch.testing.assert_close(G.synthesis(ws, noise_mode="const"), n)


def test_ws_broadcast_and_batch_independence():
    G = tiny()
    w = G.mapping(torch.randn(3, G.z_dim))
    full = G.synthesis(w[:, None].expand(-1, G.num_ws, -1))
    torch.testing.assert_close(G.synthesis(w[:, None]), full)
    torch.testing.assert_close(G.synthesis(w), full)
    assert G(torch.zeros(0, G.z_dim)).shape == (0, 3, 32, 32)
    # each sample only depends on its own ws (modulation is per sample)
    one = G.synthesis(w[1:2, None].expand(-1, G.num_ws, -1))
    torch.testing.assert_close(one[0], full[1], atol=1e-5, rtol=1e-5)


def test_per_layer_ws_are_used():
    G = tiny()
    ws = G.mapping(torch.randn(1, G.z_dim))[:, None].repeat(1, G.num_ws, 1)
    base = G.synthesis(ws)
    for layer in (0, G.num_ws // 2, G.num_ws - 1):
        ws2 = ws.clone()
        ws2[:, layer] += 1.0
        assert (G.synthesis(ws2) - base).abs().max() > 1e-4, f"ws[:, {layer}] has no effect"


def test_truncation():
    G = tiny()
    G.estimate_w_avg(2000)
    z = torch.randn(4, G.z_dim)
    w = G.mapping(z)
    torch.testing.assert_close(G.mapping(z, truncation_psi=0.0), G.w_avg.expand(4, -1))
    torch.testing.assert_close(G.mapping(z, truncation_psi=0.5), G.w_avg + 0.5 * (w - G.w_avg))
    torch.testing.assert_close(G.mapping(z, truncation_psi=1.0), w)


def test_estimate_w_avg_is_the_mean_of_mapping():
    G = tiny()
    G.estimate_w_avg(4000, seed=3)
    z = torch.randn(4000, G.z_dim, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(G.w_avg, G.style(z).mean(0), atol=1e-5, rtol=1e-5)


def test_conv_clamp_limits_activations():
    G = tiny()
    Gc = tiny(conv_clamp=0.25)
    Gc.load_state_dict(G.state_dict())
    ws = G.mapping(torch.randn(2, G.z_dim))[:, None].expand(-1, G.num_ws, -1)
    img, imgc = G.synthesis(ws), Gc.synthesis(ws)
    assert (img - imgc).abs().max() > 1e-2
    # every ToRGB output is clamped to +-0.25 and there are log2(res) - 1 of them
    assert imgc.abs().max() <= 0.25 * (G.num_ws // 2) + 1e-5


def test_bad_inputs():
    G = tiny()
    with pytest.raises(ValueError, match=r"z must have shape \[B, 32\]"):
        G.mapping(torch.randn(2, 31))
    with pytest.raises(ValueError, match="ws must have shape"):
        G.synthesis(torch.randn(2, G.num_ws + 1, G.w_dim))
    with pytest.raises(ValueError, match="ws must have shape"):
        G.synthesis(torch.randn(2, G.num_ws, G.w_dim + 1))
    with pytest.raises(ValueError, match="power of two"):
        Generator(48, channels={4: 8, 8: 8, 16: 8, 32: 8})
    with pytest.raises(ValueError, match="no entry for resolutions"):
        Generator(32, channels={4: 8, 8: 8})


def test_public_attributes_exported():
    assert dc.Generator is Generator
    G = tiny()
    assert G.device == torch.device("cpu")
    assert isinstance(G.num_ws, int) and isinstance(G.w_dim, int) and isinstance(G.z_dim, int)


def test_bfloat16_runs_and_stays_close():
    G = tiny()
    z = torch.randn(2, G.z_dim)
    ref = G(z, truncation_psi=0.7)
    Gb = tiny().to(torch.bfloat16)
    out = Gb(z, truncation_psi=0.7)
    assert out.dtype == torch.bfloat16
    err = (out.float() - ref).abs()
    assert err.mean() < 0.03 * ref.abs().mean() and err.max() < 0.1 * ref.abs().max()


@pytest.mark.parametrize("cfg", CONFIGS[1:], ids=lambda c: f"res{c['resolution']}")
@pytest.mark.parametrize("batch", [1, 3])
def test_fused_synthesis_matches_plain_with_gradients(cfg, batch):
    # covers both fused branches: weight folding on large maps, input-side style on small ones
    torch.manual_seed(1)
    G = Generator(**cfg)
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise.weight"):
                p.copy_(torch.randn(p.shape) * 0.3)
            elif name.endswith("bias"):
                p.add_(torch.randn(p.shape) * 0.1)
    for mode in ("const", "none"):
        ws = torch.randn(batch, G.num_ws, G.w_dim)
        with torch.no_grad():
            assert (G.synthesis(ws, mode) - G.synthesis(ws, mode, fused=False)).abs().max() < 1e-4
        grads = []
        for fused in (True, False):
            G.zero_grad()
            w = ws.clone().requires_grad_(True)
            img = G.synthesis(w, mode, fused=fused)
            (img * torch.linspace(-1, 1, img.numel()).view_as(img)).sum().backward()
            grads.append([w.grad] + [p.grad.clone() for p in G.parameters() if p.grad is not None])
        assert len(grads[0]) == len(grads[1]) > 10
        for a, b in zip(*grads):
            assert torch.allclose(a, b, rtol=1e-3, atol=1e-5 * max(1.0, float(b.abs().max())))


def test_fused_synthesis_under_inference_mode_and_bfloat16():
    G = tiny()
    ws = torch.randn(2, G.num_ws, G.w_dim)
    with torch.inference_mode():
        a = G.synthesis(ws)
    assert (a - G.synthesis(ws, fused=False)).abs().max() < 1e-4
    w = ws.clone().requires_grad_(True)  # what was kept under inference mode can be saved for backward
    G.synthesis(w).sum().backward()
    assert torch.isfinite(w.grad).all() and w.grad.abs().sum() > 0
    with torch.no_grad():  # a changed weight is seen, not the kept sums of the old one
        G.convs[0].conv.weight.mul_(2)
        G.to_rgbs[0].conv.weight.add_(0.5)
    assert (G.synthesis(ws) - G.synthesis(ws, fused=False)).abs().max() < 1e-4
    Gb = tiny().to(torch.bfloat16)
    out = Gb.synthesis(ws)
    assert out.dtype == torch.bfloat16
    assert (out.float() - a).abs().mean() < 0.03 * a.abs().mean()
