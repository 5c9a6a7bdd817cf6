"""save_checkpoint / load_checkpoint: atomic writes, and errors that name the file."""

import json
import os
import subprocess
import sys

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


KILLER = """
import json, os, signal, sys, time
import torch
from engine.checkpoint import load_checkpoint, save_checkpoint
torch.set_num_threads(1)
path = sys.argv[1]
save_checkpoint(path, {"version": 0, "weights": torch.zeros(2_000_000)})
seen = []
for delay in (0.02, 0.05, 0.11, 0.17, 0.23, 0.31):
    child = os.fork()
    if child == 0:  # the writer: rewrites an 8 MB checkpoint until killed
        version = 0
        while True:
            version += 1
            save_checkpoint(path, {"version": version, "weights": torch.full((2_000_000,), float(version))})
    time.sleep(delay)
    os.kill(child, signal.SIGKILL)
    os.waitpid(child, 0)
    state = load_checkpoint(path)
    assert torch.all(state["weights"] == float(state["version"])), state["version"]
    seen.append(state["version"])
print(json.dumps(seen))
"""


def test_killed_writer_leaves_a_loadable_file(tmp_path):
    """kill -9 a process rewriting a checkpoint at several moments: the file always loads whole."""
    path = tmp_path / "model.pt"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", KILLER, str(path)], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    versions = json.loads(out.stdout)
    assert len(set(versions)) > 1  # the kills did land while it was rewriting
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "model.pt"]
    assert all(name.startswith(".model.pt.") and name.endswith(".tmp") for name in leftovers)
