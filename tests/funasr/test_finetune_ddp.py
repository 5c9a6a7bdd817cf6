"""Fine-tuning the FunASR fixture model directory under torchrun with two processes: killed with
SIGKILL after a checkpoint, relaunched, it ends with the very weights of a run never killed, and
its export is a FunASR model directory with FunASR's own key set that loads back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from engine.decode.model_dir import export_model_dir, load_asr, load_state_dict
from tests.funasr.test_model_dir_training import FIXTURE, finetune_config
from tests.trainer.test_distributed import free_port
from tests.trainer.tiny import REPO, engine_env, events_of, model_weights, write_config

pytestmark = pytest.mark.slow

TRAIN_CONF = {"max_epoch": 2, "log_interval": 1, "validate_interval": 1000, "save_checkpoint_interval": 1,
              "keep_nbest_models": 2, "avg_nbest_model": 2, "deterministic": True}


def torchrun(config_path, log_path) -> subprocess.Popen:
    handle = open(log_path, "ab")
    argv = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
            "--master_addr", "127.0.0.1", "--master_port", str(free_port()), "-m", "engine.train",
            "--config", str(config_path)]
    return subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, env=engine_env(), cwd=REPO,
                            start_new_session=True)


def config_for(corpus, run_dir, tmp_path, name):
    config = finetune_config(corpus, run_dir)
    config["train_conf"] = TRAIN_CONF
    config["dataset_conf"]["batch_size"] = 4  # 16 utterances: 2 updates per epoch on each of 2 ranks
    config["distributed"] = {"nproc_per_node": 2}
    return write_config(config, tmp_path / f"{name}.yaml")


def test_finetune_two_ranks_killed_resumes_exactly_and_exports(small_corpus, tmp_path):
    run_dir, clean_dir = tmp_path / "run", tmp_path / "clean"
    log = tmp_path / "torchrun.log"
    process = torchrun(config_for(small_corpus, run_dir, tmp_path, "run"), log)
    deadline = time.monotonic() + 300
    while not any(e["event"] == "checkpoint" for e in (events_of(run_dir) if (run_dir / "events.jsonl").exists() else [])):
        assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    saved_step = torch.load(run_dir / "model.pt", map_location="cpu", weights_only=True)["step"]
    assert saved_step < 4  # killed before the end (4 updates in all)

    relaunch = torchrun(config_for(small_corpus, run_dir, tmp_path, "run"), log)
    assert relaunch.wait(timeout=300) == 0, log.read_text()[-3000:]
    starts = [e for e in events_of(run_dir) if e["event"] == "start"]
    assert starts[-1]["resumed_from"] is not None and starts[-1]["step"] == saved_step
    assert starts[-1]["world_size"] == 2 and starts[0]["model_dir"] == str(FIXTURE.resolve())
    assert starts[0]["init_param"]["loaded"] == starts[0]["init_param"]["total"]

    clean = torchrun(config_for(small_corpus, clean_dir, tmp_path, "clean"), tmp_path / "clean.log")
    assert clean.wait(timeout=300) == 0, (tmp_path / "clean.log").read_text()[-3000:]
    resumed, uninterrupted = model_weights(run_dir / "model.pt"), model_weights(clean_dir / "model.pt")
    for name, value in uninterrupted.items():
        assert torch.equal(resumed[name], value), name

    exported = export_model_dir(run_dir, tmp_path / "export")
    funasr_state, _ = load_state_dict(FIXTURE / "model.pt")
    exported_state, _ = load_state_dict(exported / "model.pt")
    assert {k: v.shape for k, v in exported_state.items()} == {k: v.shape for k, v in funasr_state.items()}
    model, _, tokenizer, config = load_asr(exported)
    assert config["model"] == "conformer" and (model.sos, model.eos) == (1, 2)
    assert tokenizer.token_list == load_asr(FIXTURE)[2].token_list
