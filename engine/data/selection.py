"""Which utterances of a split's lists take part, and their batch plan (no torch).

:func:`select_lists` indexes the lists and applies ``dataset_conf``'s length limits;
:func:`config_batches_per_epoch` counts the batches of an epoch with the same BatchPlan the training
sampler uses. The trainer and the console's lr preview both go through here, so
``max_update: auto`` is the same number before launch and in the run.
"""

from __future__ import annotations

import math
import os

import numpy as np

from engine.data.batching import BatchPlan
from engine.data.list_index import DataError, ListIndex, index_lists
from engine.data.report import MAX_LISTED_PROBLEMS, DataReport
from engine.data.speed import check_speed_factors

# dataset_conf keys and their defaults (lengths in 10 ms frames and target_len units, as in FunASR).
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
    "speed_perturb": None,
    "cache_mb": 0,
}


def dataset_options(dataset_conf: dict | None) -> dict:
    """``dataset_conf`` with defaults filled in; an unknown key is an error naming it."""
    conf = dict(dataset_conf or {})
    unknown = sorted(set(conf) - set(DATASET_DEFAULTS))
    if unknown:
        raise ValueError(f"dataset_conf: unknown key(s) {unknown}; known: {sorted(DATASET_DEFAULTS)}")
    options = {**DATASET_DEFAULTS, **conf}
    check_speed_factors(options["speed_perturb"])
    return options


def _limit(value) -> float:
    return math.inf if value is None else value


def filter_index(index: ListIndex, options: dict, report: DataReport) -> ListIndex:
    """Drop entries outside the length limits (listed ``source_len``/``target_len``, as FunASR),
    counting each reason in ``report``; the first problems are listed with their key."""
    source = index.source_len.astype(np.int64)
    target = index.target_len.astype(np.int64)
    rules = (  # the first rule an entry breaks is its reason
        ("too_short", source < options["min_source_length"]),
        ("too_long", source > _limit(options["max_source_length"])),
        ("over_max_token_length", source > _limit(options["max_token_length"])),
        ("no_tokens", target <= 0),
        ("target_too_long", target > _limit(options["max_target_length"])),
    )
    dropped = np.zeros(len(index), dtype=bool)
    for reason, broken in rules:
        broken = broken & ~dropped
        positions = np.flatnonzero(broken)
        if not len(positions):
            continue
        room = max(MAX_LISTED_PROBLEMS - len(report.problems), 0)
        for i in positions[:room].tolist():
            path, line = index.where(i)
            report.drop(reason, path, line, index.key(i), f"source_len {int(source[i])}, target_len {int(target[i])}")
        report.dropped[reason] += len(positions) - min(room, len(positions))
        dropped |= broken
    if dropped.any():
        index = index.take(~dropped)
    report.utterances = len(index)
    report.seconds = index.seconds()
    return index


def select_lists(list_paths, options: dict, *, fs: int = 16000, progress: bool = False,
                 name: str = "train") -> tuple[ListIndex, DataReport]:
    """The index of the lists' usable utterances and the report of what was dropped and why."""
    paths = [list_paths] if isinstance(list_paths, (str, bytes)) or not hasattr(list_paths, "__iter__") else list(list_paths)
    if not paths:
        raise ValueError("no data lists given")
    index, list_report = index_lists(paths, fs=fs, progress=progress)
    report = DataReport(name=name).merge(list_report)
    index = filter_index(index, options, report)
    if not len(index):
        reasons = ", ".join(f"{count} {reason}" for reason, count in report.dropped.items() if count) or "none read"
        raise DataError(f"no utterances left in {', '.join(map(str, paths))} (dropped: {reasons}):\n{report.format()}")
    return index, report


def train_plan(index: ListIndex, options: dict, *, seed: int, world_size: int = 1, rank: int = 0) -> BatchPlan:
    """The training batch plan of a selected index (what BatchSampler does in the DataLoader)."""
    return BatchPlan(index.source_len, index.target_len, batch_type=options["batch_type"],
                     batch_size=int(options["batch_size"]), shuffle=bool(options["shuffle"]),
                     buffer_size=int(options["buffer_size"]), seed=seed, rank=rank, world_size=world_size,
                     speed_factors=options["speed_perturb"])


def world_size_of(config: dict) -> int:
    dist = config.get("distributed") or {}
    return max(int(dist.get("nnodes") or 1) * int(dist.get("nproc_per_node") or 1), 1)


def config_batches_per_epoch(config: dict, progress: bool = False) -> tuple[int, DataReport]:
    """Batches per rank in epoch 1 of a config's training lists (the run's count, before launch).

    The count is remembered per (lists as they are on disk, batching, seed, world size), so the
    console's preview re-reads a large list only when something it depends on changed.
    """
    options = dataset_options(config.get("dataset_conf"))
    fs = int((config.get("frontend_conf") or {}).get("fs") or 16000)
    paths = [str(p) for p in config["train_data_set_list"]]
    seed, world_size = int(config.get("seed") or 0), world_size_of(config)
    files = []
    for path in paths:
        try:
            stat = os.stat(path)
            files.append((path, stat.st_mtime_ns, stat.st_size))
        except OSError:
            files.append((path, None, None))
    key = repr((files, sorted(options.items()), fs, seed, world_size))
    if key in _COUNTS:
        return _COUNTS[key]
    index, report = select_lists(paths, options, fs=fs, progress=progress)
    plan = train_plan(index, options, seed=seed, world_size=world_size)
    result = (plan.num_batches(1), report)
    index.close()
    if len(_COUNTS) >= 8:
        _COUNTS.pop(next(iter(_COUNTS)))
    _COUNTS[key] = result
    return result


_COUNTS: dict[str, tuple[int, DataReport]] = {}
