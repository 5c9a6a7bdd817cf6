"""build_dataloader: data lists -> filtered entries -> batch sampler -> torch DataLoader."""

from __future__ import annotations

import random
import signal

import torch

from engine.data.dataset import AudioTextDataset, collate
from engine.data.cache import LoadCache
from engine.data.sampler import BatchSampler
from engine.data.selection import dataset_options, select_lists

# The out-of-vocabulary share is measured on all texts up to this many, else on a seeded sample of
# this many (tokenising 10 million texts would cost a minute at every start).
OOV_SAMPLE = 20_000


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


def count_oov(index, tokenizer, report, seed: int = 0) -> None:
    """``report.oov`` (texts and tokens outside the tokenizer: high when the lists changed since
    tokens.txt was built, e.g. on a resume) and the note of texts with <unk>, over the kept texts or a
    seeded sample of OOV_SAMPLE of them (``report.oov["sampled"]`` says which)."""
    count = len(index)
    positions = range(count) if count <= OOV_SAMPLE else sorted(random.Random(seed).sample(range(count), OOV_SAMPLE))
    texts = token_total = unknown_total = 0
    for i in positions:
        ids = tokenizer.encode(index.text(i))
        unknown = ids.count(tokenizer.unk_id)
        texts += unknown > 0
        unknown_total += unknown
        token_total += len(ids)
    sampled = len(positions) < count
    if texts:
        report.note("texts with <unk> tokens (kept)" + (f", in a sample of {len(positions)}" if sampled else ""),
                    texts)
    report.oov = {"texts": texts, "of_texts": len(positions), "tokens": unknown_total, "of_tokens": token_total,
                  "sampled": sampled}


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
    index, report = select_lists(list_paths, options, fs=frontend.fs, progress=progress, name="train" if train else "valid")
    count_oov(index, tokenizer, report, seed=seed)
    speed_factors = options["speed_perturb"] if train else None
    sampler = BatchSampler(
        index.source_len, index.target_len,
        batch_type=options["batch_type"], batch_size=int(options["batch_size"]),
        shuffle=bool(options["shuffle"]) and train, buffer_size=int(options["buffer_size"]),
        seed=seed, rank=rank, world_size=world_size, speed_factors=speed_factors,
    )
    cache_mb = float(options["cache_mb"])
    cache = LoadCache(cache_mb, "train" if train else "valid") if cache_mb > 0 else None
    dataset = AudioTextDataset(index, tokenizer, frontend, specaug=specaug, train=train,
                               speed_factors=sampler.speed_factors, cache=cache)
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
