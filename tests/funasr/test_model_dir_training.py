"""``model: DIR``: fine-tuning a FunASR model directory; clear errors that write nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from engine.train import main
from tests.trainer.tiny import events_of, tiny_config, write_config

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "funasr" / "conformer" / "model"
OUTPUT_FILTER = "decoder.embed,decoder.output_layer,ctc.ctc_lo"
SHORT = {"max_epoch": 1, "log_interval": 2, "validate_interval": 1000, "save_checkpoint_interval": 1000,
         "keep_nbest_models": 1, "avg_nbest_model": 1, "deterministic": True}


def subset(corpus: Path, split: str, count: int, out_dir: Path) -> str:
    """The first ``count`` utterances of a split, as a list of its own (sources made absolute)."""
    import json

    out_dir.mkdir(parents=True, exist_ok=True)
    lines = (corpus / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()[:count]
    entries = [json.loads(line) for line in lines]
    for entry in entries:
        entry["source"] = str((corpus / entry["source"]).resolve())
    path = out_dir / f"{split}{count}.jsonl"
    path.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries), encoding="utf-8")
    return str(path)


def finetune_config(corpus: Path, run_dir: Path, model_dir: Path = FIXTURE, **sections) -> dict:
    """The tiny experiment on 16 utterances, the architecture sections left to the model directory."""
    config = tiny_config(corpus, run_dir, train_conf=SHORT, **sections)
    lists = run_dir.parent / "lists"
    config["train_data_set_list"] = [subset(corpus, "train", 16, lists)]
    config["valid_data_set_list"] = [subset(corpus, "valid", 4, lists)]
    for section in ("model_conf", "encoder_conf", "decoder_conf", "frontend_conf"):
        if section in sections:
            config[section] = sections[section]  # only what the test sets, not the tiny model's
        else:
            config.pop(section)
    config["model"] = str(model_dir)
    config["optim_sches"]["main"]["conf"]["optim_conf"]["lr"] = 0.0002
    config["dataset_conf"]["batch_size"] = 8
    return config


def test_finetune_loads_every_weight_tokenizer_and_cmvn(small_corpus, tmp_path):
    run_dir = tmp_path / "run"
    config = write_config(finetune_config(small_corpus, run_dir), tmp_path / "run.yaml")
    assert main(["--config", str(config)]) == 0
    events = events_of(run_dir)
    start = next(e for e in events if e["event"] == "start")
    report = start["init_param"]
    assert start["model_dir"] == str(FIXTURE.resolve())
    assert report["loaded"] == report["total"] > 0
    assert report["missing"] == report["unexpected"] == report["mismatched"] == report["excluded"] == []
    assert start["config"]["model"] == "conformer" and start["config"]["encoder_conf"]["output_size"] == 64
    tokens = (run_dir / "tokens.txt").read_text(encoding="utf-8").split("\n")[:-1]
    import json
    assert tokens == json.loads((FIXTURE / "tokens.json").read_text(encoding="utf-8"))
    assert (run_dir / "am.mvn").read_bytes() == (FIXTURE / "am.mvn").read_bytes()
    log = (run_dir / "log.txt").read_text(encoding="utf-8")
    assert f"loaded {report['total']}/{report['total']} tensors, missing 0, shape-mismatched 0, unexpected 0" in log


def run_expecting_2(config_path: Path, capsys) -> str:
    assert main(["--config", str(config_path)]) == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("missing", ["model.pt", "config.yaml"])
def test_model_dir_without_a_file_names_it_and_writes_nothing(small_corpus, tmp_path, capsys, missing):
    broken = tmp_path / "broken"
    shutil.copytree(FIXTURE, broken)
    (broken / missing).unlink()
    run_dir = tmp_path / "run"
    err = run_expecting_2(write_config(finetune_config(small_corpus, run_dir, broken), tmp_path / "run.yaml"), capsys)
    assert f"no {missing} in this model directory" in err and str(broken) in err
    assert not run_dir.exists()


def test_unknown_architecture_lists_the_supported_ones(small_corpus, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(FIXTURE, broken)
    text = (broken / "config.yaml").read_text(encoding="utf-8").replace("model: Conformer", "model: SenseVoiceSmall")
    (broken / "config.yaml").write_text(text, encoding="utf-8")
    err = run_expecting_2(write_config(finetune_config(small_corpus, tmp_path / "run", broken), tmp_path / "r.yaml"),
                          capsys)
    assert "'SenseVoiceSmall' is not a FunASR architecture" in err and "Conformer, Transformer, Paraformer" in err


def test_architecture_keys_are_locked_but_dropout_may_change(small_corpus, tmp_path, capsys):
    config = finetune_config(small_corpus, tmp_path / "run", encoder_conf={"output_size": 32})
    err = run_expecting_2(write_config(config, tmp_path / "r.yaml"), capsys)
    assert "encoder_conf.output_size is set by the model directory" in err and "64" in err
    from engine.config import validate_config
    resolved = validate_config(finetune_config(small_corpus, tmp_path / "run", encoder_conf={"dropout_rate": 0.0}))
    assert resolved["encoder_conf"]["dropout_rate"] == 0.0 and resolved["encoder_conf"]["output_size"] == 64


def test_new_vocabulary_needs_the_output_layers_filtered(small_corpus, tmp_path, capsys):
    config = finetune_config(small_corpus, tmp_path / "run", tokenizer_conf={"type": "char", "english": "letter"})
    err = run_expecting_2(write_config(config, tmp_path / "r.yaml"), capsys)
    assert "172 tokens in tokens.json" in err and f"{FIXTURE / 'model.pt'}:::{OUTPUT_FILTER}" in err

    # With the filter: the encoder and decoder body load, the output layers are re-initialised.
    config["train_conf"]["init_param"] = f"{FIXTURE / 'model.pt'}:::{OUTPUT_FILTER}"
    run_dir = tmp_path / "run"
    assert main(["--config", str(write_config(config, tmp_path / "r.yaml"))]) == 0
    report = next(e for e in events_of(run_dir) if e["event"] == "start")["init_param"]
    assert sorted(report["excluded"]) == ["ctc.ctc_lo.bias", "ctc.ctc_lo.weight", "decoder.embed.0.weight",
                                          "decoder.output_layer.bias", "decoder.output_layer.weight"]
    assert sorted(report["missing"]) == ["ctc.ctc_lo.bias", "ctc.ctc_lo.weight", "decoder.embed.weight",
                                         "decoder.output_layer.bias", "decoder.output_layer.weight"]
    assert report["mismatched"] == report["unexpected"] == []


def test_vocabulary_mismatch_at_start_names_both_sizes_and_the_filter(small_corpus, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    # A run directory seeded with another token list (the run keeps what is there).
    (run_dir / "tokens.txt").write_text("<blank>\n<s>\n</s>\n<unk>\na\nb\n", encoding="utf-8")
    config = write_config(finetune_config(small_corpus, run_dir), tmp_path / "r.yaml")
    assert main(["--config", str(config)]) == 2  # found while setting up: a user error
    error = next(e for e in events_of(run_dir) if e["event"] == "error")
    assert "has 172 output tokens" in error["message"] and "tokenizer has 6" in error["message"]
    assert f":::{OUTPUT_FILTER}" in error["message"]
    assert not list(run_dir.glob("model.pt*"))


def test_key_filter_takes_only_the_encoder(tmp_path):
    from engine.decode.model_dir import load_asr
    from engine.models import build_model
    from engine.trainer.init_param import load_init_param

    model, frontend, tokenizer, config = load_asr(FIXTURE)
    torch.manual_seed(5)
    fresh = build_model("conformer", frontend.output_dim, tokenizer.vocab_size, config["model_conf"],
                        config["encoder_conf"], config["decoder_conf"])
    before = {k: v.clone() for k, v in fresh.state_dict().items()}
    report, _ = load_init_param(fresh, f"{FIXTURE / 'model.pt'}:encoder:encoder",
                                rename=(("encoder.embed.out.0.", "encoder.embed.out."), ("decoder.embed.0.", "decoder.embed.")))
    assert report["mismatched"] == report["unexpected"] == []
    assert all(key.startswith(("decoder.", "ctc.")) for key in report["excluded"]) and report["excluded"]
    for key, value in fresh.state_dict().items():
        source = model.state_dict()[key]
        if key.startswith("encoder."):
            assert torch.equal(value, source), key
        elif value.is_floating_point() and value.numel() > 1 and not key.endswith(("running_var", "running_mean")):
            assert torch.equal(value, before[key]), key
    assert report["loaded"] == sum(1 for k in fresh.state_dict() if k.startswith("encoder."))
