"""init_param loads what fits and reports, by key, what it could not: never a silent partial load."""

from __future__ import annotations

import torch

from engine.train import main
from tests.trainer.tiny import events_of, model_weights, tiny_config, write_config

SHORT = {"max_epoch": 1, "log_interval": 5, "validate_interval": 1000, "save_checkpoint_interval": 1000,
         "avg_nbest_model": 1}


def test_init_param_reports_loaded_missing_and_mismatched_keys(small_corpus, tmp_path):
    source_dir = tmp_path / "source"
    source = write_config(tiny_config(small_corpus, source_dir, train_conf=SHORT), tmp_path / "source.yaml")
    assert main(["--config", str(source)]) == 0
    averaged = source_dir / "model.pt.avg1"

    # A second decoder block (missing keys) and wider encoder feed-forward (shape mismatches).
    target_dir = tmp_path / "finetune"
    target = write_config(tiny_config(
        small_corpus, target_dir, train_conf={**SHORT, "max_epoch": 1, "init_param": str(averaged)},
        decoder_conf={"attention_heads": 2, "linear_units": 64, "num_blocks": 2},
        encoder_conf={"output_size": 32, "attention_heads": 2, "linear_units": 96, "num_blocks": 1,
                      "cnn_module_kernel": 5}), tmp_path / "finetune.yaml")
    assert main(["--config", str(target), "++train_conf.max_epoch=1", "++dataset_conf.batch_size=40"]) == 0

    events = events_of(target_dir)
    report = next(e for e in events if e["event"] == "init_param")
    assert report["paths"] == [str(averaged)]
    assert any(key.startswith("decoder.decoders.1.") for key in report["missing"])
    mismatched = {item["key"] for item in report["mismatched"]}
    assert mismatched and all("feed_forward" in key for key in mismatched)
    assert report["loaded"] + len(report["missing"]) + len(mismatched) == report["total"]
    start = next(e for e in events if e["event"] == "start")
    assert start["init_param"]["loaded"] == report["loaded"] and start["resumed_from"] is None

    log = (target_dir / "log.txt").read_text(encoding="utf-8")
    assert f"init_param {averaged}: loaded {report['loaded']}/{report['total']}" in log
    assert "shape mismatch" in log and "missing (kept initialised)" in log



def test_loaded_tensors_are_the_checkpoint_s_and_the_rest_stay_initialised(tmp_path):
    from engine.models import build_model
    from engine.trainer.init_param import load_init_param
    from engine.utils.fileio import atomic_torch_save

    conf = {"output_size": 32, "attention_heads": 2, "linear_units": 64, "num_blocks": 1, "cnn_module_kernel": 5}
    decoder = {"attention_heads": 2, "linear_units": 64, "num_blocks": 1}
    torch.manual_seed(0)
    source = build_model("conformer", 40, 30, {}, conf, decoder, sos_eos_id=29)
    atomic_torch_save({"model": {f"module.{k}": v for k, v in source.state_dict().items()}}, tmp_path / "src.pt")
    torch.manual_seed(1)
    target = build_model("conformer", 40, 31, {}, conf, decoder, sos_eos_id=30)  # one more token
    before = {k: v.clone() for k, v in target.state_dict().items()}
    report, init_step = load_init_param(target, str(tmp_path / "src.pt"))
    assert init_step is None  # no optimiser state in the file
    mismatched = {item["key"] for item in report["mismatched"]}
    assert mismatched and all(key.startswith(("decoder.embed", "decoder.output_layer", "ctc.")) for key in mismatched)
    after = target.state_dict()
    for key, value in source.state_dict().items():
        if key in mismatched:
            assert torch.equal(after[key], before[key]), key
        else:
            assert torch.equal(after[key], value), key


def test_init_param_missing_file_is_an_error_naming_it(small_corpus, tmp_path, capsys):
    run_dir = tmp_path / "run"
    missing = tmp_path / "no-such.avg10"
    config = write_config(tiny_config(small_corpus, run_dir, train_conf={**SHORT, "init_param": str(missing)}),
                          tmp_path / "run.yaml")
    assert main(["--config", str(config)]) == 2  # checked before anything is written
    err = capsys.readouterr().err
    assert f"train_conf.init_param: {missing}: no such checkpoint file" in err and "Traceback" not in err
    assert not run_dir.exists()


def test_config_error_exits_2_naming_the_key(small_corpus, tmp_path, capsys):
    config = write_config(tiny_config(small_corpus, tmp_path / "run"), tmp_path / "run.yaml")
    assert main(["--config", str(config), "++train_conf.max_epoch=zero"]) == 2
    assert "train_conf.max_epoch" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
