"""Length-bucketing batch plans with an exact, resumable position, even across ranks (no torch).

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

Speed perturbation (``speed_factors``, e.g. ``[0.9, 1.0, 1.1]``): each epoch every utterance
gets one factor, drawn from ``seed`` and the epoch (so a resumed run draws the same), its
``source_len`` becomes ``int(source_len / factor)`` for sorting and costs, and the plan hands
out *virtual* indices ``index + count * k`` (k: the factor's position) that
:func:`split_virtual` turns back into (utterance, factor).

The position is ``consumed``: batches of the current epoch the trainer has received. The
loader returned by ``build_dataloader`` counts them as it hands batches out, so batches
prefetched by workers are not counted; ``state_dict()`` is therefore exact at any step,
and ``state_dict(consumed=k)`` lets a caller that counts for itself say so.

The plan of an epoch is held as two numpy arrays (utterance order, batch bounds), not a list
per batch: a 10-million-utterance list plans in seconds and costs tens of MB.
"""

from __future__ import annotations

import random

import numpy as np

from engine.data.speed import check_speed_factors

BATCH_TYPES = ("example", "length", "token")
# FunASR's weight of target tokens in the ``token`` batch cost.
TARGET_TOKEN_WEIGHT = 1.2


def speed_choices(count: int, seed: int, epoch: int, num_factors: int) -> np.ndarray:
    """Each utterance's factor position in ``epoch`` (the same on every rank and after a resume)."""
    if num_factors <= 1:
        return np.zeros(count, dtype=np.int64)
    return np.random.default_rng([seed, epoch, 0x5EED]).integers(0, num_factors, size=count)


def perturbed_lengths(source_lengths: np.ndarray, factors: tuple[float, ...], choices: np.ndarray) -> np.ndarray:
    """``int(source_len / factor)`` of each utterance: its length after speed perturbation."""
    return (source_lengths / np.asarray(factors, dtype=np.float64)[choices]).astype(np.int64)


def split_virtual(index: int, count: int) -> tuple[int, int]:
    """(utterance index, factor position) of a virtual index handed out with speed perturbation."""
    return index % count, index // count


