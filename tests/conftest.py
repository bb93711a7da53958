import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: one thread is as fast, and much faster when another job keeps the cores busy."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
