"""asr-average end to end on run directories with small state dicts."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from engine.checkpoint import CheckpointManager, load_checkpoint, save_checkpoint
from engine.checkpoint.cli import main
from engine.events import read_events, validate_event

ACCS = [0.50, 0.90, 0.60, 0.80, 0.70]


@pytest.fixture
def run_dir(tmp_path, make_state):
    """A run that saved five epoch checkpoints with validation metrics, avg_nbest_model 3."""
    run = tmp_path / "exp" / "run"
    manager = CheckpointManager(run, keep_nbest_models=10, avg_nbest_model=3, metric="acc")
    for epoch, acc in enumerate(ACCS, start=1):
        manager.save(make_state(epoch, batches_tracked=epoch), epoch=epoch,
                     metrics={"acc": acc, "loss": 2.0 - acc})
    return run


def hand_average(make_state, epochs, key="0.weight"):
    return sum(make_state(e)["model"][key].double() for e in epochs) / len(epochs)


def last_event(run):
    event = read_events(run / "events.jsonl")[-1]
    assert validate_event(event) == []
    return event


def test_default_is_the_runs_own_nbest(run_dir, make_state, capsys, caplog):
    assert main(["--run", str(run_dir)]) == 0
    averaged = load_checkpoint(run_dir / "model.pt.avg3")
    assert torch.equal(averaged["model"]["0.weight"], hand_average(make_state, [2, 4, 5]).float())
    assert averaged["model"]["1.num_batches_tracked"].item() == 5  # from the newest of the three
    assert averaged["metric"] == "acc"
    assert [s["epoch"] for s in averaged["sources"]] == [2, 4, 5]
    event = last_event(run_dir)
    assert event["event"] == "average" and event["path"] == "model.pt.avg3"
    assert event["sources"] == ["model.pt.ep2", "model.pt.ep4", "model.pt.ep5"] and event["metric"] == "acc"
    index = json.loads((run_dir / "checkpoints.json").read_text())
    assert [a["path"] for a in index["averages"]] == ["model.pt.avg3"]
    assert index["keep_nbest_models"] == 10  # the run's settings survive the CLI's rewrite
    out = capsys.readouterr().out
    assert "* model.pt.ep2             epoch 2, acc 0.9000, loss 1.1000" in out
    assert "  model.pt.ep1             epoch 1, acc 0.5000, loss 1.5000" in out  # listed, not averaged
    assert "averaged 3 checkpoints (acc) into" in out
    assert caplog.records == []  # nothing to repair in a healthy run


def test_list_changes_nothing(run_dir, capsys):
    before = {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()}
    assert main(["--run", str(run_dir), "--num", "2", "--list"]) == 0
    assert {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()} == before
    marked = [line.split()[1] for line in capsys.readouterr().out.splitlines() if line.startswith("*")]
    assert marked == ["model.pt.ep2", "model.pt.ep4"]


def test_num_metric_last_and_out(run_dir, make_state, tmp_path):
    assert main(["--run", str(run_dir), "--num", "2", "--metric", "loss"]) == 0
    assert [s["epoch"] for s in load_checkpoint(run_dir / "model.pt.avg2")["sources"]] == [2, 4]
    assert main(["--run", str(run_dir), "--last", "2", "--out", str(tmp_path / "elsewhere.pt")]) == 0
    averaged = load_checkpoint(tmp_path / "elsewhere.pt")
    assert torch.equal(averaged["model"]["0.weight"], hand_average(make_state, [4, 5]).float())
    assert averaged["metric"] == "last"
    assert last_event(run_dir)["path"] == str(tmp_path / "elsewhere.pt")


def test_explicit_checkpoints_inside_and_outside_the_run(run_dir, tmp_path, make_state, monkeypatch):
    outside = tmp_path / "other" / "model.pt.ep9"
    outside.parent.mkdir()
    save_checkpoint(outside, make_state(9, batches_tracked=9))
    monkeypatch.chdir(tmp_path)
    assert main(["--run", str(run_dir), "--checkpoints", str(run_dir / "model.pt.ep1"), "model.pt.ep3",
                 "other/model.pt.ep9"]) == 0
    averaged = load_checkpoint(run_dir / "model.pt.avg3")
    assert torch.equal(averaged["model"]["0.weight"], hand_average(make_state, [1, 3, 9]).float())
    assert averaged["model"]["1.num_batches_tracked"].item() == 9  # newest file: the one written last
    event = last_event(run_dir)
    assert event["metric"] == "explicit"
    assert event["sources"] == ["model.pt.ep1", "model.pt.ep3", str(outside)]


def test_errors_name_the_problem(run_dir, tmp_path, capsys):
    assert main(["--run", str(run_dir), "--checkpoints", "model.pt.ep1", "model.pt.ep42"]) == 2  # user errors: 2
    assert "no such checkpoint file(s): model.pt.ep42" in capsys.readouterr().err
    (run_dir / "model.pt.ep2").write_bytes(b"torn")
    assert main(["--run", str(run_dir), "--num", "2"]) == 2
    assert f"checkpoint {run_dir / 'model.pt.ep2'} is unreadable" in capsys.readouterr().err
    empty = tmp_path / "empty_run"
    empty.mkdir()
    assert main(["--run", str(empty)]) == 2
    assert "has no epoch or step checkpoints" in capsys.readouterr().err
    CheckpointManager(empty, keep_nbest_models=1, avg_nbest_model=0)
    assert main(["--run", str(empty)]) == 2
    assert "avg_nbest_model 0): pass --num N" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["--run", str(tmp_path / "nope")])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit):
        main(["--run", str(run_dir), "--last", "0"])
    assert not (run_dir / "model.pt.avg2").exists()


def test_installed_command(run_dir):
    command = Path(sys.executable).parent / "asr-average"
    argv = [str(command)] if command.exists() else [sys.executable, "-m", "engine.checkpoint.cli"]
    out = subprocess.run(argv + ["--run", str(run_dir), "--num", "4"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert (run_dir / "model.pt.avg4").is_file()
    assert "averaging" in out.stderr  # the progress bar


def test_export_writes_a_loadable_model_dir(tmp_path):
    from engine.decode.model_dir import load_asr
    from tests.decode.toy import build_toy_run

    from tests.fixtures.threads import torch_threads

    with torch_threads(1):
        toy = build_toy_run(tmp_path / "run", steps=1, train_utterances=4)
    run = toy["run_dir"]
    manager = CheckpointManager(run, keep_nbest_models=5, avg_nbest_model=2, metric="acc")
    weights = toy["model"].state_dict()
    for epoch in (1, 2):
        shifted = {k: v + epoch if v.is_floating_point() else v for k, v in weights.items()}
        manager.save({"model": shifted}, epoch=epoch, metrics={"acc": 0.1 * epoch})
    assert main(["--run", str(run), "--export", str(tmp_path / "model_dir")]) == 0
    model, _, _, _ = load_asr(tmp_path / "model_dir", "cpu")
    name, param = next((k, v) for k, v in model.state_dict().items() if v.is_floating_point())
    assert torch.allclose(param, weights[name] + 1.5)
    # An average written outside the run still exports: the run's config and tokens come from --run.
    outside = tmp_path / "elsewhere" / "avg.pt"
    assert main(["--run", str(run), "--num", "2", "--out", str(outside), "--export", str(tmp_path / "dir2")]) == 0
    model, _, _, _ = load_asr(tmp_path / "dir2", "cpu")
    assert torch.allclose(model.state_dict()[name], weights[name] + 1.5)


def test_export_only_exports_one_checkpoint_as_it_is(tmp_path, capsys):
    from engine.decode.model_dir import load_asr
    from tests.decode.toy import build_toy_run

    from tests.fixtures.threads import torch_threads

    with torch_threads(1):
        toy = build_toy_run(tmp_path / "run", steps=1, train_utterances=4)
    run = toy["run_dir"]
    manager = CheckpointManager(run, keep_nbest_models=5, avg_nbest_model=2, metric="acc")
    weights = toy["model"].state_dict()
    shifted = {k: v + 3 if v.is_floating_point() else v for k, v in weights.items()}
    saved = manager.save({"model": shifted}, epoch=1, metrics={"acc": 0.1})
    before = sorted(p.name for p in run.iterdir())
    assert main(["--run", str(run), "--export-only", saved.path.name, "--export", str(tmp_path / "dir")]) == 0
    assert sorted(p.name for p in run.iterdir()) == before  # nothing averaged
    model, _, _, _ = load_asr(tmp_path / "dir", "cpu")
    name = next(k for k, v in weights.items() if v.is_floating_point())
    assert torch.equal(model.state_dict()[name], weights[name] + 3)
    assert "as a FunASR model directory" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--run", str(run), "--export-only", saved.path.name])
