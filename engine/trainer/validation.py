"""Validation: mean loss terms and accuracy over the validation lists, identical on every rank.

Each rank evaluates its own shard with the bare model (no DDP: shards may hold different
numbers of batches, and DDP's forward would wait for the others), then the sums are all-reduced
once. Means are weighted by utterances, so the result does not depend on how batches were cut.
"""

from __future__ import annotations

import logging

import torch
import torch.distributed as dist

from engine.utils.dist import all_reduce_sum

log = logging.getLogger("engine")


def move_batch(batch: dict, device: torch.device) -> dict:
    non_blocking = device.type == "cuda"
    return {key: value.to(device, non_blocking=non_blocking) if isinstance(value, torch.Tensor) else value
            for key, value in batch.items()}


def forward_batch(model: torch.nn.Module, batch: dict) -> dict[str, torch.Tensor]:
    return model(batch["speech"], batch["speech_lengths"], batch["text"], batch["text_lengths"])


def metric_names(sums: dict[str, float]) -> list[str]:
    """The union of metric names over ranks: a rank whose shard was empty has none of its own."""
    names = set(sums)
    if dist.is_initialized():
        gathered: list = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, sorted(names))
        names = set().union(*gathered)
    return sorted(names)


@torch.no_grad()
def validate(model: torch.nn.Module, loader, device: torch.device) -> dict[str, float]:
    """{"loss", "loss_ctc", "loss_att", "acc", ..., "utterances"} over every rank's shard."""
    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    utterances = 0
    try:
        for batch in loader:
            for skipped in batch.get("skipped") or ():
                log.warning("validation skipped %s:%s key %r: %s (%s)", skipped["path"], skipped["line"],
                            skipped["key"], skipped["reason"], skipped["detail"])
            batch = move_batch(batch, device)
            size = len(batch["keys"])
            outputs = forward_batch(model, batch)
            for name, value in outputs.items():
                if isinstance(value, torch.Tensor) and value.numel() == 1:
                    sums[name] = sums.get(name, 0.0) + float(value) * size
            utterances += size
    finally:
        model.train(was_training)
    names = metric_names(sums)
    totals = all_reduce_sum([sums.get(name, 0.0) for name in names] + [utterances], device)
    total_utterances = totals[-1]
    if total_utterances == 0:
        raise RuntimeError("validation lists gave no batches on any rank (all utterances filtered?)")
    metrics = {name: total / total_utterances for name, total in zip(names, totals[:-1])}
    metrics["utterances"] = int(total_utterances)
    return metrics
