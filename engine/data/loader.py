"""build_dataloader: data lists -> filtered entries -> batch sampler -> torch DataLoader."""

from __future__ import annotations

import math
import signal

import torch

from engine.data.dataset import AudioTextDataset, collate
from engine.data.lists import DataError, read_jsonl
from engine.data.report import DataReport
from engine.data.sampler import BatchSampler

# dataset_conf keys and their defaults (lengths in 10 ms frames, as in FunASR; target lengths in tokens).
DATASET_DEFAULTS = {
    "batch_type": "example",
    "batch_size": 32,
    "num_workers": 0,
    "shuffle": True,
    "buffer_size": 1024,
    "min_source_length": 0,
    "max_source_length": None,
    "max_target_length": None,
    "max_token_length": None,
    "pin_memory": True,
    "prefetch_factor": 2,
}


def dataset_options(dataset_conf: dict | None) -> dict:
    """``dataset_conf`` with defaults filled in; an unknown key is an error naming it."""
    conf = dict(dataset_conf or {})
    unknown = sorted(set(conf) - set(DATASET_DEFAULTS))
    if unknown:
        raise ValueError(f"dataset_conf: unknown key(s) {unknown}; known: {sorted(DATASET_DEFAULTS)}")
    return {**DATASET_DEFAULTS, **conf}


class PositionTrackingLoader:
    """A DataLoader that counts the batches it hands out into ``sampler.consumed``.

    Workers prefetch batches ahead of the trainer; counting at hand-out time makes the
    sampler's ``state_dict()`` the exact position whatever the prefetch depth. Iterating
    again after the epoch finished starts that epoch over.
    """

    def __init__(self, loader: torch.utils.data.DataLoader, sampler: BatchSampler):
        self.loader = loader
        self.sampler = sampler

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self):
        if self.sampler.consumed >= len(self.sampler):
            self.sampler.consumed = 0
        for batch in self.loader:
            self.sampler.consumed += 1
            yield batch

    def __getattr__(self, name):
        if name in ("loader", "sampler"):  # not set yet (unpickling): do not recurse
            raise AttributeError(name)
        return getattr(self.loader, name)


def _limit(value) -> float:
    return math.inf if value is None else value


def filter_entries(entries: list[dict], token_ids: list[list[int]], options: dict, report: DataReport):
    """Drop entries outside the length limits, counting each reason in ``report``."""
    kept, kept_ids = [], []
    min_source = options["min_source_length"]
    max_source = _limit(options["max_source_length"])
    max_target = _limit(options["max_target_length"])
    max_token = _limit(options["max_token_length"])
    for entry, ids in zip(entries, token_ids):
        source_len = int(entry["source_len"])
        if source_len < min_source:
            reason = "too_short"
        elif source_len > max_source:
            reason = "too_long"
        elif source_len > max_token:
            reason = "over_max_token_length"
        elif not ids:
            reason = "no_tokens"
        elif len(ids) > max_target:
            reason = "target_too_long"
        else:
            kept.append(entry)
            kept_ids.append(ids)
            continue
        report.drop(reason, entry.get("list", ""), None, entry["key"],
                    f"source_len {source_len}, {len(ids)} tokens")
    report.utterances = len(kept)
    report.seconds = sum(int(e["source_len"]) for e in kept) / 100.0
    return kept, kept_ids


def _worker_init(_worker_id: int) -> None:
    # Each worker makes one utterance at a time: intra-op threads would only fight each other.
    torch.set_num_threads(1)
    # A stop is SIGTERM/SIGINT to the job's whole process group: the training process handles it
    # (finish the step, save, end "stopped") and shuts its workers down; a worker that died of it
    # first would turn a clean stop into a DataLoader error.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def build_dataloader(list_paths, dataset_conf: dict, frontend, tokenizer, *, train: bool, seed: int = 0,
                     rank: int = 0, world_size: int = 1, specaug=None, device_type: str = "cpu",
                     progress: bool = False):
    """Read and filter the lists, and build (loader, sampler, report); see docs/ARCHITECTURE.md."""
    options = dataset_options(dataset_conf)
    paths = [list_paths] if isinstance(list_paths, (str, bytes)) or not hasattr(list_paths, "__iter__") else list(list_paths)
    if not paths:
        raise ValueError("build_dataloader: no data lists given")
    report = DataReport(name="train" if train else "valid")
    entries: list[dict] = []
    for path in paths:
        list_entries, list_report = read_jsonl(path, fs=frontend.fs, progress=progress)
        for entry in list_entries:
            entry["list"] = str(path)
        entries.extend(list_entries)
        report.merge(list_report)
    token_ids = [tokenizer.encode(entry["target"]) for entry in entries]
    with_unknown = sum(1 for ids in token_ids if tokenizer.unk_id in ids)
    if with_unknown:
        report.note("texts with <unk> tokens (kept)", with_unknown)
    # The out-of-vocabulary share: high when the lists changed since tokens.txt was built (a resume).
    unknown_tokens = sum(ids.count(tokenizer.unk_id) for ids in token_ids)
    report.oov = {"texts": with_unknown, "of_texts": len(token_ids), "tokens": unknown_tokens,
                  "of_tokens": sum(len(ids) for ids in token_ids)}
    entries, token_ids = filter_entries(entries, token_ids, options, report)
    if not entries:
        reasons = ", ".join(f"{count} {reason}" for reason, count in report.dropped.items() if count) or "none read"
        raise DataError(f"no utterances left in {', '.join(map(str, paths))} (dropped: {reasons}):\n{report.format()}")
    sampler = BatchSampler(
        [int(e["source_len"]) for e in entries], [len(ids) for ids in token_ids],
        batch_type=options["batch_type"], batch_size=int(options["batch_size"]),
        shuffle=bool(options["shuffle"]) and train, buffer_size=int(options["buffer_size"]),
        seed=seed, rank=rank, world_size=world_size,
    )
    dataset = AudioTextDataset(entries, token_ids, frontend, specaug=specaug, train=train)
    workers = int(options["num_workers"])
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=sampler, collate_fn=collate, num_workers=workers,
        pin_memory=bool(options["pin_memory"]) and device_type == "cuda",
        persistent_workers=workers > 0, prefetch_factor=int(options["prefetch_factor"]) if workers > 0 else None,
        worker_init_fn=_worker_init if workers > 0 else None,
        generator=torch.Generator().manual_seed(seed * 1000 + rank),
    )
    if sampler.repeated_batches:
        report.note("batches repeated so that every rank has as many", sampler.repeated_batches)
    return PositionTrackingLoader(loader, sampler), sampler, report
