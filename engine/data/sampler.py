"""Length-bucketing batch sampler with an exact, resumable position, even across ranks.

Each epoch the whole list is shuffled from ``seed + epoch`` (the same on every rank), cut
into sort buffers of ``buffer_size`` utterances, each buffer sorted by source length and
packed greedily into batches by FunASR's rule::

    max(cost of the utterances in the batch) * number of utterances <= batch_size

with the cost of an utterance being, per ``batch_type``:

* ``example``: 1, so a batch holds ``batch_size`` utterances;
* ``length``: ``source_len`` (10 ms frames), so padded frames per batch <= batch_size;
* ``token``: ``source_len + int(1.2 * target_len)``, FunASR's token rule
  (``CustomDistributedBufferDynamicBatchSampler``): padded source frames plus the
  padded target tokens, weighted by 1.2, per batch <= batch_size.

An utterance costlier than ``batch_size`` on its own gets a batch of its own. So that every
rank runs the same number of steps (a rank that runs out first would hang DDP's all-reduce),
the largest batches are halved until the count divides by the world size; only if that is
impossible (fewer utterances than ranks) are batches repeated, and ``repeated_batches``
says how many. Batches of similar size are grouped ``world_size`` at a time, the groups
are shuffled and rank r takes member r of each group, so ranks stay in step.

The position is ``consumed``: batches of the current epoch the trainer has received. The
loader returned by ``build_dataloader`` counts them as it hands batches out, so batches
prefetched by workers are not counted; ``state_dict()`` is therefore exact at any step,
and ``state_dict(consumed=k)`` lets a caller that counts for itself say so.
"""

from __future__ import annotations

import random

import torch

BATCH_TYPES = ("example", "length", "token")
# FunASR's weight of target tokens in the ``token`` batch cost.
TARGET_TOKEN_WEIGHT = 1.2


class BatchSampler(torch.utils.data.Sampler):
    """Yields lists of dataset indices; one instance per rank."""

    def __init__(self, source_lengths: list[int], target_lengths: list[int], batch_type: str = "example",
                 batch_size: int = 32, shuffle: bool = True, buffer_size: int = 1024, seed: int = 0,
                 rank: int = 0, world_size: int = 1):
        if batch_type not in BATCH_TYPES:
            raise ValueError(f"dataset_conf.batch_type must be one of {BATCH_TYPES}, got {batch_type!r}")
        if batch_size < 1 or buffer_size < 1:
            raise ValueError(f"dataset_conf: batch_size and buffer_size must be >= 1, got {batch_size}, {buffer_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        if not source_lengths:
            raise ValueError("BatchSampler: no utterances to batch")
        self.source_lengths = [int(n) for n in source_lengths]
        self.target_lengths = [int(n) for n in target_lengths]
        self.batch_type = batch_type
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.buffer_size = buffer_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.consumed = 0
        self.repeated_batches = 0
        self._cache: tuple[int, list[list[int]]] | None = None

    def cost(self, index: int) -> int:
        if self.batch_type == "example":
            return 1
        if self.batch_type == "length":
            return self.source_lengths[index]
        return self.source_lengths[index] + int(self.target_lengths[index] * TARGET_TOKEN_WEIGHT)

    def _pack(self, buffer: list[int]) -> list[list[int]]:
        batches: list[list[int]] = []
        batch: list[int] = []
        max_cost = 0
        for index in buffer:
            cost = self.cost(index)
            if batch and max(max_cost, cost) * (len(batch) + 1) > self.batch_size:
                batches.append(batch)
                batch, max_cost = [], 0
            batch.append(index)
            max_cost = max(max_cost, cost)
        if batch:
            batches.append(batch)
        return batches

    def _padded_cost(self, batch: list[int]) -> int:
        return max(self.cost(i) for i in batch) * len(batch)

    def _divisible(self, batches: list[list[int]]) -> list[list[int]]:
        """Halve the costliest batches until the count divides by world_size (or repeat some)."""
        self.repeated_batches = 0
        while len(batches) % self.world_size:
            splittable = [b for b in range(len(batches)) if len(batches[b]) > 1]
            if not splittable:
                missing = self.world_size - len(batches) % self.world_size
                self.repeated_batches = missing
                return batches + [list(batches[i % len(batches)]) for i in range(missing)]
            largest = max(splittable, key=lambda b: self._padded_cost(batches[b]))
            batch = batches[largest]
            half = len(batch) // 2
            batches[largest: largest + 1] = [batch[:half], batch[half:]]
        return batches

    def global_batches(self, epoch: int) -> list[list[int]]:
        """Every rank's batches of ``epoch``, in step order: step s, rank r is item s * world_size + r."""
        count = len(self.source_lengths)
        rng = random.Random(self.seed + epoch)
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + epoch)
            order = torch.randperm(count, generator=generator).tolist()
        else:
            order = list(range(count))
        batches: list[list[int]] = []
        for start in range(0, count, self.buffer_size):
            buffer = sorted(order[start: start + self.buffer_size], key=lambda i: self.source_lengths[i])
            batches.extend(self._pack(buffer))
        batches = self._divisible(batches)
        groups = [batches[g: g + self.world_size] for g in range(0, len(batches), self.world_size)]
        if self.shuffle:
            rng.shuffle(groups)
        return [batch for group in groups for batch in group]

    def batches(self, epoch: int | None = None) -> list[list[int]]:
        """This rank's batches of ``epoch`` (default: the current one)."""
        epoch = self.epoch if epoch is None else epoch
        if self._cache is None or self._cache[0] != epoch:
            self._cache = (epoch, self.global_batches(epoch)[self.rank:: self.world_size])
        return self._cache[1]

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch; a different epoch than the current one starts at its first batch."""
        if epoch != self.epoch:
            self.epoch = epoch
            self.consumed = 0

    def __len__(self) -> int:
        """Batches in the whole current epoch (the same on every rank)."""
        return len(self.batches())

    @property
    def remaining(self) -> int:
        return len(self) - self.consumed

    def __iter__(self):
        """The current epoch's batches from position ``consumed`` on."""
        yield from self.batches()[self.consumed:]

    def state_dict(self, consumed: int | None = None) -> dict:
        return {
            "epoch": self.epoch,
            "consumed": self.consumed if consumed is None else int(consumed),
            "seed": self.seed,
            "world_size": self.world_size,
            "num_batches": len(self),
            "batch_type": self.batch_type,
            "batch_size": self.batch_size,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a position; refuses one that was saved for other data, batching or world size."""
        self.epoch = int(state["epoch"])
        self._cache = None
        saved = (state["seed"], state["world_size"], state["batch_type"], state["batch_size"], state["num_batches"])
        now = (self.seed, self.world_size, self.batch_type, self.batch_size, len(self))
        if saved != now:
            names = ("seed", "world_size", "batch_type", "batch_size", "num_batches")
            changed = ", ".join(f"{n} {a} -> {b}" for n, a, b in zip(names, saved, now) if a != b)
            raise ValueError(f"cannot restore the data position of epoch {self.epoch}: {changed}; "
                             "the data, batching or world size changed since the checkpoint")
        consumed = int(state["consumed"])
        if not 0 <= consumed <= len(self):
            raise ValueError(f"sampler state: consumed {consumed} is outside 0..{len(self)}")
        self.consumed = consumed
