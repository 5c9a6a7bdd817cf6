"""Launch, stop (SIGTERM to a real process group) and resume, with a stand-in engine."""

import json
import os
import sys
import time
from pathlib import Path

import pytest

from asr_tui.launcher import LaunchError, Launcher
from asr_tui.runs_store import RunsStore, read_run_json
from engine.config import DEFAULTS, deep_merge
from engine.events import read_events

FAKE = Path(__file__).with_name("fake_engine.py")


@pytest.fixture
def fake_python(tmp_path):
    """An executable that torchrun's argv runs in place of python: the stand-in engine."""
    script = tmp_path / "fake-python"
    script.write_text(f"#!/bin/sh\nexec {sys.executable} {FAKE} \"$@\"\n")
    script.chmod(0o755)
    return str(script)


def wait_until(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def events_of(run_dir):
    return read_events(run_dir / "events.jsonl")


def stop_and_reap(launcher, run_dir):
    """SIGTERM the job; wait for its `end` event and for the launcher to reap it (no zombie)."""
    launcher.stop(run_dir)
    wait_until(lambda: events_of(run_dir)[-1]["event"] == "end")
    wait_until(lambda: launcher.reap())


def test_launch_stop_resume_cycle(tmp_path, fake_python):
    config = deep_merge(DEFAULTS, {"output_dir": "exp/r1", "train_data_set_list": ["train.jsonl"]})
    launcher = Launcher(cwd=tmp_path, python=fake_python)
    run_dir = launcher.launch(config)
    assert run_dir == tmp_path / "exp" / "r1"
    assert (run_dir / "config.yaml").exists()
    record = read_run_json(run_dir)
    assert record["launched_by"] == "asr-tui" and record["cwd"] == str(tmp_path)
    assert record["pgid"] == record["pid"] != os.getpgid(0)  # its own session
    assert os.getsid(record["pid"]) == record["pid"]
    assert record["argv"][1:4] == ["-m", "torch.distributed.run", "--nnodes"]
    wait_until(lambda: any(e["event"] == "train" for e in events_of(run_dir)))
    with pytest.raises(LaunchError, match="still running"):
        launcher.launch(config)
    assert RunsStore(tmp_path / "exp").scan()[0].status == "running"

    stop_and_reap(launcher, run_dir)
    assert events_of(run_dir)[-1]["status"] == "stopped"
    summary = RunsStore(tmp_path / "exp").scan()[0]
    assert summary.status == "stopped" and summary.reason == "SIGTERM"
    assert "fake engine saved and stopped" in (run_dir / "console.log").read_text()
    with pytest.raises(LaunchError, match="not running"):
        launcher.stop(run_dir)

    checkpoint = run_dir / "model.pt"
    checkpoint.write_bytes(b"state")
    launcher.resume(run_dir, checkpoint)
    wait_until(lambda: sum(e["event"] == "start" for e in events_of(run_dir)) == 2)
    argv = json.loads((run_dir / "fake_argv.json").read_text())
    assert argv[-1] == f"++train_conf.resume_from={checkpoint.resolve()}"
    starts = [e for e in events_of(run_dir) if e["event"] == "start"]
    assert starts[-1]["resumed_from"] == str(checkpoint.resolve())
    assert read_run_json(run_dir)["resumed_from"] == str(checkpoint)
    assert RunsStore(tmp_path / "exp").scan()[0].status == "running"
    stop_and_reap(launcher, run_dir)
    log = (run_dir / "console.log").read_text()
    assert log.count("# asr-tui") == 2  # both launches appended, nothing overwritten


def test_launch_rejects_bad_config_and_missing_checkpoint(tmp_path, fake_python):
    launcher = Launcher(cwd=tmp_path, python=fake_python)
    bad = deep_merge(DEFAULTS, {"output_dir": "exp/bad", "train_data_set_list": ["t.jsonl"],
                                "train_conf": {"max_epoch": "many"}})
    with pytest.raises(LaunchError, match="train_conf.max_epoch"):
        launcher.launch(bad)
    assert not (tmp_path / "exp" / "bad").exists()
    (tmp_path / "exp" / "r").mkdir(parents=True)
    with pytest.raises(LaunchError, match="no such checkpoint"):
        launcher.resume(tmp_path / "exp" / "r", tmp_path / "exp" / "r" / "model.pt.ep3")


def test_resume_with_paths_relative_to_the_working_directory(tmp_path, fake_python, monkeypatch):
    """A console started with ``--runs-root exp`` hands over relative paths."""
    monkeypatch.chdir(tmp_path)
    config = deep_merge(DEFAULTS, {"output_dir": "exp/rel", "train_data_set_list": ["train.jsonl"]})
    launcher = Launcher(python=fake_python)
    run_dir = launcher.launch(config)
    wait_until(lambda: any(e["event"] == "train" for e in events_of(run_dir)))
    stop_and_reap(launcher, run_dir)
    (run_dir / "model.pt").write_bytes(b"state")
    launcher.resume(Path("exp/rel"), Path("exp/rel/model.pt"))
    wait_until(lambda: sum(e["event"] == "start" for e in events_of(run_dir)) == 2)
    assert read_run_json(run_dir)["resumed_from"] == str(tmp_path / "exp" / "rel" / "model.pt")
    stop_and_reap(launcher, run_dir)
    launcher.resume(Path("exp/rel"), Path("model.pt"))  # a bare name is one of the run's files
    wait_until(lambda: sum(e["event"] == "start" for e in events_of(run_dir)) == 3)
    stop_and_reap(launcher, run_dir)


async def test_app_launches_stops_and_resumes_by_keys(tmp_path, fake_python):
    from asr_tui.app import AsrTuiApp
    from asr_tui.messages import LaunchRequested
    from asr_tui.screens.confirm import ConfirmScreen
    from asr_tui.screens.monitor import MonitorScreen
    from tests.tui.pilot import wait_for

    config = deep_merge(DEFAULTS, {"output_dir": str(tmp_path / "exp" / "keys"),
                                   "train_data_set_list": ["train.jsonl"]})
    launcher = Launcher(cwd=tmp_path, python=fake_python)
    app = AsrTuiApp(runs_root=tmp_path / "exp", launcher=launcher)
    async with app.run_test(size=(80, 24)) as pilot:
        app.post_message(LaunchRequested(config))
        await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen))
        monitor = app.screen
        await wait_for(pilot, lambda: monitor.status == "running" and monitor.follower.state.step)
        await pilot.press("s")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await wait_for(pilot, lambda: monitor.status == "stopped")
        (tmp_path / "exp" / "keys" / "model.pt").write_bytes(b"state")
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen) and app.screen is not monitor)
        resumed = app.screen
        await wait_for(pilot, lambda: resumed.status == "running" and resumed.follower.state.launches == 2)
        await pilot.press("s", "y")
        await wait_for(pilot, lambda: resumed.status == "stopped")
    wait_until(lambda: launcher.reap() or not launcher._children)


