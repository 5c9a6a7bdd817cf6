"""CheckpointManager: FunASR names, checkpoints.json, keep-n-best that spares what averaging needs,
and an index that survives an interrupted save."""

import json
import os
import time

import pytest
import torch

from engine.checkpoint import CheckpointManager, load_checkpoint, save_checkpoint


def save_all(manager, make_state, accs, kind="epoch"):
    results = []
    for epoch, acc in enumerate(accs, start=1):
        metrics = {"acc": acc, "loss": 1.0 - acc} if acc is not None else None
        step = epoch * 100 if kind == "step" else None
        results.append(manager.save(make_state(epoch), epoch=epoch, step=step, metrics=metrics))
    return results


def names(paths):
    return sorted(os.path.basename(p) for p in paths)


def test_save_writes_named_file_latest_and_index(tmp_path, make_state):
    manager = CheckpointManager(tmp_path, keep_nbest_models=5, avg_nbest_model=2, metric="acc")
    result = manager.save(make_state(1), epoch=1, step=250, metrics={"acc": 0.5, "loss": torch.tensor(2.0)})
    assert result.path == tmp_path / "model.pt.ep1.250" and result.deleted == []
    epoch_result = manager.save(make_state(2), epoch=1, metrics={"acc": 0.6, "loss": 1.5})
    assert epoch_result.path == tmp_path / "model.pt.ep1"
    latest = load_checkpoint(tmp_path / "model.pt")
    assert torch.equal(latest["model"]["0.weight"], make_state(2)["model"]["0.weight"])
    assert latest["checkpoint_meta"]["metrics"] == {"acc": 0.6, "loss": 1.5}
    index = json.loads((tmp_path / "checkpoints.json").read_text())
    assert [e["path"] for e in index["checkpoints"]] == ["model.pt.ep1.250", "model.pt.ep1"]
    first = index["checkpoints"][0]
    assert (first["kind"], first["epoch"], first["step"]) == ("step", 1, 250)
    assert first["metrics"] == {"acc": 0.5, "loss": 2.0}
    assert first["size"] == (tmp_path / "model.pt.ep1.250").stat().st_size
    assert abs(first["time"] - time.time()) < 60
    assert index["metric"] == "acc" and index["keep_nbest_models"] == 5


def test_epoch_checkpoint_records_the_states_step(tmp_path, make_state):
    manager = CheckpointManager(tmp_path, keep_nbest_models=5, avg_nbest_model=0, metric="acc")
    result = manager.save({**make_state(1), "step": 1234}, epoch=2)
    assert result.path.name == "model.pt.ep2"
    assert (result.entry["kind"], result.entry["step"]) == ("epoch", 1234)


def test_latest_outlives_deleted_named_checkpoint(tmp_path, make_state):
    manager = CheckpointManager(tmp_path, keep_nbest_models=1, avg_nbest_model=0, metric="acc")
    manager.save(make_state(1), epoch=1, metrics={"acc": 0.9})
    result = manager.save(make_state(2), epoch=2, metrics={"acc": 0.1})
    assert names(result.deleted) == []  # the newest is never deleted, the best is kept
    result = manager.save(make_state(3), epoch=3, metrics={"acc": 0.2})
    assert names(result.deleted) == ["model.pt.ep2"]
    assert load_checkpoint(tmp_path / "model.pt")["epoch"] == 3


def test_keep_nbest_spares_what_averaging_needs(tmp_path, make_state):
    manager = CheckpointManager(tmp_path, keep_nbest_models=2, avg_nbest_model=4, metric="acc")
    results = save_all(manager, make_state, [0.50, 0.90, 0.60, 0.80, 0.70, 0.95, 0.10, 0.20])
    files = names(p for p in tmp_path.iterdir() if p.name.startswith("model.pt.ep"))
    # the 4 best by acc (ep6 .95, ep2 .90, ep4 .80, ep5 .70) and the newest (ep8)
    assert files == ["model.pt.ep2", "model.pt.ep4", "model.pt.ep5", "model.pt.ep6", "model.pt.ep8"]
    assert names(results[-1].kept) == files
    assert names(results[-1].deleted) == ["model.pt.ep7"]
    assert sorted(e["path"] for e in manager.entries()) == files
    assert [e["epoch"] for e in manager.best(3)] == [6, 2, 4]
    assert [e["epoch"] for e in manager.best(2, "loss")] == [6, 2]


