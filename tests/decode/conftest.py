"""Decode-test fixtures: a tiny model trained in seconds on the tone corpus of ``toy.py``."""

import pytest
import torch

from tests.decode.toy import build_toy_run, features, pad_batch


@pytest.fixture(autouse=True)
def one_thread():
    """The toy models are tiny: one thread avoids OpenMP spin contention on a busy 2-core machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def toy_run(tmp_path_factory):
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        toy = build_toy_run(tmp_path_factory.mktemp("toy_run"), steps=100, train_utterances=16)
    finally:
        torch.set_num_threads(previous)
    toy["train_batch"] = pad_batch(features(toy["frontend"], toy["train_list"]), toy["tokenizer"])
    return toy
