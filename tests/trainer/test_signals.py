"""SIGTERM: the step finishes, the state is saved, ``end`` says stopped, exit 0; a relaunch resumes there."""

from __future__ import annotations

import signal
import time

import torch

from tests.trainer.tiny import events_of, launch, run_json, tiny_config, write_config


def wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def test_sigterm_saves_and_ends_stopped_then_relaunch_resumes(small_corpus, tmp_path):
    run_dir = tmp_path / "run"
    config = write_config(tiny_config(small_corpus, run_dir, train_conf={
        "max_epoch": 30, "log_interval": 1, "validate_interval": 1000, "save_checkpoint_interval": 1000,
        "avg_nbest_model": 1}), tmp_path / "run.yaml")
    process = launch(config, log_path=tmp_path / "console.log")
    try:
        wait_for(lambda: any(e["event"] == "train" and e["step"] >= 2 for e in events_of(run_dir)), 120,
                 "the first train events")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, (tmp_path / "console.log").read_text()
    finally:
        if process.poll() is None:
            process.kill()
    events = events_of(run_dir)
    end = events[-1]
    assert end["event"] == "end" and end["status"] == "stopped" and "SIGTERM" in end["reason"]
    saved = [e for e in events if e["event"] == "checkpoint"][-1]
    last_train_step = [e["step"] for e in events if e["event"] == "train"][-1]
    assert saved["kind"] == "latest" and saved["path"] == "model.pt" and saved["step"] >= last_train_step
    state = torch.load(run_dir / "model.pt", map_location="cpu", weights_only=True)
    assert state["step"] == saved["step"]
    assert run_json(run_dir)["status"] == "stopped"

    # Relaunch (resume is on by default): it continues from the saved step and can finish.
    relaunch = launch(config, "++train_conf.max_epoch=1", log_path=tmp_path / "console.log")
    assert relaunch.wait(timeout=180) == 0, (tmp_path / "console.log").read_text()
    events = events_of(run_dir)
    starts = [e for e in events if e["event"] == "start"]
    assert len(starts) == 2 and starts[1]["resumed_from"] == "model.pt" and starts[1]["step"] == saved["step"]
    resumed_train = [e["step"] for e in events[events.index(starts[1]):] if e["event"] == "train"]
    assert not resumed_train or resumed_train[0] == saved["step"] + 1
    assert events[-1]["status"] == "finished" and run_json(run_dir)["status"] == "finished"
