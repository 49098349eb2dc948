"""How far two raters agree: percent agreement and Cohen's kappa (pure arithmetic).

Why kappa beside the percentage: when most pairs end one way, a rater that always says that
way agrees often by chance. Kappa subtracts what chance alone would give (from each rater's own
label frequencies): 1 is perfect, 0 is chance, below 0 is worse than chance.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Agreement:
    n: int
    agreed: int
    percent: float
    """Share of items both raters labelled the same, 0..100."""
    kappa: float | None
    """Cohen's kappa; None when it is undefined (no items, or both raters always gave one same label)."""


def agreement(first: Sequence[str], second: Sequence[str]) -> Agreement:
    """Percent agreement and Cohen's kappa of two raters over the same items."""
    if len(first) != len(second):
        raise ValueError("both raters must label the same items")
    n = len(first)
    if n == 0:
        return Agreement(0, 0, 0.0, None)
    agreed = sum(a == b for a, b in zip(first, second, strict=True))
    observed = agreed / n
    counts_first, counts_second = Counter(first), Counter(second)
    expected = sum(counts_first[label] * counts_second[label] for label in counts_first) / (n * n)
    kappa = None if expected == 1 else (observed - expected) / (1 - expected)
    return Agreement(n, agreed, round(100 * observed, 1), None if kappa is None else round(kappa, 3))
