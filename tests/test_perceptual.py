"""Perceptual weights are read as tensors only: a TorchScript file's code never runs."""

import subprocess
import sys
import textwrap

import pytest
import torch

from dynode_core.checkpoints import CheckpointError
from dynode_core.perceptual import PerceptualLoss, convert_perceptual

_MAKE = textwrap.dedent('''
    import sys, torch
    from typing import Tuple
    victim, out, full = sys.argv[1], sys.argv[2], sys.argv[3] == "1"

    class Evil(torch.nn.Module):
        # its __setstate__ (run by torch.jit.load) overwrites the first 4 bytes of `victim` with b"BBBB"
        def __init__(self, target: str):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.target = target
        def forward(self, x):
            return x
        @torch.jit.export
        def __getstate__(self) -> Tuple[str, torch.Tensor, bool]:
            return (self.target, self.w, self.training)
        @torch.jit.export
        def __setstate__(self, state: Tuple[str, torch.Tensor, bool]) -> None:
            self.target = state[0]
            self.training = state[2]
            t = torch.from_file(state[0], shared=True, size=4, dtype=torch.uint8)
            self.w = state[1] + t.fill_(66).sum().float() * 0.0

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512] if full else [64]
            layers, c = [], 3
            for v in cfg:
                if v == "M":
                    layers.append(torch.nn.MaxPool2d(2))
                else:
                    layers += [torch.nn.Conv2d(c, v, 3, padding=1), torch.nn.ReLU()]
                    c = v
            self.features = torch.nn.Sequential(*layers)
            self.lin = torch.nn.ParameterList([torch.nn.Parameter(torch.rand(1, n, 1, 1)) for n in (64, 128, 256, 512, 512)])
            self.evil = Evil(victim)
        def forward(self, x):
            return self.evil(self.features(x))

    torch.jit.script(Net()).save(out)
''')


def _make(tmp_path, full: bool):
    victim = tmp_path / "victim.bin"
    victim.write_bytes(b"AAAA")
    out = tmp_path / ("vgg16.pt" if full else "small.pt")
    script = tmp_path / "make_torchscript.py"  # TorchScript compiles from source files, not from -c
    script.write_text(_MAKE)
    subprocess.run([sys.executable, str(script), str(victim), str(out), "1" if full else "0"], check=True,
                   env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    return victim, out


@pytest.fixture(scope="module")
def crafted(tmp_path_factory):
    return _make(tmp_path_factory.mktemp("ts"), full=True)


def test_crafted_file_really_runs_code_under_jit_load(tmp_path):
    victim, path = _make(tmp_path, full=False)
    torch.jit.load(str(path))  # what the old loader did: the file writes to `victim`
    assert victim.read_bytes() == b"BBBB"


def test_torchscript_refused_by_perceptual_loss(crafted):
    victim, path = crafted
    with pytest.raises(CheckpointError, match="convert-perceptual"):
        PerceptualLoss(path)
    assert victim.read_bytes() == b"AAAA"


def test_convert_reads_tensors_without_running_code(crafted, tmp_path):
    victim, path = crafted
    out = convert_perceptual(path, tmp_path / "vgg.safetensors")
    assert victim.read_bytes() == b"AAAA"
    loss = PerceptualLoss(out)
    assert loss.lins is not None and [t.shape[1] for t in loss.lins] == [64, 128, 256, 512, 512]
    # the converted network computes what the original modules compute (weights landed in the right places)
    from safetensors.torch import load_file
    w = load_file(str(out))
    assert torch.equal(loss.features[0].weight, w["features.0.weight"])
    assert torch.equal(loss.features[28].bias, w["features.28.bias"])
    x, y = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    d = loss(x, y)
    assert d.shape == (2,) and torch.isfinite(d).all() and (d > 0).all()
    assert torch.allclose(loss(x, x), torch.zeros(2))
    with pytest.raises(FileExistsError):
        convert_perceptual(path, out)
    with pytest.raises(ValueError, match="onto itself"):
        convert_perceptual(out, out, overwrite=True)


def test_cli_convert_perceptual(crafted, tmp_path):
    from dynode_core.cli import main

    victim, path = crafted
    assert main(["convert-perceptual", str(path), str(tmp_path / "v.safetensors"), "-q"]) == 0
    assert victim.read_bytes() == b"AAAA"
    assert main(["invert", "builtin", str(tmp_path), "--out", str(tmp_path / "c.safetensors"),
                 "--perceptual", str(path), "-q"]) == 2
    assert victim.read_bytes() == b"AAAA"


def test_pickle_in_torch_zip_refused(tmp_path):
    class Boom:
        def __reduce__(self):
            return (print, ("pwned",))
    p = tmp_path / "w.pt"
    torch.save({"features.0.weight": torch.zeros(1), "x": Boom()}, p)
    with pytest.raises(CheckpointError, match=r"\.print, which is refused"):
        PerceptualLoss(p)