def test_loss_metric_keeps_lowest_loss(tmp_path, make_state):
    manager = CheckpointManager(tmp_path, keep_nbest_models=2, avg_nbest_model=0, metric="loss")
    for epoch, loss in enumerate([3.0, 1.0, 2.0, 0.5, 4.0], start=1):
        manager.save(make_state(epoch), epoch=epoch, metrics={"loss": loss, "acc": None})
    assert sorted(e["epoch"] for e in manager.entries()) == [2, 4, 5]  # two best + newest


def test_without_validation_the_newest_are_kept(tmp_path, make_state):
    manager = CheckpointManager(tmp_path, keep_nbest_models=2, avg_nbest_model=3, metric="acc")
    save_all(manager, make_state, [None] * 6, kind="step")
    assert [e["step"] for e in manager.entries()] == [400, 500, 600]
    assert [e["step"] for e in manager.best(3)] == [600, 500, 400]
    assert [e["step"] for e in manager.last(2)] == [600, 500]


def test_nan_metric_ranks_last_and_index_stays_json(tmp_path, make_state):
    manager = CheckpointManager(tmp_path, keep_nbest_models=1, avg_nbest_model=0, metric="loss")
    manager.save(make_state(1), epoch=1, metrics={"loss": 1.0})
    manager.save(make_state(2), epoch=2, metrics={"loss": float("nan")})
    manager.save(make_state(3), epoch=3, metrics={"loss": 2.0})
    assert sorted(e["epoch"] for e in manager.entries()) == [1, 3]
    json.loads((tmp_path / "checkpoints.json").read_text())  # strict JSON, no NaN


def test_resaving_a_name_replaces_its_entry(tmp_path, make_state):
    manager = CheckpointManager(tmp_path, keep_nbest_models=5, avg_nbest_model=0, metric="acc")
    manager.save(make_state(1), epoch=1, metrics={"acc": 0.1})
    manager.save(make_state(1), epoch=1, metrics={"acc": 0.3})  # a resumed run redoes epoch 1
    (entry,) = manager.entries()
    assert entry["metrics"]["acc"] == 0.3


def test_index_is_repaired_from_the_directory(tmp_path, make_state, caplog):
    manager = CheckpointManager(tmp_path, keep_nbest_models=5, avg_nbest_model=2, metric="acc")
    save_all(manager, make_state, [0.1, 0.2, 0.3])
    # a kill between the index update and the unlink, or a user deleting a file:
    (tmp_path / "model.pt.ep1").unlink()
    # a kill after writing a checkpoint but before indexing it: the file knows its metrics
    save_checkpoint(tmp_path / "model.pt.ep4.900", {**make_state(4), "checkpoint_meta": {
        "kind": "step", "epoch": 4, "step": 900, "metrics": {"acc": 0.8}, "time": time.time()}})
    # a checkpoint of an older version without metadata, and an unreadable one
    save_checkpoint(tmp_path / "model.pt.ep5", make_state(5))
    (tmp_path / "model.pt.ep6").write_bytes(b"garbage")
    # a temporary file left by a killed writer long ago
    stale = tmp_path / ".model.pt.ep7.abc.tmp"
    stale_index = tmp_path / ".checkpoints.json.def.tmp"
    fresh = tmp_path / ".model.pt.ep8.ghi.tmp"  # may be a live writer's: left alone
    for temporary in (stale, stale_index, fresh):
        temporary.write_bytes(b"x" * 100)
    for temporary in (stale, stale_index):
        os.utime(temporary, (time.time() - 3600, time.time() - 3600))

    repaired = CheckpointManager(tmp_path, keep_nbest_models=5, avg_nbest_model=2, metric="acc")
    by_path = {e["path"]: e for e in repaired.entries()}
    assert sorted(by_path) == ["model.pt.ep2", "model.pt.ep3", "model.pt.ep4.900", "model.pt.ep5"]
    assert by_path["model.pt.ep4.900"]["metrics"] == {"acc": 0.8}
    assert by_path["model.pt.ep4.900"]["step"] == 900
    assert by_path["model.pt.ep5"]["metrics"] == {} and by_path["model.pt.ep5"]["epoch"] == 5
    assert not stale.exists() and not stale_index.exists() and fresh.exists()
    text = "\n".join(repaired.warnings)
    for expected in ("model.pt.ep1 is listed but its file is gone", "model.pt.ep4.900 was not in",
                     "model.pt.ep6 is not in checkpoints.json and cannot be read", ".model.pt.ep7.abc.tmp"):
        assert expected in text
    assert len(repaired.warnings) == 6
    assert repaired.best(1)[0]["path"] == "model.pt.ep4.900"
    on_disk = json.loads((tmp_path / "checkpoints.json").read_text())
    assert sorted(e["path"] for e in on_disk["checkpoints"]) == sorted(by_path)


