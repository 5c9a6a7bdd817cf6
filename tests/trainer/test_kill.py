"""kill -9 of the whole job at random moments, some during checkpoint writes, relaunching each time:
every relaunch resumes, every checkpoint file left on disk loads, and only the updates since the
last checkpoint are lost (the finished run equals one that was never killed)."""

from __future__ import annotations

import os
import random
import signal
import time

import pytest
import torch

from tests.trainer.tiny import events_of, launch, model_weights, run_json, tiny_config, write_config

pytestmark = pytest.mark.slow

KILLS = 12
TRAIN_CONF = {"max_epoch": 4, "log_interval": 1, "validate_interval": 1000, "save_checkpoint_interval": 1,
              "keep_nbest_models": 3, "avg_nbest_model": 2, "deterministic": True}


def checkpoint_files(run_dir):
    return sorted(p for p in run_dir.glob("model.pt*") if p.is_file())


def writing(run_dir) -> bool:
    return any(run_dir.glob(".model.pt*.tmp"))


def last_checkpoint_step(run_dir) -> int:
    steps = [e["step"] for e in events_of(run_dir) if e["event"] == "checkpoint"]
    return max(steps, default=0)


def since_first_train(events: list[dict]) -> list[dict]:
    starts = [i for i, e in enumerate(events) if e["event"] == "train"]
    return events[starts[0]:] if starts else []


def kill_at_random_moment(process, run_dir, rng: random.Random, during_write: bool, events_before: int) -> bool:
    """SIGKILL the process group once this launch trains; True if a checkpoint write was in progress.

    The moment is counted in events, not seconds: 1 to 9 of the launch's train/valid/checkpoint
    lines (a step writes three), then the next checkpoint write or up to 50 ms. A launch so gains
    at most four steps however fast the machine is, and with this seed the KILLS kills need at
    most 34 of the run's 40.
    """
    deadline = time.monotonic() + 300
    lines_to_wait = rng.randint(1, 9)
    while len(since_first_train(events_of(run_dir)[events_before:])) < lines_to_wait:
        if process.poll() is not None:
            return False  # the run finished before we could kill it
        assert time.monotonic() < deadline, "the relaunch never started training"
        time.sleep(0.005)
    if during_write:
        until = time.monotonic() + 10
        while not writing(run_dir) and time.monotonic() < until and process.poll() is None:
            time.sleep(0.001)
    else:
        time.sleep(rng.uniform(0.0, 0.05))
    caught_writing = writing(run_dir)
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=30)
    return caught_writing


def test_kill_minus_9_at_random_moments_loses_only_unsaved_steps(small_corpus, tmp_path):
    rng = random.Random(7)
    config = tiny_config(small_corpus, tmp_path / "run", train_conf=TRAIN_CONF)
    config_path = write_config(config, tmp_path / "run.yaml")
    run_dir = tmp_path / "run"
    log_path = tmp_path / "console.log"

    kills = during_writes = 0
    while kills < KILLS:
        saved_step = last_checkpoint_step(run_dir) if run_dir.exists() else 0
        on_disk = torch.load(run_dir / "model.pt", map_location="cpu", weights_only=True)["step"] \
            if (run_dir / "model.pt").exists() else 0
        events_before = len(events_of(run_dir)) if run_dir.exists() else 0
        process = launch(config_path, log_path=log_path)
        # the relaunch resumes from model.pt, which holds at least every step a checkpoint event announced
        assert on_disk >= saved_step
        caught = kill_at_random_moment(process, run_dir, rng, during_write=kills % 2 == 1,
                                       events_before=events_before)
        if process.returncode == 0:
            break  # finished before the kill; the final checks below still apply
        kills += 1
        during_writes += caught
        for path in checkpoint_files(run_dir):
            state = torch.load(path, map_location="cpu", weights_only=True)
            assert "model" in state, path
        starts = [e for e in events_of(run_dir) if e["event"] == "start"]
        if starts and starts[-1]["resumed_from"] is not None:
            assert starts[-1]["step"] == on_disk
    assert kills >= 10, f"only {kills} kills landed before the run finished"
    # Every other kill waits for a checkpoint write: a share of them must land inside one.
    assert during_writes >= KILLS // 4, f"only {during_writes} of {kills} kills landed during a checkpoint write"

    final = launch(config_path, log_path=log_path)
    assert final.wait(timeout=300) == 0, log_path.read_text()[-3000:]
    assert run_json(run_dir)["status"] == "finished"
    events = events_of(run_dir)
    assert events[-1]["event"] == "end" and events[-1]["status"] == "finished"
    assert not list(run_dir.glob("events.rank*.err.json"))

    # Only unsaved steps were ever lost, and they were redone identically: same weights as a clean run.
    clean_dir = tmp_path / "clean"
    clean_path = write_config(tiny_config(small_corpus, clean_dir, train_conf=TRAIN_CONF), tmp_path / "clean.yaml")
    clean = launch(clean_path, log_path=tmp_path / "clean.log")
    assert clean.wait(timeout=300) == 0
    killed_weights, clean_weights = model_weights(run_dir / "model.pt"), model_weights(clean_dir / "model.pt")
    for name in clean_weights:
        assert torch.equal(killed_weights[name], clean_weights[name]), name
    print(f"{kills} kills, {during_writes} during a checkpoint write")
