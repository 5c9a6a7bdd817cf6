"""FunASR's text from tokens (engine.data.funasr_text) against what FunASR 1.4.16's own
sentence_postprocess wrote for 643 token sequences (tests/fixtures/funasr/text, written by
scripts/funasr_fixtures_text.py; no FunASR here), and the tokenizers' two text styles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.data.funasr_text import funasr_english_caveat, funasr_text_style, sentence_text
from engine.data.tokenizer import SPECIAL_TOKENS, BpeTokenizer, CharTokenizer, load_tokenizer, train_bpe

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "funasr" / "text" / "sentence_postprocess.json"


@pytest.fixture(scope="module")
def recorded() -> dict:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


def test_every_recorded_sequence_gives_funasr_text(recorded):
    assert recorded["funasr_version"] == "1.4.16" and len(recorded["cases"]) > 600
    wrong = [(case["tokens"], case["text"], sentence_text(case["tokens"])) for case in recorded["cases"]
             if sentence_text(case["tokens"]) != case["text"]]
    assert wrong == []


@pytest.mark.parametrize("tokens,text", [
    (["题", "at", "频"], "题at频"),                   # no space between a Chinese character and a word
    (["hello", "world", "好"], "hello world好"),
    (["他", "hel@@", "lo", "好"], "他hello好"),         # "@@" pieces glued
    (["i", "a", "b", "他"], "IAB他"),                 # single letters: an abbreviation
    (["ok", "。", "好"], "ok 好"),                     # FunASR's quirk, kept: the "。" is dropped
    (["<s>", "好", "<unk>", "</s>"], "好"),
])
def test_sentence_text_examples(recorded, tokens, text):
    assert {"tokens": tokens, "text": text} in recorded["cases"]  # each one FunASR's own answer
    assert sentence_text(tokens) == text


def test_char_tokenizer_styles(recorded):
    tokens = SPECIAL_TOKENS + ["他", "在", "data", "i", "a"]
    ids = [4, 5, 6, 7, 8, 3]
    assert CharTokenizer(tokens, "word").decode(ids) == "他在 data i a <unk>"
    assert CharTokenizer(tokens, "word", text_style="funasr").decode(ids) == "他在data IA"
    assert {"tokens": ["他", "在", "data", "i", "a", "<unk>"], "text": "他在data IA"} in recorded["cases"]
    with pytest.raises(ValueError, match="text style"):
        CharTokenizer(tokens, "word", text_style="kaldi")


def test_bpe_tokenizer_funasr_style_reads_the_characters_of_the_sentence(tmp_path):
    """FunASR's Conformer with a SentencepiecesTokenizer runs sentence_postprocess over the
    characters of the decoded sentence (its ids2tokens returns the sentence)."""
    model = train_bpe(["hello world this is a test", "我们 hello 世界"] * 20, vocab_size=40)
    engine = BpeTokenizer(model)
    ids = engine.encode("hello world")
    assert engine.decode(ids) == "hello world"
    funasr = BpeTokenizer(model, text_style="funasr")
    assert funasr.decode(ids) == sentence_text(list("hello world"))
    assert {"tokens": list("hello world"), "text": funasr.decode(ids)} in json.loads(
        FIXTURE.read_text(encoding="utf-8"))["cases"]
    (tmp_path / "bpe.model").write_bytes(model)
    assert load_tokenizer(tmp_path, "funasr").text_style == "funasr"


def test_funasr_text_style_per_model():
    assert funasr_text_style("conformer", "char") == "funasr"
    assert funasr_text_style("paraformer", "char") == "funasr"
    assert funasr_text_style("transformer", "bpe") == "funasr"
    assert funasr_text_style("paraformer", "bpe") == "engine"  # sentencepiece's own decoding


def test_export_caveat_names_what_funasr_cannot_write_as_words():
    words, letters = SPECIAL_TOKENS + ["他", "data"], SPECIAL_TOKENS + ["▁", "他", "d", "a"]
    assert funasr_english_caveat("conformer", "char", words) is None
    assert "HELLO ▁WORLD" in funasr_english_caveat("conformer", "char", letters)
    assert sentence_text(list("hello") + ["▁"] + list("world")) == "HELLO ▁WORLD"
    assert "HELLO  WORLD" in funasr_english_caveat("conformer", "bpe", [])
    assert sentence_text(list("hello world")) == "HELLO  WORLD"
    assert funasr_english_caveat("paraformer", "bpe", []) is None
