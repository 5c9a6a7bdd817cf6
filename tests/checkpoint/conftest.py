"""Small model states for checkpoint tests: real nn.Module state dicts, a few KB each."""

import pytest
import torch


def tiny_state(seed: int, batches_tracked: int = 0) -> dict[str, torch.Tensor]:
    """A state dict with float32, float16 and an integer buffer, as a real model has."""
    generator = torch.Generator().manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for key, value in state.items():
        if value.is_floating_point():
            state[key] = torch.randn(value.shape, generator=generator)
    state["1.num_batches_tracked"] = torch.tensor(batches_tracked)
    state["half"] = torch.randn(5, generator=generator).half()
    return state


def training_state(seed: int, batches_tracked: int = 0) -> dict:
    """What the trainer saves: model weights plus optimiser state and positions."""
    return {"model": tiny_state(seed, batches_tracked),
            "train_step": {"main": {"exp_avg": torch.randn(7)}}, "epoch": seed}


@pytest.fixture
def make_state():
    return training_state
