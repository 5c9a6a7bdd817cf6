"""FunASR compatibility tests use tiny models, so each runs on one torch thread."""

import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield
