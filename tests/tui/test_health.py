"""Health rules on event sequences written by the engine's own EventWriter."""

import math

import pytest

from asr_tui.health import GROWTH_INTERVALS, HealthTracker, marker
from asr_tui.runs_store import RunsStore
from engine.events import EventWriter, read_events
from tests.tui.runfactory import RunFactory, train_event


def row(rank: int, **overrides) -> dict:
    base = {"rank": rank, "loss": 1.0, "batch_size": 24, "data_load_s": 0.004, "forward_s": 0.1,
            "backward_s": 0.2, "optim_s": 0.01, "total_s": 0.32, "memory_mb": 800.0, "rss_mb": 2000.0,
            "cpu_percent": 95.0}
    base.update(overrides)
    return base


def write_train(writer: EventWriter, count: int, start_time: float = 1000.0, interval: float = 2.0,
                world: int = 4, step0: int = 0, rank_row=None, **extra) -> float:
    """``count`` train events ``interval`` seconds apart; rank_row(rank, index) -> row overrides."""
    when = start_time
    for index in range(count):
        when = start_time + index * interval
        event = train_event(step0 + 10 * (index + 1), 1, world)
        event["ranks"] = [row(r, **(rank_row(r, index) if rank_row else {})) for r in range(world)]
        writer.write("train", **{**event, **extra, "time": when})
    return when


def tracker_of(path) -> HealthTracker:
    tracker = HealthTracker()
    for event in read_events(path):
        tracker.apply(event)
    return tracker


@pytest.fixture
def log(tmp_path):
    writer = EventWriter(tmp_path / "events.jsonl")
    writer.write("start", world_size=4, num_params=1, steps_per_epoch=100, max_epoch=2, resumed_from=None,
                 config={})
    yield writer, tmp_path / "events.jsonl"
    writer.close()


def test_a_healthy_run_has_no_findings(log):
    writer, path = log
    last = write_train(writer, 16)
    tracker = tracker_of(path)
    assert tracker.findings(now=last + 3, alive=True) == []
    assert tracker.median_interval() == pytest.approx(2.0)


def test_stalled_names_the_silence_and_the_median_interval(log):
    writer, path = log
    last = write_train(writer, 10)
    tracker = tracker_of(path)
    assert tracker.findings(now=last + 9.9, alive=True) == []  # under 5x the 2 s median
    stalled = tracker.findings(now=last + 60, alive=True)
    assert [f.kind for f in stalled] == ["stalled"]
    assert stalled[0].message == "stalled: no train event for 60.0 s (all ranks), 30x the median interval 2.0 s"
    assert tracker.findings(now=last + 60, alive=False) == []  # a dead job is crashed, not stalled
    writer.write("end", status="finished", reason="")
    assert tracker_of(path).findings(now=last + 60, alive=True) == []


def test_non_finite_loss_names_the_rank(log):
    writer, path = log
    write_train(writer, 5, rank_row=lambda r, i: {"loss": math.nan} if (r, i) == (2, 3) else {})
    [finding] = tracker_of(path).findings()
    assert finding.kind == "nonfinite" and finding.rank == 2
    assert finding.message.startswith("non-finite ranks.2.loss on rank 2 at step 40")
    assert marker([finding]) == "⚠ nan"


def test_skipped_updates_that_rose_recently(log):
    writer, path = log
    write_train(writer, 4, skipped={"main": 1})
    assert tracker_of(path).findings() == []  # old skips (before the window) are not news
    write_train(writer, 2, start_time=1010, step0=40, skipped={"main": 4})
    [finding] = tracker_of(path).findings()
    assert finding.kind == "skipped" and "main 3 (total 4)" in finding.message


def test_data_loading_over_a_fifth_of_step_time(log):
    writer, path = log
    write_train(writer, 6, rank_row=lambda r, i: {"data_load_s": 0.12} if r == 3 else {})
    [finding] = tracker_of(path).findings()
    assert finding.kind == "data_loading" and finding.rank == 3
    assert finding.message.startswith("data loading 38% of step time on rank 3")


def test_memory_growing_at_every_interval(log):
    writer, path = log
    write_train(writer, GROWTH_INTERVALS + 1,
                rank_row=lambda r, i: {"rss_mb": 2000.0 + 40 * i} if r == 1 else {})
    [finding] = tracker_of(path).findings()
    assert finding.kind == "memory_growth" and finding.rank == 1
    assert "RSS of rank 1 grew" in finding.message and "2000 -> 2320 MiB (+16%)" in finding.message


def test_memory_that_dips_or_barely_moves_is_not_growth(log):
    writer, path = log
    write_train(writer, GROWTH_INTERVALS + 1,
                rank_row=lambda r, i: {"rss_mb": 2000.0 + 40 * i - (100 if i == 4 else 0),
                                       "gpu_memory_used_mb": 30000.0 + i} if r == 1 else {})
    assert tracker_of(path).findings() == []


def test_gpu_memory_growth_is_judged_too(log):
    writer, path = log
    write_train(writer, GROWTH_INTERVALS + 1,
                rank_row=lambda r, i: {"gpu_memory_used_mb": 30000.0 + (500 * i if r == 0 else 0)})
    [finding] = tracker_of(path).findings()
    assert finding.rank == 0 and finding.message.startswith("GPU memory of rank 0 grew")


def test_a_rank_much_slower_than_the_others(log):
    writer, path = log
    write_train(writer, 6, world=8, rank_row=lambda r, i: {"forward_s": 0.3} if r == 5 else {})
    [finding] = tracker_of(path).findings()
    assert finding.kind == "slow_rank" and finding.rank == 5
    assert "forward 300 ms per update, 3.0x the median rank (100 ms)" in finding.message


def test_a_new_launch_starts_afresh(log):
    writer, path = log
    write_train(writer, 5, rank_row=lambda r, i: {"loss": math.nan})
    writer.write("start", world_size=4, num_params=1, steps_per_epoch=100, max_epoch=2, resumed_from="model.pt",
                 config={})
    write_train(writer, 2, start_time=2000)
    assert tracker_of(path).findings() == []


def test_runs_list_summary_carries_the_findings(tmp_path):
    import os

    run = RunFactory(tmp_path / "sick", world_size=2)
    run.run_json(pid=os.getpid(), pgid=os.getpgid(0))
    run.start()
    for index in range(6):
        event = train_event(10 * (index + 1), 1, 2)
        event["ranks"][1]["data_load_s"] = 0.2
        run.events.write("train", **event)
    run.close()
    [summary] = RunsStore(tmp_path).scan()
    assert [f.kind for f in summary.health] == ["data_loading"]
    assert summary.health[0].rank == 1


def test_a_sampled_attach_judges_the_last_consecutive_train_events(tmp_path, monkeypatch):
    from asr_tui import tailer
    from asr_tui.run_state import RunState

    run = RunFactory(tmp_path / "big", steps_per_epoch=3000, max_epoch=1)
    run.start()
    run.train(3000, log_interval=1, valid_every=500, checkpoint_every=1000)
    run.close()
    full = RunState(max_points=200)
    tailer.scan_history(run.run_dir / "events.jsonl", full)
    monkeypatch.setattr(tailer, "FULL_PARSE_BYTES", 1024)
    sampled = RunState(max_points=200)
    scan = tailer.scan_history(run.run_dir / "events.jsonl", sampled, train_samples=100)
    assert scan.sampled_train < 150
    assert [e["step"] for e in sampled.health.train] == [e["step"] for e in full.health.train] \
        == list(range(2985, 3001))