class BatchPlan:
    """Every rank's batches of each epoch; one instance per rank. Iterating yields lists of indices."""

    def __init__(self, source_lengths, target_lengths, batch_type: str = "example", batch_size: int = 32,
                 shuffle: bool = True, buffer_size: int = 1024, seed: int = 0, rank: int = 0, world_size: int = 1,
                 speed_factors=None):
        if batch_type not in BATCH_TYPES:
            raise ValueError(f"dataset_conf.batch_type must be one of {BATCH_TYPES}, got {batch_type!r}")
        if batch_size < 1 or buffer_size < 1:
            raise ValueError(f"dataset_conf: batch_size and buffer_size must be >= 1, got {batch_size}, {buffer_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        if len(source_lengths) == 0:
            raise ValueError("BatchSampler: no utterances to batch")
        # kept in the caller's integer type (a ListIndex's int32 columns are shared, not copied)
        self.source_lengths = np.asarray(source_lengths)
        self.target_lengths = np.asarray(target_lengths)
        if self.source_lengths.dtype.kind not in "iu" or self.target_lengths.dtype.kind not in "iu":
            self.source_lengths = self.source_lengths.astype(np.int64)
            self.target_lengths = self.target_lengths.astype(np.int64)
        self.batch_type = batch_type
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.buffer_size = buffer_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.speed_factors = check_speed_factors(speed_factors)
        self.epoch = 0
        self.consumed = 0
        self.repeated_batches = 0
        # (epoch, flat indices of this rank's batches, their starts, their ends)
        self._cache: tuple[int, np.ndarray, np.ndarray, np.ndarray] | None = None

    # Costs -------------------------------------------------------------------------------------

    def _costs(self, source_lengths: np.ndarray) -> np.ndarray:
        if self.batch_type == "example":
            return np.ones(len(source_lengths), dtype=np.int64)
        if self.batch_type == "length":
            return source_lengths
        return source_lengths + (self.target_lengths * TARGET_TOKEN_WEIGHT).astype(np.int64)

    def cost(self, index: int) -> int:
        """Batch cost of utterance ``index`` at its listed length (no perturbation)."""
        if self.batch_type == "example":
            return 1
        source = int(self.source_lengths[index])
        if self.batch_type == "length":
            return source
        return source + int(int(self.target_lengths[index]) * TARGET_TOKEN_WEIGHT)

    def epoch_lengths(self, epoch: int) -> tuple[np.ndarray, np.ndarray | None]:
        """(source lengths as batched in ``epoch``, factor positions or None without perturbation)."""
        if len(self.speed_factors) <= 1 and (not self.speed_factors or self.speed_factors[0] == 1.0):
            return self.source_lengths, None
        choices = speed_choices(len(self.source_lengths), self.seed, epoch, len(self.speed_factors))
        return perturbed_lengths(self.source_lengths, self.speed_factors, choices), choices

    # Planning ----------------------------------------------------------------------------------

    def _plan(self, epoch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(flat utterance order, batch starts, batch ends) of every rank, in step order:
        step s, rank r is batch s * world_size + r."""
        count = len(self.source_lengths)
        lengths, choices = self.epoch_lengths(epoch)
        if self.shuffle:
            order = np.random.default_rng(self.seed + epoch).permutation(count)
        else:
            order = np.arange(count)
        buffer_of = np.arange(count) // self.buffer_size
        order = order[np.lexsort((lengths[order], buffer_of))]  # stable: sorted within each buffer
        sorted_costs = self._costs(lengths)[order]
        starts: list[int] = []
        # Greedy packing is sequential by nature; a plain loop over ints is the fast way in Python
        # (one buffer's costs at a time as Python ints, so no list of every utterance is made).
        batch_size = self.batch_size
        for buffer_start in range(0, count, self.buffer_size):
            buffer_end = min(buffer_start + self.buffer_size, count)
            costs = sorted_costs[buffer_start:buffer_end].tolist()
            start, max_cost = buffer_start, 0
            for j in range(buffer_start, buffer_end):
                cost = costs[j - buffer_start]
                if cost > max_cost:
                    if j > start and cost * (j - start + 1) > batch_size:
                        starts.append(start)
                        start = j
                    max_cost = cost
                elif max_cost * (j - start + 1) > batch_size:
                    starts.append(start)
                    start, max_cost = j, cost
            starts.append(start)
        starts.append(count)
        bounds = np.array(starts, dtype=np.int64)
        begin, end = bounds[:-1], bounds[1:]
        begin, end = self._divisible(begin, end, sorted_costs)
        groups = list(range(0, len(begin), self.world_size))
        if self.shuffle:
            random.Random(self.seed + epoch).shuffle(groups)
        picked = (np.asarray(groups, dtype=np.int64)[:, None] + np.arange(self.world_size)[None, :]).reshape(-1)
        if choices is not None:
            order = order + count * choices[order]
        return order, begin[picked], end[picked]

    def _divisible(self, begin: np.ndarray, end: np.ndarray, costs: np.ndarray):
        """Halve the costliest batches until the count divides by world_size (or repeat some)."""
        self.repeated_batches = 0
        if len(begin) % self.world_size == 0:
            return begin, end
        padded = np.maximum.reduceat(costs, begin) * (end - begin)
        while len(begin) % self.world_size:
            splittable = np.flatnonzero(end - begin > 1)
            if not len(splittable):
                missing = self.world_size - len(begin) % self.world_size
                self.repeated_batches = missing
                again = np.arange(missing) % len(begin)
                return np.concatenate([begin, begin[again]]), np.concatenate([end, end[again]])
            largest = int(splittable[np.argmax(padded[splittable])])
            middle = begin[largest] + (end[largest] - begin[largest]) // 2
            halves = [(begin[largest], middle), (middle, end[largest])]
            half_costs = [costs[a:b].max() * (b - a) for a, b in halves]
            begin = np.concatenate([begin[:largest], [halves[0][0], halves[1][0]], begin[largest + 1:]])
            end = np.concatenate([end[:largest], [halves[0][1], halves[1][1]], end[largest + 1:]])
            padded = np.concatenate([padded[:largest], half_costs, padded[largest + 1:]])
        return begin, end

    def global_batches(self, epoch: int) -> list[list[int]]:
        """Every rank's batches of ``epoch``, in step order: step s, rank r is item s * world_size + r."""
        order, begin, end = self._plan(epoch)
        return [order[a:b].tolist() for a, b in zip(begin, end)]

    def _rank_plan(self, epoch: int | None = None):
        epoch = self.epoch if epoch is None else epoch
        if self._cache is None or self._cache[0] != epoch:
            order, begin, end = self._plan(epoch)
            self._cache = (epoch, order, begin[self.rank:: self.world_size], end[self.rank:: self.world_size])
        return self._cache[1:]

    def batches(self, epoch: int | None = None) -> list[list[int]]:
        """This rank's batches of ``epoch`` (default: the current one)."""
        order, begin, end = self._rank_plan(epoch)
        return [order[a:b].tolist() for a, b in zip(begin, end)]

    def num_batches(self, epoch: int | None = None) -> int:
        """Batches of ``epoch`` (default: the current one), the same on every rank."""
        return len(self._rank_plan(epoch)[1])

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch; a different epoch than the current one starts at its first batch."""
        if epoch != self.epoch:
            self.epoch = epoch
            self.consumed = 0

    def __len__(self) -> int:
        """Batches in the whole current epoch (the same on every rank)."""
        return self.num_batches()

    @property
    def remaining(self) -> int:
        return len(self) - self.consumed

    def __iter__(self):
        """The current epoch's batches from position ``consumed`` on."""
        order, begin, end = self._rank_plan()
        for a, b in zip(begin[self.consumed:].tolist(), end[self.consumed:].tolist()):
            yield order[a:b].tolist()

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
