"""save_checkpoint / load_checkpoint: atomic writes, and errors that name the file."""

import os
import random
import signal
import stat
import time

import pytest
import torch

from engine.checkpoint import (CheckpointError, CheckpointNotFoundError, load_checkpoint,
                               save_checkpoint)


def test_round_trip(tmp_path, make_state):
    state = make_state(1)
    save_checkpoint(tmp_path / "model.pt", state)
    loaded = load_checkpoint(tmp_path / "model.pt")
    assert torch.equal(loaded["model"]["0.weight"], state["model"]["0.weight"])
    assert loaded["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]  # no temporary left behind


def test_missing_file_is_named(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match=f"{tmp_path / 'nope.pt'} does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(FileNotFoundError):  # also catchable as the builtin
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(CheckpointNotFoundError, match="is a directory"):
        load_checkpoint(tmp_path)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_corrupt_file_is_named(tmp_path, make_state, damage):
    path = tmp_path / "model.pt.ep3"
    save_checkpoint(path, make_state(1))
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "garbage": b"\x00not a checkpoint" * 10,
                      "empty": b""}[damage])
    with pytest.raises(CheckpointError, match=f"checkpoint {path} is unreadable"):
        load_checkpoint(path)


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"model": {}, "evil": CheckpointError("x")}, path)  # any non-tensor class
    with pytest.raises(CheckpointError, match=str(path)):
        load_checkpoint(path)


def test_non_dict_checkpoint(tmp_path):
    torch.save([torch.zeros(1)], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="holds a list, not a dict"):
        load_checkpoint(tmp_path / "list.pt")


def kill_writer_midway(path, states, signal_at_write: int | None, delay: float) -> None:
    """Fork a writer saving ``states`` to ``path`` one after another, and SIGKILL it.

    With ``signal_at_write`` = k the kill lands inside write k (1-based), after its temporary
    file is written and before the rename: the writer reports each regular-file fsync through a
    pipe and pauses there. Otherwise it lands ``delay`` seconds after the first write began.
    Forked from the test process (torch is already imported); the states are built before the
    fork, so the child only serialises and writes.
    """
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.close(read_end)
            real_fsync = os.fsync

            def reporting_fsync(fd):
                if stat.S_ISREG(os.fstat(fd).st_mode):  # not the directory's fsync after the rename
                    os.write(write_end, b"w")
                    time.sleep(0.1)
                real_fsync(fd)

            os.fsync = reporting_fsync
            for state in states:
                save_checkpoint(path, state)
            time.sleep(60)  # never reached in practice: the parent kills first
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        for _ in range(signal_at_write or 1):
            assert os.read(read_end, 1) == b"w"
        time.sleep(delay)
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
    finally:
        os.close(read_end)


def test_killed_writer_leaves_a_loadable_file(tmp_path):
    """kill -9 a process rewriting a checkpoint, in the middle of a write (between the temporary
    file and the rename) and at random moments: the file always loads, whole, old or new."""
    path = tmp_path / "model.pt"
    save_checkpoint(path, {"version": 0, "weights": torch.zeros(250_000)})
    rng = random.Random(0)
    for round_ in range(8):
        base = load_checkpoint(path)["version"]
        states = [{"version": base + i, "weights": torch.full((250_000,), float(base + i))}
                  for i in range(1, 6)]
        if round_ % 2 == 0:
            completed = round_ % 4 + 1
            kill_writer_midway(path, states, signal_at_write=completed + 1, delay=0.0)
            state = load_checkpoint(path)
            assert state["version"] == base + completed  # the interrupted write left the previous one
        else:
            kill_writer_midway(path, states, signal_at_write=None, delay=rng.uniform(0.0, 0.3))
            state = load_checkpoint(path)
        assert torch.all(state["weights"] == float(state["version"]))
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "model.pt"]
    assert len(leftovers) >= 4  # each deterministic kill left its temporary behind, never model.pt
    assert all(name.startswith(".model.pt.") and name.endswith(".tmp") for name in leftovers)
