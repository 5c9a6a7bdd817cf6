"""Model tests use tiny models: one thread avoids OpenMP spin contention on a busy 2-core machine."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
