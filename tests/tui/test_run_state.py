"""RunState folding and bounded series: what the monitor's numbers and charts rest on."""

from pathlib import Path

from asr_tui.run_state import RunState, Series, learning_rates, loss_terms
from tests.tui.runfactory import train_event


def test_series_stays_bounded_and_keeps_the_whole_span():
    series = Series(max_points=100)
    for step in range(1, 100_001):
        series.add(step, float(step))
    xs, ys = series.points()
    assert len(series) <= 100 and len(xs) <= 101
    assert xs[0] < 2_000 and xs[-1] > 98_000  # the first and last stretch are both still there
    assert all(abs(x - y) < 1e-6 for x, y in zip(xs, ys))  # buckets average x and y alike
    assert series.total_points == 100_000


def test_series_ignores_non_finite_values():
    series = Series(max_points=10)
    series.add(1, float("nan"))
    series.add(2, float("inf"))
    series.add(3, 1.5)
    assert series.points() == ([3], [1.5])


def test_state_progress_eta_and_resume_clears_end():
    state = RunState()
    state.apply({"event": "start", "time": 0.0, "steps_per_epoch": 100, "max_epoch": 4, "world_size": 2})
    for index, step in enumerate(range(10, 210, 10)):
        state.apply({"event": "train", "time": float(index), **train_event(step, 1 + step // 100)})
    assert state.total_steps == 400 and state.step == 200
    assert state.progress == 0.5
    assert abs(state.steps_per_second() - 10.0) < 1e-9
    assert abs(state.eta_seconds() - 20.0) < 1e-9
    state.apply({"event": "end", "time": 30.0, "status": "stopped", "reason": "SIGTERM"})
    assert state.end["status"] == "stopped"
    state.apply({"event": "start", "time": 40.0, "steps_per_epoch": 100, "max_epoch": 4})
    assert state.end is None and state.launches == 2
    assert len(state.series["train/loss"]) == 20
    assert set(state.series) >= {"train/loss", "train/acc", "lr/main"}


def test_field_readers_accept_engine_spellings():
    assert learning_rates({"lr": {"main": 0.1, "ctc": 0.2}}) == {"main": 0.1, "ctc": 0.2}
    assert learning_rates({"lr": 0.5}) == {"lr": 0.5}
    assert loss_terms({"loss": 1.0, "loss_ctc": 2.0, "acc": 0.3}) == {"loss": 1.0, "loss_ctc": 2.0}
    assert loss_terms({"losses": {"loss": 1.0}}) == {"loss": 1.0}


def test_a_finished_run_is_at_100_percent():
    """Length batching makes the real step count differ from steps_per_epoch × max_epoch, and the
    last update of an epoch is reported by its checkpoint, not by a train event: a finished run
    shows 100% and its real last step (a demo run showed 99.3%, 1366/1376)."""
    from asr_tui.runs_store import summarize
    from asr_tui.screens.runs import progress_text

    state = RunState()
    state.apply({"event": "start", "time": 0.0, "steps_per_epoch": 172, "max_epoch": 8, "world_size": 1})
    state.apply({"event": "train", "time": 1.0, **train_event(1360, 8)})
    state.apply({"event": "checkpoint", "time": 2.0, "path": "model.pt.ep8", "epoch": 8, "step": 1366,
                 "metric": "acc", "metrics": {"acc": 0.9}, "kept": [], "deleted": [], "kind": "epoch"})
    assert state.step == 1366
    assert state.progress < 1.0  # still running: against the estimate
    state.apply({"event": "end", "time": 3.0, "status": "finished", "reason": ""})
    assert state.progress == 1.0 and state.total_steps == 1366
    summary = summarize(Path("run"), state)
    assert progress_text(summary) == "100.0% 1366/1366"


def test_resource_series_take_one_point_a_second_of_run_time():
    """A run logging 10 times a second charts memory and CPU once a second (RESOURCE_SECONDS)."""
    state = RunState()
    for index in range(50):
        state.apply({"event": "train", "time": 1000.0 + index / 10, "step": index + 1,
                     "ranks": [{"rank": 0, "rss_mb": 100.0 + index, "cpu_percent": 90.0}]})
    assert state.series["rss/r0"].points()[1] == [100.0, 110.0, 120.0, 130.0, 140.0]
    assert len(state.series["cpu/r0"]) == 5
    assert state.step == 50 and state.last_train["step"] == 50  # the rest of each event is read
