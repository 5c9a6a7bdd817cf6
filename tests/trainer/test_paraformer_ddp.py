"""A Paraformer under torchrun with two processes: killed with SIGKILL after a checkpoint and
relaunched, it ends with the very weights of a run never killed (the glancing sampler draws
random positions, so the RNG states must resume too); its export loads back."""

from __future__ import annotations

import json
import os

import pytest

from engine.decode.model_dir import export_model_dir, load_asr
from engine.models.paraformer import Paraformer
from tests.trainer.ddp_resume import TRAIN_CONF, kill_resume_and_compare
from tests.trainer.test_paraformer_run import PARAFORMER
from tests.trainer.tiny import tiny_config, write_config

pytestmark = pytest.mark.slow


def config_for(corpus, run_dir, tmp_path, name):
    config = {**tiny_config(corpus, run_dir), **PARAFORMER, "specaug_conf": {}, "train_conf": TRAIN_CONF,
              "distributed": {"nproc_per_node": 2}}
    config["train_data_set_list"] = [str(tmp_path / "train16.jsonl")]
    config["dataset_conf"] = {**config["dataset_conf"], "batch_size": 4}  # 2 updates per epoch on each rank
    return write_config(config, tmp_path / f"{name}.yaml")


def test_two_ranks_killed_resume_exactly_and_export(small_corpus, tmp_path):
    lines = (small_corpus / "train.jsonl").read_text(encoding="utf-8").splitlines()[:16]
    sources = []
    for line in lines:  # absolute paths: the list lives outside the corpus directory
        entry = json.loads(line)
        if not os.path.isabs(entry["source"]):
            entry["source"] = str(small_corpus / entry["source"])
        sources.append(json.dumps(entry, ensure_ascii=False))
    (tmp_path / "train16.jsonl").write_text("\n".join(sources) + "\n", encoding="utf-8")
    kill_resume_and_compare(lambda run_dir, name: config_for(small_corpus, run_dir, tmp_path, name),
                            tmp_path, timeout_s=600)

    run_dir = tmp_path / "run"
    exported = export_model_dir(run_dir, tmp_path / "export")
    model, _, _, config = load_asr(exported)
    assert isinstance(model, Paraformer) and config["model"] == "paraformer"
