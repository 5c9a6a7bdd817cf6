"""torchrun: two processes on one node, and two single-process "nodes" on localhost, end with
bit-identical weights on every rank (the checkpoint events carry each rank's weights digest)."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from tests.trainer.tiny import REPO, engine_env, events_of, tiny_config, write_config

pytestmark = pytest.mark.slow

SHORT = {"max_epoch": 1, "log_interval": 2, "validate_interval": 1000, "save_checkpoint_interval": 3,
         "keep_nbest_models": 5, "avg_nbest_model": 2}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", *args]


def assert_replicas_identical(run_dir, world_size: int) -> None:
    events = events_of(run_dir)
    start = next(e for e in events if e["event"] == "start")
    assert start["world_size"] == world_size
    train = [e for e in events if e["event"] == "train"]
    assert train and all(len(e["ranks"]) == world_size for e in train)
    named = [e for e in events if e["event"] == "checkpoint" and e["kind"] in ("step", "epoch")]
    assert named
    for checkpoint in named:
        digests = checkpoint["rank_weights_sha256"]
        assert len(digests) == world_size and len(set(digests)) == 1, checkpoint
    assert events[-1]["event"] == "end" and events[-1]["status"] == "finished"


def test_torchrun_two_processes_end_with_identical_weights(small_corpus, tmp_path):
    run_dir = tmp_path / "run"
    config = write_config(tiny_config(small_corpus, run_dir, train_conf=SHORT), tmp_path / "run.yaml")
    result = subprocess.run(torchrun("--standalone", "--nproc_per_node", "2", "-m", "engine.train",
                                     "--config", str(config)),
                            env=engine_env(), cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    assert_replicas_identical(run_dir, 2)


def test_two_nodes_on_localhost_end_with_identical_weights(small_corpus, tmp_path):
    # Each "node" has its own run directory, as machines without shared storage would:
    # node 1 gets the tokenizer and CMVN from node 0 by broadcast.
    port = str(free_port())
    configs = []
    for node in (0, 1):
        run_dir = tmp_path / f"node{node}"
        configs.append(write_config(tiny_config(small_corpus, run_dir, train_conf=SHORT), tmp_path / f"node{node}.yaml"))
    nodes = [
        subprocess.Popen(torchrun("--nnodes", "2", "--node_rank", str(node), "--nproc_per_node", "1",
                                  "--master_addr", "127.0.0.1", "--master_port", port, "-m", "engine.train",
                                  "--config", str(configs[node])),
                         env=engine_env(), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for node in (0, 1)
    ]
    outputs = []
    try:
        for process in nodes:
            outputs.append(process.communicate(timeout=300)[0])
    finally:
        for process in nodes:
            if process.poll() is None:
                process.kill()
    assert [p.returncode for p in nodes] == [0, 0], "\n".join(o[-3000:] for o in outputs)
    assert_replicas_identical(tmp_path / "node0", 2)
    assert (tmp_path / "node1" / "tokens.txt").read_bytes() == (tmp_path / "node0" / "tokens.txt").read_bytes()
    assert (tmp_path / "node1" / "am.mvn").read_bytes() == (tmp_path / "node0" / "am.mvn").read_bytes()
    assert not (tmp_path / "node1" / "events.jsonl").exists()  # only rank 0 writes the log
