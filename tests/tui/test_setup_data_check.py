"""The data check runs the real ``asr-data stats|check --json`` on lists and reports what they hold."""

from __future__ import annotations

import json

import pytest

from asr_tui.widgets.form_data_check import problem_lines, run_stats, summary_line


@pytest.fixture
def lists(small_corpus, tmp_path):
    """The small corpus's train list, and a list with a missing audio file and a broken line."""
    good = small_corpus / "train.jsonl"
    entries = [json.loads(line) for line in good.read_text(encoding="utf-8").splitlines()[:5]]
    for entry in entries:  # the copy lives elsewhere: make its audio paths absolute
        entry["source"] = str(small_corpus / entry["source"])
    missing = entries[0] | {"key": "gone", "source": str(tmp_path / "gone.wav")}
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join([json.dumps(e) for e in entries + [missing]] + ["{not json"]) + "\n",
                   encoding="utf-8")
    return good, bad


def test_stats_of_a_good_list(lists):
    stats = run_stats([str(lists[0])])
    assert stats["utterances"] == 80 and stats["num_dropped"] == 0
    assert sum(stats["duration_histogram"]["counts"]) == 80
    line = str(summary_line("train", stats))
    assert line.startswith("train: 80 utts · ") and "nothing dropped" in line


def test_problems_are_counted_and_named(lists):
    assert run_stats([str(lists[1])])["num_dropped"] == 1  # stats trusts the list: the missing file passes
    stats = run_stats([str(lists[1])], audio=True)
    assert stats["report"] == f"{lists[1]}.check.json"
    assert stats["utterances"] == 5 and stats["num_dropped"] == 2
    text = "\n".join(problem_lines(stats))
    assert f"{lists[1]}:6 'gone'" in text and f"{lists[1]}:7" in text
    assert "dropped 2" in str(summary_line("valid", stats))


def test_a_failing_check_says_why(tmp_path):
    with pytest.raises(RuntimeError, match="nope.jsonl"):
        run_stats([str(tmp_path / "nope.jsonl")])


def test_token_inventory_and_oov_rate_against_the_training_list(lists, tmp_path):
    train = lists[0]
    entries = [json.loads(line) for line in train.read_text(encoding="utf-8").splitlines()[:3]]
    for entry in entries:
        entry["source"] = str(train.parent / entry["source"])
    english = sorted({w for e in map(json.loads, train.read_text(encoding="utf-8").splitlines())
                      for w in e["target"].split() if w.isascii() and w.isalpha()})
    new_words = [english[0] + english[1], english[1] + english[0]]  # unseen words of seen letters
    entries[0]["target"] = " ".join(new_words)
    test = tmp_path / "test.jsonl"
    test.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries), encoding="utf-8")
    words = run_stats([str(test)], tokenizer_conf={"type": "char", "english": "word"}, vocab_from=[str(train)])
    assert words["token_unit"] == "word" and words["vocabulary"]["oov_tokens"] >= 2
    assert set(new_words) <= set(words["vocabulary"]["oov_examples"])
    assert "OOV" in str(summary_line("test", words)) and "word units" in str(summary_line("test", words))
    letters = run_stats([str(test)], vocab_from=[str(train)])
    assert letters["token_unit"] == "letter" and letters["distinct_tokens"] > 0
    assert letters["vocabulary"]["oov_tokens"] < words["vocabulary"]["oov_tokens"]
