"""An exception on rank 1 of 2 reaches the event log with its traceback, and every rank ends."""

from __future__ import annotations

import subprocess
import sys

from tests.trainer.tiny import REPO, engine_env, events_of, run_json, tiny_config, write_config


def test_error_on_one_rank_of_two_is_logged_and_ends_the_job(small_corpus, tmp_path):
    run_dir = tmp_path / "run"
    config = write_config(tiny_config(small_corpus, run_dir, train_conf={"log_interval": 1}), tmp_path / "run.yaml")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(REPO / "tests" / "trainer" / "faulty_train.py"), "--config", str(config)]
    result = subprocess.run(command, env=engine_env(), cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert result.returncode != 0
    events = events_of(run_dir)
    errors = [e for e in events if e["event"] == "error"]
    from_rank_1 = [e for e in errors if e["rank"] == 1]
    assert len(from_rank_1) == 1, (errors, result.stderr[-3000:])
    assert "injected failure on rank 1" in from_rank_1[0]["message"]
    assert "run_failing_on_rank_1" in from_rank_1[0]["traceback"]
    end = events[-1]
    assert end["event"] == "end" and end["status"] == "failed" and "rank 1" in end["reason"]
    assert not list(run_dir.glob("events.rank*.err.json"))
    assert run_json(run_dir)["status"] == "failed"
