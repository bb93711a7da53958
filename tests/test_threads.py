"""Thread policy: small problems on one thread, explicit counts win, settings restored."""

import pytest
import torch

import dynode_core as dc
from dynode_core._threads import policy_threads, thread_scope
from dynode_core.cli import main


@pytest.fixture
def two_threads():
    n = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(n)


def test_policy_small_one_thread_large_keeps_setting(two_threads, monkeypatch):
    monkeypatch.delenv("DYNODE_THREADS", raising=False)
    assert policy_threads(64, 16) == 1
    assert policy_threads(128, 4) == 1
    assert policy_threads(256, 1) == 2
    assert policy_threads(64, 10_000) == 2
    with thread_scope(resolution=64) as n:
        assert n == 1 == torch.get_num_threads()
    assert torch.get_num_threads() == 2
    with thread_scope(resolution=1024) as n:
        assert n == 2 == torch.get_num_threads()


def test_explicit_count_wins_and_nests(two_threads, monkeypatch):
    monkeypatch.delenv("DYNODE_THREADS", raising=False)
    with thread_scope(3):
        assert torch.get_num_threads() == 3
        with thread_scope(resolution=32):  # an explicit outer count holds inside library calls
            assert torch.get_num_threads() == 3
        with thread_scope(1):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 3
    assert torch.get_num_threads() == 2
    monkeypatch.setenv("DYNODE_THREADS", "3")
    with thread_scope(resolution=32):
        assert torch.get_num_threads() == 3
    monkeypatch.setenv("DYNODE_THREADS", "many")
    with pytest.raises(ValueError, match="DYNODE_THREADS"):
        with thread_scope(resolution=32):
            pass


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "2", 10**6])
def test_bad_thread_counts(bad):
    with pytest.raises(ValueError, match="threads"):
        with thread_scope(bad):
            pass


def test_decode_applies_policy_and_restores(two_threads, monkeypatch):
    monkeypatch.delenv("DYNODE_THREADS", raising=False)
    torch.manual_seed(0)
    G = dc.Generator(16, z_dim=8, w_dim=8, n_mlp=1, channels={4: 8, 8: 8, 16: 4}).eval()
    seen = []
    orig = G.synthesis
    monkeypatch.setattr(G, "synthesis", lambda *a, **k: (seen.append(torch.get_num_threads()), orig(*a, **k))[1])
    codes = torch.randn(3, G.num_ws, G.w_dim)
    dc.decode(G, codes)
    dc.decode(G, codes, threads=2)
    assert seen == [1, 2] and torch.get_num_threads() == 2
    with pytest.raises(ValueError, match="threads"):
        dc.decode(G, codes, threads=0)


def test_cli_rejects_bad_threads(capsys):
    assert main(["convert", "a.pt", "b.safetensors", "--threads", "0"]) == 2
    err = capsys.readouterr().err
    assert "threads" in err and len(err.strip().splitlines()) == 1
