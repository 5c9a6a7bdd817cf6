"""CER/WER scoring: alignment counts, units on mixed Chinese/English text, normalisation."""

import random

import pytest
import torch
import torchaudio

from engine.decode.scoring import (
    ErrorCounts,
    TextNormalizer,
    align_counts,
    char_units,
    error_counts,
    scoring_conventions,
    word_units,
)


def test_alignment_total_equals_torchaudio_edit_distance():
    rng = random.Random(0)
    for _ in range(300):
        ref = [rng.choice("abcd") for _ in range(rng.randint(0, 12))]
        hyp = [rng.choice("abcd") for _ in range(rng.randint(0, 12))]
        counts = align_counts(ref, hyp)
        assert counts.errors == torchaudio.functional.edit_distance(ref, hyp)
        assert counts.ref_length == len(ref)
        # Every reference unit is matched, substituted or deleted: matches are never negative.
        assert counts.substitutions + counts.deletions <= len(ref)
        assert counts.substitutions + counts.insertions <= len(hyp)


@pytest.mark.parametrize("ref,hyp,expected", [
    ("abcd", "abcd", (0, 0, 0)),
    ("abcd", "abxd", (1, 0, 0)),
    ("abcd", "abd", (0, 1, 0)),
    ("abcd", "abcde", (0, 0, 1)),
    ("abcd", "", (0, 4, 0)),
    ("", "ab", (0, 0, 2)),
    ("abcd", "xbcdy", (1, 0, 1)),
])
def test_substitutions_deletions_insertions(ref, hyp, expected):
    counts = align_counts(list(ref), list(hyp))
    assert (counts.substitutions, counts.deletions, counts.insertions) == expected


def test_mixed_chinese_english_units():
    text = "我们处理 data 不管 machine learning"
    assert char_units(text) == list("我们处理data不管machinelearning")
    assert word_units(text) == ["我", "们", "处", "理", "data", "不", "管", "machine", "learning"]


def test_mixed_cer_and_wer():
    ref = "我们处理 data 不管 machine learning"
    hyp = "我门处理 date 不管 machine"
    cer = error_counts(ref, hyp, "char")
    # 我们处理 -> 我门处理: 1 sub; data -> date: 1 sub; "learning" deleted: 8 deletions.
    assert (cer.substitutions, cer.deletions, cer.insertions) == (2, 8, 0)
    assert cer.ref_length == 4 + 4 + 2 + 7 + 8
    wer = error_counts(ref, hyp, "word")
    assert (wer.substitutions, wer.deletions, wer.insertions) == (2, 1, 0)
    assert wer.ref_length == 9
    assert wer.rate == pytest.approx(3 / 9)


def test_spaces_are_not_character_errors_but_word_errors():
    assert error_counts("ice cream", "icecream", "char").errors == 0
    assert error_counts("ice cream", "icecream", "word").errors == 2


def test_normalizer_is_explicit():
    normalize = TextNormalizer()
    assert normalize("Hello, World! Don't  stop.") == "hello world don't stop"
    assert normalize("你好，世界。ＡＢＣ") == "你好 世界 abc"
    assert normalize("well-known 'quoted'") == "well known quoted"
    keep_case = TextNormalizer(lowercase=False, remove_punctuation=False, nfkc=False)
    assert keep_case("Hello, World!") == "Hello, World!"
    assert error_counts("Hello, world.", "hello world", "word", normalize).errors == 0
    assert error_counts("Hello, world.", "hello world", "word", keep_case).errors == 2


def test_corpus_totals_and_rates():
    total = ErrorCounts(1, 2, 3, 10) + ErrorCounts(0, 0, 1, 5)
    assert total.to_dict() == {"substitutions": 1, "deletions": 2, "insertions": 4, "errors": 7, "length": 15,
                               "rate": pytest.approx(7 / 15)}
    assert ErrorCounts(0, 0, 0, 0).rate == 0.0
    assert ErrorCounts(0, 0, 2, 0).rate is None


def test_conventions_record_the_normalisation():
    conventions = scoring_conventions(TextNormalizer(lowercase=False))
    assert conventions["normalization"] == {"lowercase": False, "remove_punctuation": True, "nfkc": True}
    assert "CJK" in conventions["cer_units"] and "CJK" in conventions["wer_units"]


def test_unknown_unit_is_an_error():
    with pytest.raises(ValueError, match="unit"):
        error_counts("a", "b", "phone")


def test_alignment_of_long_utterances_is_fast_enough():
    ref = list(torch.randint(0, 50, (600,)).tolist())
    hyp = ref[:300] + [99] * 10 + ref[310:]
    counts = align_counts(ref, hyp)
    assert counts.errors == 10
