"""Seeded train/eval splits and the optional mix of general instruction data."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from trainers.formats import Example
from tunewise.errors import InputError


@dataclass(frozen=True)
class Split:
    train: list[Example]
    eval: list[Example]


def split_examples(examples: Sequence[Example], eval_fraction: float = 0.1, seed: int = 0,
                   min_eval: int = 1) -> Split:
    """Shuffle with ``seed`` and hold out ``eval_fraction`` (at least ``min_eval``) for evaluation.

    Examples sharing a prompt go to the same side, so the split itself never leaks.
    """
    if not 0 < eval_fraction < 1:
        raise InputError("eval_fraction must be between 0 and 1")
    by_prompt: dict[str, list[Example]] = {}
    for example in examples:
        by_prompt.setdefault(example.prompt, []).append(example)
    groups = list(by_prompt.values())
    random.Random(seed).shuffle(groups)
    wanted = max(min_eval, round(eval_fraction * len(examples)))
    evaluation, train = [], []
    for group in groups:
        (evaluation if len(evaluation) < wanted else train).extend(group)
    if not train:
        raise InputError(f"{len(examples)} examples are too few to split; add more or give an eval file")
    return Split(train, evaluation)


def mix_general(train: Sequence[Example], general: Sequence[Example], fraction: float = 0.1,
                seed: int = 0) -> list[Example]:
    """Add general instruction examples so they make up about ``fraction`` of the result."""
    if not general or fraction <= 0:
        return list(train)
    if not 0 < fraction < 1:
        raise InputError("fraction must be between 0 and 1")
    wanted = round(len(train) * fraction / (1 - fraction))
    rng = random.Random(seed)
    chosen = rng.sample(list(general), min(wanted, len(general)))
    mixed = list(train) + chosen
    rng.shuffle(mixed)
    return mixed
