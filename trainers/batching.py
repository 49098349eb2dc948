"""Batches of examples of similar length, in a random order: little padding, no fixed curriculum.

Why: real example sets mix short and long examples (a 60-token request beside a 900-token
tool-calling chat). A random batch is padded to its longest member, so most of what a CPU or GPU
computes is padding. transformers' LengthGroupedSampler sorts within megabatches of about four
batches, which on a few hundred examples still leaves most batches with one long member. Here the
whole epoch is sorted by length (with a little random jitter, so the same examples do not always
share a batch), cut into batches, and the batches shuffled: each batch is nearly padding-free and
the order of lengths through the epoch stays random. The examples, steps and batch size are the
same as with random batches; only which examples share a batch changes.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence


def length_batches(lengths: Sequence[int], batch_size: int, seed: int, jitter: float = 0.1) -> list[list[int]]:
    """Index batches: sorted by jittered length, cut, shuffled (deterministic for ``seed``)."""
    rng = random.Random(seed)
    keys = [length * rng.uniform(1 - jitter, 1 + jitter) for length in lengths]
    order = sorted(range(len(lengths)), key=keys.__getitem__)
    batches = [order[start:start + batch_size] for start in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


def largest_batch_length(longest: int, max_length: int, packing: bool = False) -> int:
    """The padded length of the job's largest training batch, from its longest example's tokens.

    Every batch is padded to its longest member and cut at ``max_length``, so the batch that holds
    the longest example is padded to it, whether the batches are length-grouped or random: that
    step sets the memory peak. The longest example (the report's ``tokens.max``) is the right
    statistic, not the 95th percentile: the peak is one step's, and the step holding the longest
    example comes in every epoch. ``batch_size`` rows of this length bound the largest batch from
    above; length grouping keeps the bound close, as it fills that batch with the next-longest
    examples. With packing every row is ``max_length``.
    """
    return max_length if packing else max(1, min(longest, max_length))


def padding_share(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> float:
    """The share of a padded epoch that is padding (each batch padded to its longest member)."""
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches if b)
    return 1 - sum(lengths) / padded if padded else 0.0


class LengthBatchSampler:
    """A torch Sampler yielding :func:`length_batches` flattened; a new shuffle each epoch."""

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int = 0):
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        for batch in length_batches(self.lengths, self.batch_size, self.seed + self.epoch):
            yield from batch

    def __len__(self) -> int:
        return len(self.lengths)
