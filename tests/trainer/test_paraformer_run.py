"""A tiny Paraformer trained by the engine's trainer: loss terms in the events, validation,
keep-n-best on acc, averaging, then asr-decode (paraformer mode), export and AutoModel."""

from __future__ import annotations

import json

import pytest

from engine.decode.cli import main as decode_main
from engine.decode.model_dir import export_model_dir, load_asr
from engine.events import validate_event
from engine.models.paraformer import Paraformer
from engine.train import main
from tests.trainer.tiny import events_of, tiny_config, write_config

PARAFORMER = {
    "model": "paraformer",
    "model_conf": {"ctc_weight": 0.0, "lsm_weight": 0.1, "length_normalized_loss": True, "predictor_weight": 1.0,
                   "predictor_bias": 1, "sampling_ratio": 0.75},
    "encoder_conf": {"output_size": 32, "attention_heads": 2, "linear_units": 48, "num_blocks": 2,
                     "input_layer": "pe", "kernel_size": 5},
    "decoder_conf": {"attention_heads": 2, "linear_units": 48, "num_blocks": 2, "att_layer_num": 1, "kernel_size": 5},
    "predictor_conf": {"idim": 32, "l_order": 1, "r_order": 1, "tail_threshold": 0.45},
    "frontend_conf": {"n_mels": 40, "lfr_m": 3, "lfr_n": 2, "dither": 1.0},
}


@pytest.fixture(scope="module")
def paraformer_run(small_corpus, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("paraformer_run")
    config = {**tiny_config(small_corpus, run_dir), **PARAFORMER, "specaug_conf": {}}
    path = write_config(config, run_dir.parent / f"{run_dir.name}.yaml")
    assert main(["--config", str(path)]) == 0
    return run_dir


def test_trainer_records_paraformer_loss_terms(paraformer_run):
    events = events_of(paraformer_run)
    for event in events:
        validate_event(event)
    train = [e for e in events if e["event"] == "train"]
    valid = [e for e in events if e["event"] == "valid"]
    assert train and valid
    assert set(train[-1]["losses"]) >= {"loss", "loss_att", "loss_pre"} and "loss_ctc" not in train[-1]["losses"]
    assert set(valid[-1]["losses"]) >= {"loss", "loss_att", "loss_pre"}
    assert 0.0 <= valid[-1]["acc"] <= 1.0
    average = [e for e in events if e["event"] == "average"]
    assert average and (paraformer_run / "model.pt.avg3").is_file()


def test_decode_export_and_automodel(paraformer_run, small_corpus, tmp_path):
    out = tmp_path / "decoded"
    assert decode_main(["--model", str(paraformer_run), "--input", str(small_corpus / "valid.jsonl"),
                        "--output", str(out), "--no-progress", "--num-threads", "1"]) == 0
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["mode"] == "paraformer" and summary["utterances"] > 0 and summary["cer"] is not None
    assert decode_main(["--model", str(paraformer_run), "--input", str(small_corpus / "valid.jsonl"),
                        "--output", str(tmp_path / "bad"), "--mode", "attention", "--no-progress"]) == 2

    exported = export_model_dir(paraformer_run, tmp_path / "exported")
    model, _, _, config = load_asr(exported)
    assert isinstance(model, Paraformer) and config["model"] == "paraformer"

    from engine.decode.auto_model import AutoModel

    wav = json.loads((small_corpus / "valid.jsonl").read_text(encoding="utf-8").splitlines()[0])["source"]
    wav = str(small_corpus / wav) if not wav.startswith("/") else wav
    result = AutoModel(model=str(exported), num_threads=1).generate(input=wav)
    assert len(result) == 1 and isinstance(result[0]["text"], str)
