"""Fine-tuning the FunASR fixture model directory under torchrun with two processes: killed with
SIGKILL after a checkpoint, relaunched, it ends with the very weights of a run never killed, and
its export is a FunASR model directory with FunASR's own key set that loads back."""

from __future__ import annotations

import pytest

from engine.decode.model_dir import export_model_dir, load_asr, load_state_dict
from tests.funasr.test_model_dir_training import FIXTURE, finetune_config
from tests.trainer.ddp_resume import TRAIN_CONF, kill_resume_and_compare
from tests.trainer.tiny import write_config

pytestmark = pytest.mark.slow


def config_for(corpus, run_dir, tmp_path, name):
    config = finetune_config(corpus, run_dir)
    config["train_conf"] = TRAIN_CONF
    config["dataset_conf"]["batch_size"] = 4  # 16 utterances: 2 updates per epoch on each of 2 ranks
    config["distributed"] = {"nproc_per_node": 2}
    return write_config(config, tmp_path / f"{name}.yaml")


def test_finetune_two_ranks_killed_resumes_exactly_and_exports(small_corpus, tmp_path):
    starts = kill_resume_and_compare(lambda run_dir, name: config_for(small_corpus, run_dir, tmp_path, name),
                                     tmp_path, timeout_s=300)
    assert starts[0]["model_dir"] == str(FIXTURE.resolve())
    assert starts[0]["init_param"]["loaded"] == starts[0]["init_param"]["total"]

    run_dir = tmp_path / "run"
    exported = export_model_dir(run_dir, tmp_path / "export")
    funasr_state, _ = load_state_dict(FIXTURE / "model.pt")
    exported_state, _ = load_state_dict(exported / "model.pt")
    assert {k: v.shape for k, v in exported_state.items()} == {k: v.shape for k, v in funasr_state.items()}
    model, _, tokenizer, config = load_asr(exported)
    assert config["model"] == "conformer" and (model.sos, model.eos) == (1, 2)
    assert tokenizer.token_list == load_asr(FIXTURE)[2].token_list
