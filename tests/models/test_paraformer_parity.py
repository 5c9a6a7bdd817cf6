"""Paraformer parity with FunASR 1.4.16: the engine's own code, built from a FunASR model
directory, computes what FunASR's classes computed (tests/fixtures/funasr/paraformer, written by
scripts/funasr_fixtures_paraformer.py with FunASR installed; no FunASR here)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from engine.data.frontend import WavFrontend
from engine.data.audio import load_audio
from engine.data.tokenizer import CharTokenizer, load_tokenizer, split_units
from engine.decode.search import decode_batch
from engine.models import build_model
from engine.models.paraformer import Paraformer

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "funasr" / "paraformer"
TOL = 1e-4


@pytest.fixture(scope="module")
def expected() -> dict:
    return torch.load(FIXTURE / "expected.pt", weights_only=True)


@pytest.fixture(scope="module")
def funasr_config() -> dict:
    return yaml.safe_load((FIXTURE / "config.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def tokenizer() -> CharTokenizer:
    # as the engine loads it: a list without "▁" holds English words, not letters
    return load_tokenizer(FIXTURE / "tokens.json")


def build_from_dir(config: dict, tokenizer: CharTokenizer) -> Paraformer:
    """The engine's model from FunASR's sections, with identity mapping (keys are FunASR's)."""
    assert config["model"] == "Paraformer"
    assert (config["encoder"], config["decoder"], config["predictor"]) == (
        "SANMEncoder", "ParaformerSANMDecoder", "CifPredictorV2")
    return build_model("paraformer", config["input_size"], tokenizer.vocab_size, config["model_conf"],
                       config["encoder_conf"], config["decoder_conf"], sos_eos_id=tokenizer.sos_eos_id,
                       predictor_conf=config["predictor_conf"])


@pytest.fixture(scope="module")
def model(funasr_config, tokenizer) -> Paraformer:
    model = build_from_dir(funasr_config, tokenizer)
    state = torch.load(FIXTURE / "model.pt", map_location="cpu", weights_only=True)
    result = model.load_state_dict(state, strict=False)
    assert result.missing_keys == [] and result.unexpected_keys == [], result
    return model.eval()


def test_state_dict_keys_are_funasr_names(model):
    state = torch.load(FIXTURE / "model.pt", map_location="cpu", weights_only=True)
    assert set(model.state_dict()) == set(state)
    for name, tensor in model.state_dict().items():
        assert tensor.shape == state[name].shape, name


def test_frontend_features_match(expected, funasr_config):
    conf = dict(funasr_config["frontend_conf"])
    frontend = WavFrontend(**conf, cmvn_file=FIXTURE / "am.mvn")
    for index, wav in enumerate(expected["wavs"]):
        feats = frontend(load_audio(str(FIXTURE / wav), frontend.fs), training=False)
        length = int(expected["speech_lengths"][index])
        assert feats.shape[0] == length
        torch.testing.assert_close(feats, expected["speech"][index, :length], atol=TOL, rtol=0)


def test_encoder_predictor_decoder_match(model, expected):
    speech, lengths = expected["speech"], expected["speech_lengths"]
    with torch.no_grad():
        encoder_out, encoder_lens = model.encode(speech, lengths)
        assert encoder_lens.tolist() == expected["encoder_out_lens"].tolist()
        for index, length in enumerate(encoder_lens.tolist()):
            torch.testing.assert_close(encoder_out[index, :length], expected["encoder_out"][index, :length],
                                       atol=TOL, rtol=0)
        embeds, token_num, alphas, _ = model.predict_tokens(encoder_out, encoder_lens)
        torch.testing.assert_close(alphas, expected["alphas"], atol=TOL, rtol=0)
        assert token_num.tolist() == expected["token_num"].tolist()
        torch.testing.assert_close(embeds, expected["acoustic_embeds"], atol=TOL, rtol=0)
        token_lens = token_num.round().long()
        log_probs = model.decode_embeddings(encoder_out, encoder_lens, embeds, token_lens)
    for index, length in enumerate(token_lens.tolist()):
        torch.testing.assert_close(log_probs[index, :length], expected["decoder_log_probs"][index, :length],
                                   atol=TOL, rtol=0)


def test_paraformer_search_gives_funasr_tokens_and_text(model, expected, tokenizer):
    ids = decode_batch(model, expected["speech"], expected["speech_lengths"], "paraformer")
    special = {model.sos, model.eos, model.blank_id}
    assert ids == [[t for t in row if t not in special] for row in expected["token_ids"]]
    for row, funasr_text, auto_text in zip(ids, expected["text"], expected["automodel_text"]):
        text = tokenizer.decode(row)
        # The same tokens in the same order. FunASR's postprocessing writes no space between a
        # Chinese character and an English word ("简告online"), the engine's tokenizer does.
        assert split_units(text) == split_units(funasr_text) == split_units(auto_text)
        assert text.replace(" ", "") == funasr_text.replace(" ", "")


def test_losses_match(model, expected):
    """One forward pass on the transcripts, glancing off (FunASR's numbers were taken so too)."""
    model.sampling_ratio = 0.0
    try:
        with torch.no_grad():
            out = model(expected["speech"], expected["speech_lengths"], expected["text_ids"],
                        expected["text_lengths"])
    finally:
        model.sampling_ratio = 0.75
    for name in ("loss", "loss_att", "loss_pre", "acc"):
        assert float(out[name]) == pytest.approx(expected["loss"][name], abs=TOL), name
