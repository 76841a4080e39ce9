import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Many tiny torch ops: on a busy 2-core machine, intra-op threads only add wake-up latency."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
