"""Two ranks under torchrun, killed with SIGKILL after their first checkpoint and relaunched, against
a run never killed: shared by the model tests that prove an exact resume (Paraformer, FunASR fine-tune)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import torch

from tests.trainer.test_distributed import free_port
from tests.trainer.tiny import REPO, engine_env, events_of, model_weights

# keeps 4 updates in all: 2 epochs x 2 batches on each of 2 ranks (with 16 utterances, batch_size 4)
TRAIN_CONF = {"max_epoch": 2, "log_interval": 1, "validate_interval": 1000, "save_checkpoint_interval": 1,
              "keep_nbest_models": 2, "avg_nbest_model": 2, "deterministic": True}


def torchrun_two_ranks(config_path: Path, log_path: Path) -> subprocess.Popen:
    handle = open(log_path, "ab")
    argv = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
            "--master_addr", "127.0.0.1", "--master_port", str(free_port()), "-m", "engine.train",
            "--config", str(config_path)]
    return subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, env=engine_env(), cwd=REPO,
                            start_new_session=True)


def kill_resume_and_compare(config_for: Callable[[Path, str], Path], tmp_path: Path,
                            timeout_s: float) -> list[dict]:
    """Run ``config_for(run_dir, name)`` killed after its first checkpoint, relaunch it, run it again
    never killed, and assert both end with equal weights; returns the killed run's `start` events."""
    run_dir, clean_dir, log = tmp_path / "run", tmp_path / "clean", tmp_path / "torchrun.log"
    process = torchrun_two_ranks(config_for(run_dir, "run"), log)
    deadline = time.monotonic() + timeout_s
    while not any(e["event"] == "checkpoint" for e in (events_of(run_dir) if (run_dir / "events.jsonl").exists() else [])):
        assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"no checkpoint within {timeout_s} s"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    saved_step = torch.load(run_dir / "model.pt", map_location="cpu", weights_only=True)["step"]
    assert saved_step < 4  # killed before the end (4 updates in all)

    relaunch = torchrun_two_ranks(config_for(run_dir, "run"), log)
    assert relaunch.wait(timeout=timeout_s) == 0, log.read_text()[-3000:]
    starts = [e for e in events_of(run_dir) if e["event"] == "start"]
    assert starts[-1]["resumed_from"] is not None and starts[-1]["step"] == saved_step
    assert starts[-1]["world_size"] == 2

    clean = torchrun_two_ranks(config_for(clean_dir, "clean"), tmp_path / "clean.log")
    assert clean.wait(timeout=timeout_s) == 0, (tmp_path / "clean.log").read_text()[-3000:]
    resumed, uninterrupted = model_weights(run_dir / "model.pt"), model_weights(clean_dir / "model.pt")
    for name, value in uninterrupted.items():
        assert torch.equal(resumed[name], value), name
    return starts
