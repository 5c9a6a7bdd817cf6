"""One tiny run, checked end to end: run directory, events, log lines, keep-n-best and averaging."""

from __future__ import annotations

import math
import re

import pytest
import torch

from engine.events import validate_event
from engine.optim_sche.precision import precision
from engine.train import main
from tests.trainer.tiny import events_of, model_weights, run_json, tiny_config, write_config

FUNASR_TRAIN_LINE = re.compile(
    r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\]\[engine\]\[INFO\] - train, rank: (\d+), epoch: (\d+)/2, "
    r"step: (\d+)/(\d+), total step: (\d+), \(loss_avg_rank: [\d.]+\), \(loss_avg_epoch: [\d.]+\), "
    r"\(ppl_avg_epoch: [\d.e+]+\), \(acc_avg_epoch: [\d.]+\), \(lr: [\d.]+e-\d\d\), "
    r"\[\('loss', [\d.]+\), \('loss_att', [\d.]+\), \('loss_ctc', [\d.]+\), \('acc', [\d.]+\), \('batch_size', 8\)\], "
    r"\{'data_load': '[\d.]+', 'forward_time': '[\d.]+', 'backward_time': '[\d.]+', 'optim_time': '[\d.]+', "
    r"'total_time': '[\d.]+'\}, CPU, memory: usage: [\d.]+ GB, peak: [\d.]+ GB$"
)


@pytest.fixture(scope="module")
def tiny_run(small_corpus, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("tiny_run")
    config = write_config(tiny_config(small_corpus, run_dir), run_dir.parent / f"{run_dir.name}.yaml")
    assert main(["--config", str(config)]) == 0
    return run_dir


def test_run_directory_has_every_file(tiny_run):
    for name in ("config.yaml", "run.json", "events.jsonl", "log.txt", "tokens.txt", "am.mvn", "model.pt",
                 "model.pt.ep2", "model.pt.avg3"):
        assert (tiny_run / name).is_file(), name
    record = run_json(tiny_run)
    assert record["status"] == "finished" and record["launched_by"] == "cli" and record["pid"] > 0
    assert not list(tiny_run.glob("*.tmp")) and not list(tiny_run.glob(".*tmp"))


def test_events_follow_the_contract(tiny_run):
    events = events_of(tiny_run)
    for event in events:
        assert validate_event(event) == [], event
    kinds = [e["event"] for e in events]
    assert kinds[:3] == ["data", "data", "start"] and kinds[-2:] == ["average", "end"]
    assert [e["split"] for e in events[:2]] == ["train", "valid"]
    start = events[2]
    assert start["world_size"] == 1 and start["resumed_from"] is None and start["max_epoch"] == 2
    state_floats = sum(t.numel() for t in model_weights(tiny_run / "model.pt").values() if t.dtype.is_floating_point)
    assert 0 < start["num_params"] <= state_floats  # parameters, not buffers
    # use_bf16 left at auto: what engine.optim_sche.precision picks on this CPU, with its reason
    assert start["config"]["train_conf"]["use_bf16"] == "auto"
    assert start["precision"] == dict(zip(("dtype", "reason"), precision(start["config"]["train_conf"], "cpu")))
    assert f"precision: {start['precision']['dtype']} ({start['precision']['reason']})" in (tiny_run / "log.txt").read_text()
    assert events[-1]["status"] == "finished"

    train = [e for e in events if e["event"] == "train"]
    steps_per_epoch = start["steps_per_epoch"]
    assert [e["step"] for e in train] == list(range(2, 2 * steps_per_epoch + 1, 2))
    for event in train:
        assert set(event["lr"]) == {"main"} and event["lr"]["main"] > 0
        assert set(event["losses"]) == {"loss", "loss_att", "loss_ctc"} and math.isfinite(event["loss"])
        assert 0.0 <= event["padding_ratio"] < 1.0 and event["throughput"] > 0
        assert len(event["ranks"]) == 1 and event["ranks"][0]["total_s"] >= event["ranks"][0]["forward_s"]
        # the rank's resources on a CPU: RSS and CPU percent from /proc, no GPU figure
        row = event["ranks"][0]
        assert row["rss_mb"] > 50 and row["cpu_percent"] >= 0 and "gpu_util" not in row
        assert event["skipped"] == {"main": 0}
    # warmuplr rises through its 10 warm-up steps
    assert train[0]["lr"]["main"] < train[3]["lr"]["main"]


def test_validation_and_checkpoint_schedule(tiny_run):
    events = events_of(tiny_run)
    steps_per_epoch = events[2]["steps_per_epoch"]
    last = 2 * steps_per_epoch
    valid_steps = [e["step"] for e in events if e["event"] == "valid"]
    checkpoints = [e for e in events if e["event"] == "checkpoint"]
    # save every 3 updates and at each epoch end; the epoch's last update is the epoch checkpoint only
    expected = sorted({s for s in range(3, last + 1, 3) if s % steps_per_epoch} | {steps_per_epoch, last})
    assert [c["step"] for c in checkpoints] == expected
    # every named checkpoint was validated on its own weights; validate_interval 4 adds its own
    assert set(valid_steps) >= set(expected) | {s for s in range(4, last, 4) if s % steps_per_epoch}
    for checkpoint in checkpoints:
        assert checkpoint["metric"] == "acc" and "acc" in checkpoint["metrics"]
        expected_name = f"model.pt.ep{checkpoint['epoch']}" + ("" if checkpoint["step"] % steps_per_epoch == 0
                                                              else f".{checkpoint['step']}")
        assert checkpoint["path"] == expected_name


def test_keep_nbest_never_deletes_what_averaging_needs(tiny_run):
    events = events_of(tiny_run)
    average = next(e for e in events if e["event"] == "average")
    assert len(average["sources"]) == 3
    deleted = {p for e in events if e["event"] == "checkpoint" for p in e["deleted"]}
    assert not deleted & set(average["sources"])
    for source in average["sources"]:
        assert torch.load(tiny_run / source, map_location="cpu", weights_only=True)["model"]
    accs = {e["path"]: e["metrics"]["acc"] for e in events if e["event"] == "checkpoint"}
    best = sorted(accs.values(), reverse=True)[:3]
    assert sorted((accs[s] for s in average["sources"]), reverse=True) == best
    averaged = model_weights(tiny_run / "model.pt.avg3")
    sources = [model_weights(tiny_run / s) for s in average["sources"]]
    name = next(k for k, v in averaged.items() if v.dtype.is_floating_point)
    torch.testing.assert_close(averaged[name], sum(s[name].double() for s in sources).float() / 3)


def test_log_txt_has_funasr_train_lines(tiny_run):
    lines = (tiny_run / "log.txt").read_text(encoding="utf-8").splitlines()
    train_lines = [line for line in lines if " - train, " in line]
    assert train_lines
    for line in train_lines:
        assert FUNASR_TRAIN_LINE.match(line), line
    assert any(" - valid, " in line for line in lines)