def test_stop_a_torchrun_job_started_from_a_shell(tmp_path):
    """The engine records torchrun's group as launcher_pgid: stop signals that group."""
    import subprocess

    from tests.tui.runfactory import RunFactory, dead_pid

    run = RunFactory(tmp_path / "scripted")
    job = subprocess.Popen([sys.executable, str(FAKE), "--config", str(run.run_dir / "config.yaml")],
                           start_new_session=True, stdout=subprocess.DEVNULL)
    gone = dead_pid()
    run.run_json(pid=gone, pgid=gone, launched_by="cli", launcher_pid=job.pid, launcher_pgid=job.pid)
    wait_until(lambda: any(e["event"] == "train" for e in events_of(run.run_dir)))
    assert RunsStore(tmp_path).scan()[0].status == "running"  # alive through launcher_pid
    assert Launcher(cwd=tmp_path).stop(run.run_dir) == job.pid
    assert job.wait(30) == 0
    assert events_of(run.run_dir)[-1] == {**events_of(run.run_dir)[-1], "event": "end", "status": "stopped"}
    assert RunsStore(tmp_path).scan()[0].status == "stopped"


async def test_job_outlives_the_console_and_a_new_console_reattaches(tmp_path, fake_python):
    from asr_tui.app import AsrTuiApp
    from asr_tui.messages import LaunchRequested
    from asr_tui.screens.monitor import MonitorScreen
    from tests.tui.pilot import wait_for

    config = deep_merge(DEFAULTS, {"output_dir": str(tmp_path / "exp" / "detached"),
                                   "train_data_set_list": ["train.jsonl"]})
    launcher = Launcher(cwd=tmp_path, python=fake_python)
    app = AsrTuiApp(runs_root=tmp_path / "exp", launcher=launcher)
    async with app.run_test(size=(80, 24)) as pilot:
        app.post_message(LaunchRequested(config))
        await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen) and app.screen.follower.state.step)
        await pilot.press("q")
    run_dir = tmp_path / "exp" / "detached"
    pid = read_run_json(run_dir)["pid"]
    os.kill(pid, 0)  # still running after the console quit
    steps_before = sum(e["event"] == "train" for e in events_of(run_dir))
    # The job trains on with no console watching it.
    wait_until(lambda: sum(e["event"] == "train" for e in events_of(run_dir)) > steps_before)

    again = AsrTuiApp(runs_root=tmp_path / "exp", run_dir=run_dir)
    async with again.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(again.screen, MonitorScreen) and again.screen.attached)
        monitor = again.screen
        assert monitor.status == "running"
        assert monitor.follower.state.series["train/loss"].total_points >= steps_before  # whole history
        assert monitor.follower.state.series["train/loss"].points()[0][0] == 1
        await pilot.press("s", "y")
        await wait_for(pilot, lambda: monitor.status == "stopped")
    wait_until(lambda: launcher.reap() or not launcher._children)
