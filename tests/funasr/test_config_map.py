"""FunASR config.yaml <-> engine config, the architecture registry, key renames, parameter counts."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from engine.funasr.config_map import (
    ARCHITECTURES, HYBRID_RENAME, FunASRConfigError, engine_to_funasr, funasr_to_engine, rename_keys,
)
from engine.funasr.param_count import count_params

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "funasr" / "conformer" / "model"


def fixture_config() -> dict:
    return yaml.safe_load((FIXTURE / "config.yaml").read_text(encoding="utf-8"))


def test_fixture_config_maps_onto_the_engine():
    engine = funasr_to_engine(fixture_config())
    assert engine["model"] == "conformer"
    assert engine["encoder_conf"]["pos_enc_layer_type"] == "rel_pos"
    assert engine["encoder_conf"]["cnn_module_kernel"] == 15 and engine["encoder_conf"]["macaron_style"] is True
    assert engine["model_conf"] == {"ctc_weight": 0.3, "lsm_weight": 0.1, "length_normalized_loss": False,
                                    "sos": 1, "eos": 2}
    assert engine["frontend_conf"]["dither"] == 0.0 and engine["cmvn"] == "global"
    assert engine["tokenizer_conf"] == {"type": "char"}


def test_absent_keys_take_funasr_defaults_not_the_engine_s():
    config = fixture_config()
    for key in ("macaron_style", "cnn_module_kernel", "rel_pos_type"):
        config["encoder_conf"].pop(key)
    with pytest.raises(FunASRConfigError, match="rel_pos_type = 'legacy'.*legacy relative positions"):
        funasr_to_engine(config)
    config["encoder_conf"]["rel_pos_type"] = "latest"
    encoder = funasr_to_engine(config)["encoder_conf"]
    assert encoder["macaron_style"] is False and encoder["cnn_module_kernel"] == 31  # FunASR's defaults


@pytest.mark.parametrize("section,key,value,match", [
    ("encoder_conf", "concat_after", True, "encoder_conf.concat_after = True is not supported"),
    ("encoder_conf", "no_such_key", 1, "encoder_conf.no_such_key is not an argument"),
    ("decoder_conf", "concat_after", True, "decoder_conf.concat_after"),
    ("model_conf", "share_embedding", True, "model_conf.share_embedding"),
    ("frontend_conf", "snip_edges", False, "frontend_conf.snip_edges"),
])
def test_what_the_engine_cannot_build_is_an_error_naming_the_key(section, key, value, match):
    config = fixture_config()
    config[section][key] = value
    with pytest.raises(FunASRConfigError, match=match):
        funasr_to_engine(config)


def test_unknown_architecture_lists_the_supported_ones():
    with pytest.raises(FunASRConfigError, match="supported: Conformer, Transformer, Paraformer"):
        funasr_to_engine({**fixture_config(), "model": "SenseVoiceSmall"})


@pytest.mark.parametrize("model,encoder_conf", [
    ("conformer", {"output_size": 32, "attention_heads": 2, "linear_units": 48, "num_blocks": 2,
                   "cnn_module_kernel": 5}),
    ("conformer", {"output_size": 32, "attention_heads": 2, "num_blocks": 1, "pos_enc_layer_type": "abs_pos",
                   "macaron_style": False, "input_layer": "conv2d6"}),
    ("transformer", {"output_size": 32, "attention_heads": 2, "linear_units": 40, "num_blocks": 2,
                     "input_layer": "conv2d8"}),
])
def test_engine_config_round_trips_through_funasr_s(model, encoder_conf):
    engine = {"model": model, "encoder_conf": encoder_conf, "decoder_conf": {"num_blocks": 1, "linear_units": 24},
              "model_conf": {"ctc_weight": 0.3, "lsm_weight": 0.1, "sos": 2, "eos": 2},
              "frontend_conf": {"n_mels": 40, "lfr_m": 1, "lfr_n": 1, "dither": 0.0}}
    funasr = engine_to_funasr(engine, token_list_file="tokens.json")
    assert funasr["model"] == model.capitalize() and funasr["frontend_conf"]["cmvn_file"] == "am.mvn"
    back = funasr_to_engine(funasr)
    assert back["model"] == model
    for key, value in encoder_conf.items():
        assert back["encoder_conf"][key] == value, key
    assert back["model_conf"]["sos"] == back["model_conf"]["eos"] == 2


@pytest.mark.parametrize("key,value", [("causal", True), ("pos_enc_layer_type", "rope"),
                                       ("cnn_module_norm", "layer_norm"), ("input_layer", "linear")])
def test_engine_features_funasr_lacks_are_not_exported(key, value):
    engine = {"model": "conformer", "encoder_conf": {key: value}, "model_conf": {"sos": 2, "eos": 2}}
    with pytest.raises(FunASRConfigError, match=f"cannot write a FunASR model directory: encoder_conf.{key}"):
        engine_to_funasr(engine, token_list_file="tokens.json")


def test_key_renames_round_trip():
    keys = ["encoder.embed.out.0.weight", "encoder.embed.conv.0.weight", "decoder.embed.0.weight", "ctc.ctc_lo.bias"]
    to_engine = rename_keys(keys, HYBRID_RENAME, to_engine=True)
    assert to_engine["encoder.embed.out.0.weight"] == "encoder.embed.out.weight"
    assert to_engine["decoder.embed.0.weight"] == "decoder.embed.weight"
    assert to_engine["encoder.embed.conv.0.weight"] == "encoder.embed.conv.0.weight"
    back = rename_keys(to_engine.values(), HYBRID_RENAME, to_engine=False)
    assert sorted(back.values()) == sorted(keys)


def test_paraformer_is_one_identity_entry():
    arch = ARCHITECTURES["Paraformer"]
    assert arch.engine_model == "paraformer" and arch.rename == ()
    conf = {"model": "Paraformer", "encoder_conf": {"output_size": 8}, "predictor_conf": {"idim": 8}}
    assert arch.to_engine(conf, "x")["predictor_conf"] == {"idim": 8}


@pytest.mark.parametrize("model,encoder_conf,input_dim", [
    ("conformer", {"output_size": 32, "attention_heads": 2, "linear_units": 48, "num_blocks": 2,
                   "cnn_module_kernel": 5}, 80),
    ("conformer", {"output_size": 24, "attention_heads": 2, "num_blocks": 1, "pos_enc_layer_type": "abs_pos",
                   "macaron_style": False, "use_cnn_module": False, "input_layer": "conv2d6"}, 40),
    ("conformer", {"output_size": 16, "attention_heads": 2, "num_blocks": 1, "cnn_module_norm": "layer_norm",
                   "input_layer": "linear", "normalize_before": False}, 30),
    ("transformer", {"output_size": 32, "attention_heads": 2, "linear_units": 40, "num_blocks": 2,
                     "input_layer": "conv2d8"}, 80),
])
def test_param_count_without_torch_equals_the_built_model(model, encoder_conf, input_dim):
    from engine.models import build_model

    decoder_conf = {"attention_heads": 2, "linear_units": 20, "num_blocks": 2}
    built = build_model(model, input_dim, 50, {}, encoder_conf, decoder_conf)
    engine = {"model": model, "encoder_conf": encoder_conf, "decoder_conf": decoder_conf}
    assert count_params(engine, input_dim, 50) == sum(p.numel() for p in built.parameters())


def test_console_modules_do_not_import_torch():
    import subprocess
    import sys

    code = ("import sys, engine.config, engine.funasr.model_dir, engine.funasr.param_count, "
            "asr_tui.widgets.form_model_dir; assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])
