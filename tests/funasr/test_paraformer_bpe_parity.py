"""A FunASR Paraformer with a sentencepiece tokenizer (as paraformer-en): the engine loads its model
directory and decodes FunASR's ids and text.

Fixture: tests/fixtures/funasr/paraformer_bpe, written by ``scripts/funasr_fixtures_paraformer.py
--bpe 100`` with FunASR 1.4.16's own classes (Paraformer, SentencepiecesTokenizer, AutoModel).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engine.data.tokenizer import BpeTokenizer
from engine.decode.model_dir import load_asr, load_state_dict
from engine.decode.search import decode_batch

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "funasr" / "paraformer_bpe"


@pytest.fixture(scope="module")
def expected() -> dict:
    return torch.load(FIXTURE / "expected.pt", weights_only=True)


@pytest.fixture(scope="module")
def loaded():
    return load_asr(FIXTURE)  # raises on a missing, unexpected or shape-mismatched key


def test_every_funasr_key_loads_and_the_encoder_matches(loaded, expected):
    model, _, tokenizer, config = loaded
    state, _ = load_state_dict(FIXTURE / "model.pt")
    assert set(state) == set(model.state_dict())
    assert isinstance(tokenizer, BpeTokenizer) and tokenizer.vocab_size == 100
    assert config["model"] == "paraformer" and config["tokenizer_conf"] == {"type": "bpe"}
    with torch.no_grad():
        encoder_out, lengths = model.encode(expected["speech"], expected["speech_lengths"])
    for index, length in enumerate(lengths.tolist()):
        torch.testing.assert_close(encoder_out[index, :length], expected["encoder_out"][index, :length],
                                   atol=1e-4, rtol=0)


def test_ids_and_text_are_funasrs(loaded, expected):
    model, _, tokenizer, config = loaded
    # FunASR's Paraformer keeps sentencepiece's own decoding (no sentence_postprocess).
    assert config["text_style"] == "funasr" and tokenizer.text_style == "engine"
    speech, lengths = expected["speech"], expected["speech_lengths"]
    ids = decode_batch(model, speech, lengths, "paraformer")
    assert ids == [[t for t in row if t not in (model.sos, model.eos, model.blank_id)] for row in expected["token_ids"]]
    assert [tokenizer.decode(row) for row in ids] == expected["text"]  # FunASR's batched inference
    alone = [decode_batch(model, speech[i:i + 1, :n], lengths[i:i + 1], "paraformer")[0]
             for i, n in enumerate(lengths.tolist())]
    assert [tokenizer.decode(row) for row in alone] == expected["automodel_text"]  # AutoModel, one wav a call