def test_unreadable_index_is_rebuilt(tmp_path, make_state):
    manager = CheckpointManager(tmp_path, keep_nbest_models=5, avg_nbest_model=2, metric="acc")
    save_all(manager, make_state, [0.1, 0.2])
    (tmp_path / "checkpoints.json").write_text("{not json")
    repaired = CheckpointManager(tmp_path, keep_nbest_models=5, avg_nbest_model=2, metric="acc")
    assert [e["metrics"]["acc"] for e in repaired.entries()] == [0.1, 0.2]
    assert "unreadable index" in repaired.warnings[0]


def test_average_best_records_sources(tmp_path, make_state):
    manager = CheckpointManager(tmp_path, keep_nbest_models=5, avg_nbest_model=2, metric="acc")
    save_all(manager, make_state, [0.5, 0.9, 0.7])
    result = manager.average(2)
    assert result.path == tmp_path / "model.pt.avg2" and os.fspath(result) == str(result.path)
    assert names(result.sources) == ["model.pt.ep2", "model.pt.ep3"] and result.metric == "acc"
    assert result.to_event(tmp_path) == {"path": "model.pt.avg2", "sources": ["model.pt.ep2", "model.pt.ep3"],
                                         "metric": "acc"}
    saved = load_checkpoint(result.path)
    assert [s["path"] for s in saved["sources"]] == [str(tmp_path / "model.pt.ep2"), str(tmp_path / "model.pt.ep3")]
    assert saved["sources"][0]["metrics"] == {"acc": 0.9, "loss": pytest.approx(0.1)}
    (average,) = manager.averages()
    assert average["path"] == "model.pt.avg2" and average["sources"] == ["model.pt.ep2", "model.pt.ep3"]
    # too few checkpoints: the name says how many were really averaged
    assert manager.average(10).path == tmp_path / "model.pt.avg3"
    assert manager.average(2, metric="last").sources == [tmp_path / "model.pt.ep2", tmp_path / "model.pt.ep3"]
    assert manager.warnings == []


def test_bad_settings_are_refused(tmp_path):
    with pytest.raises(ValueError, match="avg_keep_nbest_models_type"):
        CheckpointManager(tmp_path, metric="wer")
    with pytest.raises(ValueError, match="keep_nbest_models"):
        CheckpointManager(tmp_path, keep_nbest_models=0)


def test_a_funasr_run_is_indexed_with_its_metrics(tmp_path, make_state):
    """FunASR saves {"state_dict", "val_acc_step_or_epoch": {name: acc}, ...}: rank by that."""
    accs = {"model.pt.ep1": 0.5, "model.pt.ep2": 0.9, "model.pt.ep3": 0.7}
    for name in accs:
        save_checkpoint(tmp_path / name, {"state_dict": make_state(1)["model"], "val_acc_step_or_epoch": accs,
                                          "val_loss_step_or_eoch": {name: 1.0}})
    manager = CheckpointManager(tmp_path, keep_nbest_models=5, avg_nbest_model=2, metric="acc")
    assert [e["path"] for e in manager.best(2)] == ["model.pt.ep2", "model.pt.ep3"]
    assert manager.best(1)[0]["metrics"] == {"acc": 0.9, "loss": 1.0}
    averaged = load_checkpoint(manager.average(2))
    assert torch.equal(averaged["model"]["0.weight"], make_state(1)["model"]["0.weight"])


def test_works_where_the_filesystem_cannot_lock(tmp_path, make_state, monkeypatch):
    import fcntl

    def no_locks(fd, operation):
        raise OSError(37, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    manager = CheckpointManager(tmp_path, keep_nbest_models=1, avg_nbest_model=0, metric="acc")
    manager.save(make_state(1), epoch=1, metrics={"acc": 0.5})
    assert [e["epoch"] for e in manager.entries()] == [1]
    assert len(manager.warnings) == 1 and "cannot lock (No locks available)" in manager.warnings[0]
