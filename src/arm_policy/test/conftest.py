"""Fixtures shared by the arm_policy tests."""
import pytest
import torch


@pytest.fixture
def one_torch_thread():
    """Tiny networks run fastest on one thread, and the suite shares the CPU with other jobs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
