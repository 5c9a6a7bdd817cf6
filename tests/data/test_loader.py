import json

import pytest
import torch

from engine.data import build_dataloader
from engine.data.frontend import WavFrontend
from engine.data.lists import read_jsonl
from engine.data.specaug import SpecAugment
from engine.data.tokenizer import build_tokenizer


@pytest.fixture(scope="module")
def tokenizer(small_corpus, tmp_path_factory):
    entries, _ = read_jsonl(small_corpus / "train.jsonl")
    return build_tokenizer({"type": "char"}, [e["target"] for e in entries], tmp_path_factory.mktemp("tok"))


def test_batch_dict_matches_the_interface(small_corpus, tokenizer):
    torch.set_num_threads(1)
    loader, sampler, report = build_dataloader([small_corpus / "train.jsonl"], {"batch_type": "example", "batch_size": 4},
                                               WavFrontend(dither=0.0), tokenizer, train=True, seed=0,
                                               specaug=SpecAugment())
    batch = next(iter(loader))
    assert set(batch) == {"keys", "speech", "speech_lengths", "text", "text_lengths", "num_frames_padded",
                          "num_frames_real", "skipped"}
    assert batch["skipped"] == []
    assert batch["speech"].dtype == torch.float32 and batch["speech"].shape[0] == 4 and batch["speech"].shape[2] == 80
    assert batch["speech_lengths"].dtype == torch.int64 and batch["text"].dtype == torch.int64
    assert batch["speech"].shape[1] == batch["speech_lengths"].max()
    shortest = batch["text_lengths"].argmin()
    assert (batch["text"][shortest, batch["text_lengths"][shortest]:] == -1).all()
    assert batch["num_frames_real"] == batch["speech_lengths"].sum()
    assert batch["num_frames_padded"] == batch["speech"].shape[0] * batch["speech"].shape[1]
    entry = next(e for e in read_jsonl(small_corpus / "train.jsonl")[0] if e["key"] == batch["keys"][0])
    assert batch["text"][0, : batch["text_lengths"][0]].tolist() == tokenizer.encode(entry["target"])
    assert report.utterances == 80 and len(loader) == len(sampler) == 20


@pytest.mark.parametrize("batch_type,batch_size", [("example", 6), ("length", 1500), ("token", 1800)])
def test_position_is_exact_with_prefetching_workers(small_corpus, tokenizer, batch_type, batch_size):
    torch.set_num_threads(1)
    conf = {"batch_type": batch_type, "batch_size": batch_size, "num_workers": 2, "prefetch_factor": 4}

    def build():
        return build_dataloader(small_corpus / "train.jsonl", conf, WavFrontend(dither=0.0), tokenizer,
                                train=True, seed=1)

    loader, sampler, _ = build()
    sampler.set_epoch(1)
    full = [batch["keys"] for batch in loader]
    loader, sampler, _ = build()
    sampler.set_epoch(1)
    iterator = iter(loader)
    consumed = [next(iterator)["keys"] for _ in range(3)]
    state = sampler.state_dict()
    assert state["consumed"] == 3 and consumed == full[:3]
    loader, sampler, _ = build()
    sampler.load_state_dict(json.loads(json.dumps(state)))
    sampler.set_epoch(1)
    assert [batch["keys"] for batch in loader] == full[3:]
    sampler.set_epoch(2)
    assert len([batch for batch in loader]) == len(sampler)


def test_length_filters_are_counted_by_reason(small_corpus, tokenizer):
    entries, _ = read_jsonl(small_corpus / "train.jsonl")
    lengths = sorted(int(e["source_len"]) for e in entries)
    # max_target_length counts the list's target_len (words or characters), as FunASR does, not tokens
    target_lens = sorted(int(e["target_len"]) for e in entries)
    conf = {"min_source_length": lengths[5], "max_source_length": lengths[-6], "max_target_length": target_lens[-10]}
    _, _, report = build_dataloader(small_corpus / "train.jsonl", conf, WavFrontend(), tokenizer, train=False)
    assert report.dropped["too_short"] == sum(n < lengths[5] for n in lengths) > 0
    assert report.dropped["too_long"] == sum(n > lengths[-6] for n in lengths) > 0
    assert report.dropped["target_too_long"] > 0
    assert report.utterances == 80 - report.num_dropped
    assert report.to_event()["dropped"] == dict(report.dropped)
    assert "too_short" in report.format()


def test_unknown_dataset_conf_key_is_named(small_corpus, tokenizer):
    with pytest.raises(ValueError, match="batch_bins"):
        build_dataloader(small_corpus / "train.jsonl", {"batch_bins": 3}, WavFrontend(), tokenizer, train=True)


def test_workers_are_persistent_and_memory_pinned_only_for_cuda(small_corpus, tokenizer):
    conf = {"num_workers": 2}
    cpu_loader, _, _ = build_dataloader(small_corpus / "valid.jsonl", conf, WavFrontend(), tokenizer, train=False)
    cuda_loader, _, _ = build_dataloader(small_corpus / "valid.jsonl", conf, WavFrontend(), tokenizer, train=False,
                                         device_type="cuda")
    assert cpu_loader.persistent_workers and not cpu_loader.pin_memory
    assert cuda_loader.pin_memory


def test_validation_order_is_fixed_and_loader_can_be_iterated_again(small_corpus, tokenizer):
    torch.set_num_threads(1)
    loader, sampler, report = build_dataloader(small_corpus / "valid.jsonl", {"batch_size": 8}, WavFrontend(),
                                               tokenizer, train=False)
    first = [batch["keys"] for batch in loader]
    assert [batch["keys"] for batch in loader] == first
    assert sorted(key for keys in first for key in keys) == sorted(e["key"] for e in read_jsonl(small_corpus / "valid.jsonl")[0])


def test_workers_survive_a_stop_signal_to_the_process_group(small_corpus, tokenizer):
    """The job is stopped by SIGTERM to its process group: workers must leave it to the trainer."""
    import os
    import signal

    torch.set_num_threads(1)
    conf = {"batch_type": "example", "batch_size": 4, "num_workers": 1}
    loader, _, _ = build_dataloader(small_corpus / "train.jsonl", conf, WavFrontend(dither=0.0), tokenizer,
                                    train=True, seed=0)
    batches = iter(loader)
    next(batches)
    worker = loader.loader._iterator._workers[0]
    os.kill(worker.pid, signal.SIGTERM)
    assert len([next(batches) for _ in range(5)]) == 5
    assert worker.is_alive()
