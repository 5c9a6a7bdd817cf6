"""dataset_conf.cache_mb: what later epochs can reuse exactly is kept, and the batches do not change."""

from __future__ import annotations

import logging

import pytest
import torch

import engine.data.dataset
from engine.config import check_config, load_config
from engine.data import build_dataloader
from engine.data.frontend import WavFrontend
from engine.data.lists import read_jsonl
from engine.data.specaug import SpecAugment
from engine.data.tokenizer import build_tokenizer

CONF = {"batch_type": "example", "batch_size": 8}
SPECAUG = {"num_freq_mask": 2, "freq_mask_width": 10, "num_time_mask": 2, "time_mask_width": 20}


@pytest.fixture(scope="module")
def tokenizer(small_corpus, tmp_path_factory):
    entries, _ = read_jsonl(small_corpus / "train.jsonl")
    return build_tokenizer({"type": "char"}, [e["target"] for e in entries], tmp_path_factory.mktemp("tok"))


@pytest.fixture
def audio_reads(monkeypatch):
    """How many times the dataset has read audio."""
    reads = []
    read = engine.data.dataset.load_audio

    def counted(*args, **kwargs):
        reads.append(args[0])
        return read(*args, **kwargs)

    monkeypatch.setattr(engine.data.dataset, "load_audio", counted)
    return reads


def build(corpus, tokenizer, cache_mb, *, dither=1.0, train=True, specaug=True, **conf):
    loader, _, _ = build_dataloader(corpus / "train.jsonl", {**CONF, **conf, "cache_mb": cache_mb},
                                    WavFrontend(n_mels=40, dither=dither), tokenizer, train=train,
                                    specaug=SpecAugment(**SPECAUG) if specaug and train else None)
    return loader


def epoch_batches(loader, epoch: int) -> list[dict]:
    """The loader's batches of ``epoch``, with the global generator (dither, SpecAugment) seeded by it."""
    loader.sampler.set_epoch(epoch)
    torch.manual_seed(epoch)
    return list(loader)


def assert_same_batches(expected: list[dict], found: list[dict]) -> None:
    assert len(expected) == len(found)
    for a, b in zip(expected, found):
        assert a["keys"] == b["keys"]
        assert torch.equal(a["speech"], b["speech"]) and torch.equal(a["speech_lengths"], b["speech_lengths"])


@pytest.mark.parametrize("speed_perturb", [None, [0.9, 1.0, 1.1]], ids=["plain", "speed-perturbed"])
def test_with_fresh_dither_the_audio_is_kept_and_the_batches_are_those_without_the_cache(
        small_corpus, tokenizer, audio_reads, speed_perturb):
    torch.set_num_threads(1)
    plain = build(small_corpus, tokenizer, 0, speed_perturb=speed_perturb)
    cached = build(small_corpus, tokenizer, 256, speed_perturb=speed_perturb)
    assert plain.dataset.cache is None
    for epoch in (1, 2, 3):
        expected = epoch_batches(plain, epoch)
        reads = len(audio_reads)
        assert_same_batches(expected, epoch_batches(cached, epoch))
        if epoch > 1 and speed_perturb is None:  # each utterance's audio was kept at its first load
            assert len(audio_reads) == reads
    cache = cached.dataset.cache
    kept = [cache.get(i) for i in range(len(cached.dataset))]
    assert all(t is None or t.dim() == 1 for t in kept)  # waveforms, not features
    stats = cache.stats()
    assert stats["refused"] == 0 and stats["mb"] == pytest.approx(
        sum(t.numel() * 4 for t in kept if t is not None) / 2**20)
    # Under speed perturbation each (utterance, factor) loaded is kept: an epoch seen before reads no audio.
    assert stats["utterances"] == 80 if speed_perturb is None else 80 < stats["utterances"] <= 240
    reads = len(audio_reads)
    epoch_batches(cached, 2)
    assert len(audio_reads) == reads


@pytest.mark.parametrize(("train", "dither"), [(False, 1.0), (True, 0.0)], ids=["validation", "no-dither"])
def test_features_are_kept_where_every_load_makes_the_same(small_corpus, tokenizer, audio_reads, train, dither):
    torch.set_num_threads(1)
    plain = build(small_corpus, tokenizer, 0, dither=dither, train=train)
    cached = build(small_corpus, tokenizer, 256, dither=dither, train=train)
    assert_same_batches(epoch_batches(plain, 1), epoch_batches(cached, 1))
    reads = len(audio_reads)
    assert_same_batches(epoch_batches(plain, 2), epoch_batches(cached, 2))
    assert len(audio_reads) == reads + 80  # the plain loader's alone
    kept = [cached.dataset.cache.get(i) for i in range(80)]
    assert all(t is not None and t.dim() == 2 for t in kept)  # features
    if train:  # SpecAugment masked copies: the kept features are unmasked, and masks differ by epoch
        unmasked = {b: s for batch in epoch_batches(build(small_corpus, tokenizer, 0, dither=0.0, specaug=False), 1)
                    for b, s, n in zip(batch["keys"], batch["speech"], batch["speech_lengths"])
                    for s in [s[:n]]}
        index = cached.dataset.index
        assert all(torch.equal(kept[i], unmasked[index.key(i)]) for i in range(80))
        assert not torch.equal(epoch_batches(cached, 1)[0]["speech"], epoch_batches(cached, 4)[0]["speech"])


def test_utterances_past_the_budget_are_loaded_as_without_the_cache_and_the_first_is_logged(
        small_corpus, tokenizer, caplog):
    torch.set_num_threads(1)
    full = build(small_corpus, tokenizer, 256)
    epoch_batches(full, 1)
    sizes = [full.dataset.cache.get(i).numel() * 4 for i in range(80)]
    budget_mb = sum(sorted(sizes)[:20]) / 2**20
    plain, cached = build(small_corpus, tokenizer, 0), build(small_corpus, tokenizer, budget_mb)
    with caplog.at_level(logging.WARNING, logger="engine.data.cache"):
        for epoch in (1, 2):
            assert_same_batches(epoch_batches(plain, epoch), epoch_batches(cached, epoch))
    stats = cached.dataset.cache.stats()
    assert 0 < stats["utterances"] < 80 and stats["utterances"] + stats["refused"] == 80
    assert stats["mb"] <= budget_mb
    warnings = [r.getMessage() for r in caplog.records if "load cache (train) full" in r.getMessage()]
    assert len(warnings) == 1 and "dataset_conf.cache_mb" in warnings[0]


def test_a_negative_budget_is_refused_naming_the_key(small_corpus):
    config = load_config(None, [f"++train_data_set_list={small_corpus / 'train.jsonl'}"])
    assert config["dataset_conf"]["cache_mb"] == 0
    config["dataset_conf"]["cache_mb"] = -1
    issues = [f"{issue.key}: {issue.message}" for issue in check_config(config)]
    assert "dataset_conf.cache_mb: must be at least 0, got -1" in issues
