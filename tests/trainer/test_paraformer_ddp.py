"""A Paraformer under torchrun with two processes: killed with SIGKILL after a checkpoint and
relaunched, it ends with the very weights of a run never killed (the glancing sampler draws
random positions, so the RNG states must resume too); its export loads back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from engine.decode.model_dir import export_model_dir, load_asr
from engine.models.paraformer import Paraformer
from tests.trainer.test_distributed import free_port
from tests.trainer.test_paraformer_run import PARAFORMER
from tests.trainer.tiny import REPO, engine_env, events_of, model_weights, tiny_config, write_config

pytestmark = pytest.mark.slow

TRAIN_CONF = {"max_epoch": 2, "log_interval": 1, "validate_interval": 1000, "save_checkpoint_interval": 1,
              "keep_nbest_models": 2, "avg_nbest_model": 2, "deterministic": True}


def config_for(corpus, run_dir, tmp_path, name):
    config = {**tiny_config(corpus, run_dir), **PARAFORMER, "specaug_conf": {}, "train_conf": TRAIN_CONF,
              "distributed": {"nproc_per_node": 2}}
    config["train_data_set_list"] = [str(tmp_path / "train16.jsonl")]
    config["dataset_conf"] = {**config["dataset_conf"], "batch_size": 4}  # 2 updates per epoch on each rank
    return write_config(config, tmp_path / f"{name}.yaml")


def torchrun(config_path, log_path) -> subprocess.Popen:
    handle = open(log_path, "ab")
    argv = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
            "--master_addr", "127.0.0.1", "--master_port", str(free_port()), "-m", "engine.train",
            "--config", str(config_path)]
    return subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, env=engine_env(), cwd=REPO,
                            start_new_session=True)


def test_two_ranks_killed_resume_exactly_and_export(small_corpus, tmp_path):
    lines = (small_corpus / "train.jsonl").read_text(encoding="utf-8").splitlines()[:16]
    sources = []
    for line in lines:  # absolute paths: the list lives outside the corpus directory
        entry = json.loads(line)
        if not os.path.isabs(entry["source"]):
            entry["source"] = str(small_corpus / entry["source"])
        sources.append(json.dumps(entry, ensure_ascii=False))
    (tmp_path / "train16.jsonl").write_text("\n".join(sources) + "\n", encoding="utf-8")
    run_dir, clean_dir, log = tmp_path / "run", tmp_path / "clean", tmp_path / "torchrun.log"

    process = torchrun(config_for(small_corpus, run_dir, tmp_path, "run"), log)
    deadline = time.monotonic() + 600
    while not any(e["event"] == "checkpoint" for e in (events_of(run_dir) if (run_dir / "events.jsonl").exists() else [])):
        assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint within 600 s"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    saved_step = torch.load(run_dir / "model.pt", map_location="cpu", weights_only=True)["step"]
    assert saved_step < 4  # killed before the end (4 updates in all)

    relaunch = torchrun(config_for(small_corpus, run_dir, tmp_path, "run"), log)
    assert relaunch.wait(timeout=600) == 0, log.read_text()[-3000:]
    starts = [e for e in events_of(run_dir) if e["event"] == "start"]
    assert starts[-1]["resumed_from"] is not None and starts[-1]["step"] == saved_step
    assert starts[-1]["world_size"] == 2

    clean = torchrun(config_for(small_corpus, clean_dir, tmp_path, "clean"), tmp_path / "clean.log")
    assert clean.wait(timeout=600) == 0, (tmp_path / "clean.log").read_text()[-3000:]
    resumed, uninterrupted = model_weights(run_dir / "model.pt"), model_weights(clean_dir / "model.pt")
    for name, value in uninterrupted.items():
        assert torch.equal(resumed[name], value), name

    exported = export_model_dir(run_dir, tmp_path / "export")
    model, _, _, config = load_asr(exported)
    assert isinstance(model, Paraformer) and config["model"] == "paraformer"
