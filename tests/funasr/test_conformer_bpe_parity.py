"""A FunASR Conformer with a sentencepiece tokenizer: the engine loads its model directory with no
missing key and decodes the text FunASR's AutoModel wrote, which for this pair is
sentence_postprocess over the characters of the sentencepiece decoding ("HE  SER  s ...").

Fixture: tests/fixtures/funasr/conformer_bpe, written by ``scripts/funasr_fixtures_conformer.py
--bpe 100`` with FunASR 1.4.16's own classes (Conformer, SentencepiecesTokenizer, AutoModel).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from engine.data.audio import load_audio
from engine.data.tokenizer import BpeTokenizer
from engine.decode.model_dir import load_asr, load_state_dict
from engine.decode.search import decode_batch
from engine.funasr.config_map import HYBRID_RENAME, rename_keys

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "funasr" / "conformer_bpe"


@pytest.fixture(scope="module")
def loaded():
    return load_asr(FIXTURE / "model")  # raises on a missing, unexpected or shape-mismatched key


@pytest.fixture(scope="module")
def texts() -> dict:
    return json.loads((FIXTURE / "texts.json").read_text(encoding="utf-8"))


def test_every_funasr_key_loads(loaded):
    model, _, tokenizer, config = loaded
    state, _ = load_state_dict(FIXTURE / "model" / "model.pt")
    assert set(rename_keys(state, HYBRID_RENAME, to_engine=True).values()) == set(model.state_dict())
    assert isinstance(tokenizer, BpeTokenizer) and tokenizer.vocab_size == 100
    assert config["model"] == "conformer" and config["text_style"] == "funasr"


@pytest.mark.parametrize("mode", ["ctc_greedy", "attention"])
def test_decoded_text_is_funasrs(loaded, texts, mode):
    model, frontend, tokenizer, _ = loaded
    spaced = load_asr(FIXTURE / "model", text_style="engine")[2]
    for key, funasr in texts.items():
        feats = frontend(load_audio(FIXTURE / "wav" / f"{key}.wav"), training=False)
        with torch.no_grad():
            ids = decode_batch(model, feats.unsqueeze(0), torch.tensor([feats.size(0)]), mode, beam_size=10)[0]
        assert tokenizer.decode(ids) == funasr[mode]["text"], key
        if funasr[mode]["token"] is not None:  # FunASR's ids2tokens: the sentencepiece sentence
            assert spaced.decode(ids) == funasr[mode]["token"], key
