"""dataset_conf.feature_cache_mb: features made once per utterance, dither seeded per utterance, a budget."""

from __future__ import annotations

import logging

import pytest
import torch

from engine.config import check_config, load_config
from engine.data import build_dataloader
from engine.data.frontend import WavFrontend
from engine.data.lists import read_jsonl
from engine.data.specaug import SpecAugment
from engine.data.tokenizer import build_tokenizer

CONF = {"batch_type": "example", "batch_size": 8}


@pytest.fixture(scope="module")
def tokenizer(small_corpus, tmp_path_factory):
    entries, _ = read_jsonl(small_corpus / "train.jsonl")
    return build_tokenizer({"type": "char"}, [e["target"] for e in entries], tmp_path_factory.mktemp("tok"))


def features_by_key(loader, epoch: int) -> dict[str, torch.Tensor]:
    loader.sampler.set_epoch(epoch)
    found = {}
    for batch in loader:
        for key, speech, length in zip(batch["keys"], batch["speech"], batch["speech_lengths"]):
            found[key] = speech[:length].clone()
    return found


def build(corpus, tokenizer, cache_mb, *, seed=0, specaug=None, list_name="train.jsonl", train=True):
    conf = {**CONF, "feature_cache_mb": cache_mb}
    loader, _, _ = build_dataloader(corpus / list_name, conf, WavFrontend(n_mels=40, dither=1.0), tokenizer,
                                    train=train, seed=seed, specaug=specaug)
    return loader


def test_cached_features_are_made_once_with_their_own_dither(small_corpus, tokenizer):
    torch.set_num_threads(1)
    cached = build(small_corpus, tokenizer, 64)
    first, second = features_by_key(cached, 1), features_by_key(cached, 2)
    assert len(first) == 80 and cached.dataset.cache.stats() == {"utterances": 80, "mb": pytest.approx(
        sum(f.numel() * 4 for f in first.values()) / 2**20), "refused": 0}
    assert all(torch.equal(first[key], second[key]) for key in first)

    # The same features from a fresh loader reading the utterances in another order (a resumed run):
    # each utterance's dither comes from the seed and the utterance, not from the global generator.
    torch.manual_seed(123)
    again = features_by_key(build(small_corpus, tokenizer, 64), 7)
    assert all(torch.equal(first[key], again[key]) for key in first)

    # Dither is applied (not just switched off), and it differs with the seed.
    plain = features_by_key(build(small_corpus, tokenizer, 64, train=False), 1)
    other_seed = features_by_key(build(small_corpus, tokenizer, 64, seed=1), 1)
    key = next(iter(first))
    assert not torch.equal(first[key], plain[key]) and not torch.equal(first[key], other_seed[key])

    # Without the cache dither is drawn afresh at every load, as before.
    uncached = build(small_corpus, tokenizer, 0)
    assert uncached.dataset.cache is None
    assert not torch.equal(features_by_key(uncached, 1)[key], features_by_key(uncached, 1)[key])


def test_specaugment_masks_copies_and_leaves_the_cached_features_alone(small_corpus, tokenizer):
    torch.set_num_threads(1)
    loader = build(small_corpus, tokenizer, 64, specaug=SpecAugment(num_freq_mask=2, freq_mask_width=10,
                                                                    num_time_mask=2, time_mask_width=20))
    masked_once, masked_twice = features_by_key(loader, 1), features_by_key(loader, 2)
    cache = loader.dataset.cache
    kept = {loader.dataset.index.key(i): cache.get(i) for i in range(len(loader.dataset.index))}
    unmasked = features_by_key(build(small_corpus, tokenizer, 64), 1)
    assert all(torch.equal(kept[key], unmasked[key]) for key in kept)
    assert sum(not torch.equal(masked_once[key], masked_twice[key]) for key in kept) > 70
    assert all((masked_once[key] == 0).any() for key in kept)


def test_utterances_past_the_budget_are_made_at_every_load_and_the_first_is_logged(small_corpus, tokenizer,
                                                                                     caplog):
    torch.set_num_threads(1)
    sizes = [f.numel() * 4 for f in features_by_key(build(small_corpus, tokenizer, 64), 1).values()]
    budget_mb = sum(sorted(sizes)[:20]) / 2**20
    loader = build(small_corpus, tokenizer, budget_mb)
    with caplog.at_level(logging.WARNING, logger="engine.data.feature_cache"):
        first = features_by_key(loader, 1)
        second = features_by_key(loader, 2)
    stats = loader.dataset.cache.stats()
    assert 0 < stats["utterances"] < 80 and stats["utterances"] + stats["refused"] == 80
    assert stats["mb"] <= budget_mb
    warnings = [r.getMessage() for r in caplog.records if "feature cache (train) full" in r.getMessage()]
    assert len(warnings) == 1 and "dataset_conf.feature_cache_mb" in warnings[0]
    # Refused utterances are made again, with the same seeded dither: the features do not change.
    assert all(torch.equal(first[key], second[key]) for key in first)


def test_a_negative_budget_is_refused_naming_the_key(small_corpus):
    config = load_config(None, [f"++train_data_set_list={small_corpus / 'train.jsonl'}"])
    assert config["dataset_conf"]["feature_cache_mb"] == 0
    config["dataset_conf"]["feature_cache_mb"] = -1
    issues = [f"{issue.key}: {issue.message}" for issue in check_config(config)]
    assert "dataset_conf.feature_cache_mb: must be at least 0, got -1" in issues
