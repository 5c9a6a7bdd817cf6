"""Lists at scale: indexed as arrays, audio checked when loaded (skipped and reported), headers read
on demand by ``asr-data check``, and speed perturbation drawn from the sampler's seed."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine.data import build_dataloader
from engine.data.batching import BatchPlan, split_virtual
from engine.data.cli import main as asr_data
from engine.data.frontend import WavFrontend
from engine.data.list_index import index_list
from engine.data.lists import read_jsonl
from engine.data.speed import perturb
from engine.data.tokenizer import build_tokenizer


@pytest.fixture(scope="module")
def tokenizer(small_corpus, tmp_path_factory):
    entries, _ = read_jsonl(small_corpus / "train.jsonl", check_audio=False)
    return build_tokenizer({"type": "char"}, [e["target"] for e in entries], tmp_path_factory.mktemp("tok"))


@pytest.fixture
def damaged(small_corpus, tmp_path):
    """The small train list (absolute paths) with one missing and one corrupt audio file; both keep
    their listed source_len, so nothing at start can tell."""
    entries = [json.loads(line) for line in (small_corpus / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    for entry in entries:
        entry["source"] = str(small_corpus / entry["source"])
        entry["speaker"] = "kept"  # an extra field travels with the entry
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF0000WAVEjunk")
    entries[3]["source"] = str(tmp_path / "missing.wav")
    entries[7]["source"] = str(tmp_path / "corrupt.wav")
    path = tmp_path / "damaged.jsonl"
    path.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries), encoding="utf-8")
    return path, entries


def test_index_holds_arrays_and_reads_entries_back(damaged):
    path, entries = damaged
    index, report = index_list(path)
    assert len(index) == 80 and report.num_dropped == 0  # no header is read: both bad files pass
    assert index.nbytes / len(index) <= 26
    entry = index.entry(5)
    assert entry["key"] == entries[5]["key"] and entry["speaker"] == "kept"
    assert entry["source_len"] == entries[5]["source_len"] and entry["target"] == entries[5]["target"].strip()
    assert index.where(5) == (str(path), 6)


def test_stats_trusts_the_list_and_check_reads_every_header_into_a_report(damaged, capsys):
    path, entries = damaged
    assert asr_data(["stats", "--json", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["utterances"] == 80
    assert asr_data(["check", "--json", str(path)]) == 0
    printed = json.loads(capsys.readouterr().out)
    report = json.loads((path.parent / "damaged.jsonl.check.json").read_text(encoding="utf-8"))
    assert printed["report"] == str(path.parent / "damaged.jsonl.check.json")
    assert report["utterances"] == 78 and report["dropped"] == {"missing_audio": 1, "unreadable_audio": 1}
    assert {(p["line"], p["key"]) for p in report["problems"]} == {(4, entries[3]["key"]), (8, entries[7]["key"])}


def test_unloadable_audio_is_skipped_with_its_key_and_the_batch_still_comes(damaged, tokenizer):
    path, entries = damaged
    torch.set_num_threads(1)
    loader, sampler, report = build_dataloader(path, {"batch_type": "example", "batch_size": 4, "shuffle": False},
                                               WavFrontend(dither=0.0), tokenizer, train=True)
    assert report.utterances == 80
    batches = list(loader)
    skipped = [s for batch in batches for s in batch["skipped"]]
    assert {(s["key"], s["reason"], s["line"]) for s in skipped} == {
        (entries[3]["key"], "missing_audio", 4), (entries[7]["key"], "unreadable_audio", 8)}
    assert sum(len(b["keys"]) for b in batches) == 78 and len(batches) == len(sampler) == 20


def test_a_batch_whose_every_utterance_fails_takes_the_next_loadable_one(damaged, tokenizer):
    from engine.data.dataset import AudioTextDataset, collate

    path, entries = damaged
    index, _ = index_list(path)
    dataset = AudioTextDataset(index, tokenizer, WavFrontend(dither=0.0))
    batch = collate(dataset.__getitems__([3]))
    assert batch["keys"] == [entries[4]["key"]] and batch["skipped"][0]["key"] == entries[3]["key"]


def test_speed_perturbation_is_seeded_per_epoch_and_batches_by_the_changed_length():
    rng = np.random.default_rng(0)
    source, target = rng.integers(100, 900, 500), rng.integers(1, 30, 500)
    factors = [0.9, 1.0, 1.1]

    def plan(seed=4):
        return BatchPlan(source, target, "length", 6000, buffer_size=100, seed=seed, speed_factors=factors)

    first, again = plan(), plan()
    first.set_epoch(3), again.set_epoch(3)
    batches = list(first)
    assert batches == list(again)  # a resumed run draws the same factors
    seen = sorted(split_virtual(i, 500)[0] for batch in batches for i in batch)
    assert seen == list(range(500))
    chosen = {split_virtual(i, 500)[1] for batch in batches for i in batch}
    assert chosen == {0, 1, 2}
    for batch in batches:  # the FunASR rule holds on the perturbed lengths
        lengths = [int(source[i % 500] / factors[i // 500]) for i in batch]
        assert len(batch) == 1 or max(lengths) * len(batch) <= 6000
    first.set_epoch(4)
    assert list(first) != batches
    assert list(plan(seed=5)) != list(plan())


def test_perturbed_audio_has_length_over_factor(tmp_path):
    wave = torch.randn(16000)
    assert perturb(wave, 1.0) is wave
    assert abs(perturb(wave, 1.1).numel() - 16000 / 1.1) <= 1
    assert abs(perturb(wave, 0.9).numel() - 16000 / 0.9) <= 1


def test_speed_perturb_is_checked_with_its_key():
    from engine.config import ConfigError, validate_config

    with pytest.raises(ConfigError, match=r"dataset_conf\.speed_perturb: must be null or a list"):
        validate_config({"train_data_set_list": ["a.jsonl"], "dataset_conf": {"speed_perturb": [0.9, 3]}})


def test_the_loader_plays_each_utterance_at_its_drawn_speed(small_corpus, tokenizer):
    import soundfile

    torch.set_num_threads(1)
    frontend = WavFrontend(dither=0.0)
    conf = {"batch_type": "example", "batch_size": 8, "speed_perturb": [0.9, 1.0, 1.1]}
    loader, sampler, _ = build_dataloader(small_corpus / "train.jsonl", conf, frontend, tokenizer, train=True, seed=2)
    valid_loader, valid_sampler, _ = build_dataloader(small_corpus / "train.jsonl", conf, frontend, tokenizer,
                                                      train=False)
    assert valid_sampler.speed_factors == ()  # validation is never perturbed
    sampler.set_epoch(1)
    index = loader.dataset.index
    speeds = set()
    for virtual, batch in zip(sampler.batches(), loader):
        for position, key, frames in zip(virtual, batch["keys"], batch["speech_lengths"].tolist()):
            utterance, choice = split_virtual(position, len(index))
            entry = index.entry(utterance)
            assert entry["key"] == key
            factor = conf["speed_perturb"][choice]
            samples = soundfile.info(entry["source"]).frames
            assert abs(frames - frontend.num_frames(int(samples / factor))) <= 1
            speeds.add(factor)
    assert speeds == {0.9, 1.0, 1.1}
