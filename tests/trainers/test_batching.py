"""Length batches: the same examples, far less padding, and a random order of batches."""

from trainers.batching import LengthBatchSampler, length_batches, padding_share

# 48 short examples and 16 long ones, interleaved as a data file would have them
LENGTHS = [60 + (i % 7) if i % 4 else 700 + 13 * (i % 11) for i in range(64)]


def test_every_example_is_in_exactly_one_batch_of_the_asked_size():
    batches = length_batches(LENGTHS, 8, seed=0)
    assert sorted(i for b in batches for i in b) == list(range(64))
    assert all(len(b) == 8 for b in batches)


def test_length_batches_carry_far_less_padding_than_random_ones():
    import random

    order = list(range(64))
    random.Random(0).shuffle(order)
    random_batches = [order[i:i + 8] for i in range(0, 64, 8)]
    assert padding_share(LENGTHS, random_batches) > 0.6  # nearly every random batch has a long member
    assert padding_share(LENGTHS, length_batches(LENGTHS, 8, seed=0)) < 0.1


def test_the_order_of_batches_changes_with_the_epoch_and_is_reproducible():
    sampler = LengthBatchSampler(LENGTHS, 8, seed=3)
    first = list(sampler)
    assert list(sampler) == first and len(sampler) == 64
    sampler.set_epoch(1)
    assert list(sampler) != first and sorted(sampler) == sorted(first)
    # long batches are not all at the start: the lengths through the epoch stay mixed
    starts = [LENGTHS[first[i]] > 500 for i in range(0, 64, 8)]
    assert starts != sorted(starts, reverse=True)
