"""average_checkpoints: a float64 hand average, integer buffers from the newest, a running sum,
and errors that name the bad source."""

import weakref

import pytest
import torch

import engine.checkpoint.average as average_module
from engine.checkpoint import CheckpointError, average_checkpoints, load_checkpoint, save_checkpoint


def write_sources(tmp_path, make_state, count):
    paths = []
    for index in range(count):
        path = tmp_path / f"model.pt.ep{index + 1}"
        save_checkpoint(path, make_state(index, batches_tracked=100 * (index + 1)))
        paths.append(path)
    return paths


def test_equals_a_hand_average_in_float64(tmp_path, make_state):
    paths = write_sources(tmp_path, make_state, 5)
    out = average_checkpoints(paths, tmp_path / "model.pt.avg5", sources_meta=[{"epoch": i} for i in range(5)],
                              metric="acc")
    averaged = load_checkpoint(out)
    states = [make_state(i)["model"] for i in range(5)]
    for key in ("0.weight", "0.bias", "1.weight", "1.running_var", "half"):
        hand = sum(s[key].double() for s in states) / 5
        assert averaged["model"][key].dtype == states[0][key].dtype
        assert torch.equal(averaged["model"][key], hand.to(states[0][key].dtype)), key
    # float16 summed in float16 would drift; in float64 it is the correctly rounded mean
    assert averaged["metric"] == "acc"
    assert averaged["sources"] == [{"path": str(p), "epoch": i} for i, p in enumerate(paths)]
    assert list(averaged["model"]) == list(states[0])  # key order kept


def test_integer_buffers_come_from_the_newest(tmp_path, make_state):
    paths = write_sources(tmp_path, make_state, 3)
    averaged = load_checkpoint(average_checkpoints(paths, tmp_path / "avg.pt"))
    assert averaged["model"]["1.num_batches_tracked"].item() == 300  # FunASR would give 600
    assert averaged["model"]["1.num_batches_tracked"].dtype == torch.int64
    reordered = load_checkpoint(average_checkpoints(paths[::-1], tmp_path / "avg.pt"))
    assert reordered["model"]["1.num_batches_tracked"].item() == 100  # the last given is the newest


def test_accepts_bare_state_dicts(tmp_path, make_state):
    save_checkpoint(tmp_path / "a.pt", make_state(0)["model"])
    save_checkpoint(tmp_path / "b.pt", make_state(1)["model"])
    averaged = load_checkpoint(average_checkpoints([tmp_path / "a.pt", tmp_path / "b.pt"], tmp_path / "o.pt"))
    expected = (make_state(0)["model"]["0.weight"].double() + make_state(1)["model"]["0.weight"].double()) / 2
    assert torch.equal(averaged["model"]["0.weight"], expected.float())


def test_running_sum_holds_one_source_at_a_time(tmp_path, make_state, monkeypatch):
    """When a source is loaded, no float tensor of an earlier source is still alive."""
    paths = write_sources(tmp_path, make_state, 6)
    loaded: list[list[weakref.ref]] = []
    alive_at_each_load = []
    real_load = average_module.load_checkpoint

    def tracking_load(path, **kwargs):
        alive_at_each_load.append(sum(ref() is not None for refs in loaded for ref in refs))
        state = real_load(path, **kwargs)
        loaded.append([weakref.ref(t) for t in state["model"].values() if t.is_floating_point()])
        return state

    monkeypatch.setattr(average_module, "load_checkpoint", tracking_load)
    average_checkpoints(paths, tmp_path / "avg.pt")
    assert alive_at_each_load == [0] * 6


def test_missing_sources_are_named(tmp_path, make_state):
    paths = write_sources(tmp_path, make_state, 2)
    gone = [tmp_path / "model.pt.ep7", tmp_path / "model.pt.ep9"]
    with pytest.raises(CheckpointError, match="missing checkpoint.*model.pt.ep7.*model.pt.ep9"):
        average_checkpoints(paths + gone, tmp_path / "avg.pt")
    assert not (tmp_path / "avg.pt").exists()


def test_unreadable_source_is_named(tmp_path, make_state):
    paths = write_sources(tmp_path, make_state, 3)
    paths[1].write_bytes(paths[1].read_bytes()[:100])
    with pytest.raises(CheckpointError, match=f"checkpoint {paths[1]} is unreadable"):
        average_checkpoints(paths, tmp_path / "avg.pt")
    assert not (tmp_path / "avg.pt").exists()


def test_mismatched_sources_are_named(tmp_path, make_state):
    paths = write_sources(tmp_path, make_state, 2)
    other = make_state(5)
    other["model"]["0.weight"] = torch.zeros(2, 2)
    save_checkpoint(tmp_path / "shape.pt", other)
    with pytest.raises(CheckpointError, match=r"shape.pt with .*model.pt.ep1: key '0.weight' is \(2, 2\)"):
        average_checkpoints(paths + [tmp_path / "shape.pt"], tmp_path / "avg.pt")
    other = make_state(5)
    other["model"]["extra"] = torch.zeros(1)
    save_checkpoint(tmp_path / "keys.pt", other)
    with pytest.raises(CheckpointError, match=r"different keys \(only in keys.pt: \['extra'\]"):
        average_checkpoints(paths + [tmp_path / "keys.pt"], tmp_path / "avg.pt")
    save_checkpoint(tmp_path / "empty.pt", {"epoch": 1})
    with pytest.raises(CheckpointError, match="empty.pt holds no model state dict"):
        average_checkpoints([tmp_path / "empty.pt"], tmp_path / "avg.pt")
