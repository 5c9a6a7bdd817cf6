"""Decode-test fixtures: a tiny model trained in seconds on the tone corpus of ``toy.py``."""

import pytest

from tests.decode.toy import build_toy_run, features, pad_batch
from tests.fixtures.threads import torch_threads


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


@pytest.fixture(scope="session")
def toy_run(tmp_path_factory):
    with torch_threads(1):
        toy = build_toy_run(tmp_path_factory.mktemp("toy_run"), steps=100, train_utterances=16)
    toy["train_batch"] = pad_batch(features(toy["frontend"], toy["train_list"]), toy["tokenizer"])
    return toy
