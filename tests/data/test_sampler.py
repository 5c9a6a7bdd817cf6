import random

import pytest

from engine.data.sampler import BatchSampler

BATCH_CONFS = [("example", 7), ("length", 900), ("token", 1200)]


def lengths(count=203, seed=0):
    rng = random.Random(seed)
    source = [rng.randint(50, 400) for _ in range(count)]
    target = [rng.randint(1, 30) for _ in range(count)]
    return source, target


def samplers(batch_type, batch_size, world_size, count=203, **kwargs):
    source, target = lengths(count)
    return [BatchSampler(source, target, batch_type, batch_size, seed=3, rank=rank, world_size=world_size,
                         buffer_size=64, **kwargs) for rank in range(world_size)]


@pytest.mark.parametrize("batch_type,batch_size", BATCH_CONFS)
@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
def test_each_utterance_once_per_epoch_and_equal_batches_on_every_rank(batch_type, batch_size, world_size):
    ranks = samplers(batch_type, batch_size, world_size)
    for epoch in range(2):
        for sampler in ranks:
            sampler.set_epoch(epoch)
        per_rank = [list(sampler) for sampler in ranks]
        assert len({len(batches) for batches in per_rank}) == 1
        assert all(len(s) == len(per_rank[0]) for s in ranks)
        seen = sorted(i for batches in per_rank for batch in batches for i in batch)
        assert seen == list(range(203))


@pytest.mark.parametrize("batch_type,batch_size", BATCH_CONFS[1:])
def test_dynamic_batches_respect_funasr_rule(batch_type, batch_size):
    (sampler,) = samplers(batch_type, batch_size, 1)
    for batch in sampler:
        if len(batch) > 1:
            assert max(sampler.cost(i) for i in batch) * len(batch) <= batch_size
    source, target = lengths()
    assert sampler.cost(0) == (source[0] if batch_type == "length" else source[0] + int(1.2 * target[0]))


def test_example_batches_hold_batch_size_utterances():
    (sampler,) = samplers("example", 7, 1)
    sizes = sorted(len(b) for b in sampler)
    assert sizes[-1] == 7 and sum(sizes) == 203


def test_fresh_order_each_epoch_reproducible_from_seed():
    first, second = samplers("length", 900, 1)[0], samplers("length", 900, 1)[0]
    epoch0 = list(first)
    first.set_epoch(1)
    assert list(first) != epoch0
    second.set_epoch(1)
    assert list(second) == list(first)


def test_unshuffled_sampler_is_the_same_every_epoch():
    (sampler,) = samplers("token", 1200, 1, shuffle=False)
    epoch0 = list(sampler)
    sampler.set_epoch(5)
    assert list(sampler) == epoch0


@pytest.mark.parametrize("batch_type,batch_size", BATCH_CONFS)
@pytest.mark.parametrize("world_size", [1, 2])
def test_restored_position_gives_exactly_the_remaining_batches(batch_type, batch_size, world_size):
    for rank in range(world_size):
        sampler = samplers(batch_type, batch_size, world_size)[rank]
        sampler.set_epoch(2)
        full = list(sampler)
        for k in (0, 1, len(full) // 2, len(full)):
            state = sampler.state_dict(consumed=k)
            fresh = samplers(batch_type, batch_size, world_size)[rank]
            fresh.load_state_dict(state)
            fresh.set_epoch(2)  # the trainer sets the epoch it resumes; the position stays
            assert list(fresh) == full[k:]
            fresh.set_epoch(3)
            assert len(list(fresh)) == len(fresh)


def test_fewer_utterances_than_ranks_repeats_and_counts():
    ranks = [BatchSampler([100, 120], [3, 4], "example", 1, rank=r, world_size=3) for r in range(3)]
    assert [len(s) for s in ranks] == [1, 1, 1]
    assert ranks[0].repeated_batches == 1


def test_state_for_other_world_size_is_refused():
    state = samplers("example", 7, 2)[0].state_dict(consumed=3)
    with pytest.raises(ValueError, match="world_size 2 -> 1"):
        samplers("example", 7, 1)[0].load_state_dict(state)


def test_bad_batch_type_is_named():
    with pytest.raises(ValueError, match="batch_type"):
        BatchSampler([1], [1], "frames", 10)
