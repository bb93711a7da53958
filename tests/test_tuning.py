"""Pivotal tuning: a new generator that draws the clip better; the input generator is left as it was."""

import pytest
import torch

import dynode_core as dc
from dynode_core.codes import generator_fingerprint
from dynode_core.errors import Cancelled
from dynode_core.metrics import psnr
from dynode_core.stylegan2 import Generator

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    G = Generator(16, z_dim=16, w_dim=16, n_mlp=2, channels={4: 16, 8: 16, 16: 8}).eval()
    G.estimate_w_avg(200)
    g = torch.Generator().manual_seed(1)
    frames = torch.rand(4, 3, 16, 16, generator=g) * 2 - 1  # frames the generator cannot draw from any code
    codes = G.w_avg.view(1, 1, -1).expand(4, G.num_ws, -1) + 0.1 * torch.randn(4, G.num_ws, 16, generator=g)
    return G, frames, codes


def test_tuning_makes_a_new_generator_that_fits_better(setup, tmp_path):
    G, frames, codes = setup
    before = {k: v.clone() for k, v in G.state_dict().items()}
    calls = []
    G2 = dc.tune_generator(G, frames, codes, steps=40, lr=3e-3, progress=lambda d, t: calls.append((d, t)))
    assert G2 is not G and calls[-1] == (40, 40)
    assert all(torch.equal(v, G.state_dict()[k]) for k, v in before.items())  # the input is unchanged
    with torch.no_grad():
        gain = psnr(G2.synthesis(codes), frames).mean() - psnr(G.synthesis(codes), frames).mean()
    assert gain > 1.0
    assert generator_fingerprint(G2) != generator_fingerprint(G)
    torch.testing.assert_close(G2.style[1].weight, G.style[1].weight)  # the mapping is not tuned
    dc.save_generator(G2, tmp_path / "tuned.safetensors")
    G3 = dc.load_generator(tmp_path / "tuned.safetensors")
    with torch.no_grad():
        torch.testing.assert_close(G3.synthesis(codes), G2.synthesis(codes), rtol=0, atol=1e-5)


def test_locality_keeps_other_codes(setup):
    G, frames, codes = setup
    far = G.mapping(torch.randn(6, 16, generator=torch.Generator().manual_seed(5)))[:, None]
    kw = dict(steps=30, lr=3e-3, seed=0)
    loose, local = dc.tune_generator(G, frames, codes, locality=0.0, **kw), dc.tune_generator(G, frames, codes, locality=4.0, **kw)
    with torch.no_grad():
        ref = G.synthesis(far)
        drift = lambda H: (H.synthesis(far) - ref).square().mean()  # noqa: E731
        assert drift(local) < 0.7 * drift(loose)


def test_tuning_inputs_and_cancel(setup):
    G, frames, codes = setup
    with pytest.raises(ValueError, match="one per frame"):
        dc.tune_generator(G, frames[:3], codes, steps=1)
    with pytest.raises(ValueError, match="steps"):
        dc.tune_generator(G, frames, codes, steps=0)
    with pytest.raises(ValueError, match="locality_interval"):
        dc.tune_generator(G, frames, codes, steps=1, locality_interval=0)
    with pytest.raises(ValueError, match="NaN"):
        dc.tune_generator(G, frames * float("nan"), codes, steps=1)
    with pytest.raises(Cancelled):
        dc.tune_generator(G, frames, codes, steps=10, cancel=lambda: True)
    with torch.inference_mode():
        H = dc.tune_generator(G, frames, dc.Clip(codes), steps=2)  # works under inference mode, takes a Clip
    assert isinstance(H, Generator)
