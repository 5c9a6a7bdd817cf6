import json

import pytest

from engine.data.demo import TEST_VARIANTS, split_sizes
from engine.data.tokenizer import split_units


@pytest.mark.slow
def test_default_demo_corpus_is_compact_short_and_has_unseen_test_voices(demo_corpus):
    rows = {split: [json.loads(line) for line in (demo_corpus / f"{split}.jsonl").read_text().splitlines()]
            for split in ("train", "valid", "test")}
    assert {split: len(r) for split, r in rows.items()} == split_sizes(3000)
    voices = {split: {row["key"].split("_")[1] for row in r} for split, r in rows.items()}
    assert voices["test"] == set(TEST_VARIANTS) and not voices["test"] & voices["train"]
    assert voices["valid"] <= voices["train"]
    texts = [row["target"] for row in rows["train"]]
    assert "所有只要处理 data 不管你是做 machine learning 做 deep learning" in texts
    units = {unit for text in texts for unit in split_units(text)}
    assert 150 <= len(units) <= 400
    durations = [row["source_len"] / 100 for row in rows["train"]]
    assert sum(1.0 <= d <= 4.0 for d in durations) / len(durations) > 0.9
    test_units = {unit for row in rows["test"] for unit in split_units(row["target"])}
    assert test_units <= units  # nothing in test that training never saw
