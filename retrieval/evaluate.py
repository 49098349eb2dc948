"""Retrieval metrics over gold spans or gold documents: recall@k and MRR.

A retrieved chunk is relevant when it comes from the gold document and, where gold character
spans are given, its span overlaps one of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class GoldAnswer:
    question: str
    source: str
    """The gold document's file name (or its stem)."""
    spans: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class RetrievedChunk:
    source: str
    start: int
    end: int


@dataclass(frozen=True)
class RetrievalScores:
    questions: int
    recall_at: dict[int, float] = field(default_factory=dict)
    mrr: float = 0.0

    def to_dict(self) -> dict:
        return {"questions": self.questions, "mrr": round(self.mrr, 4),
                **{f"recall@{k}": round(v, 4) for k, v in sorted(self.recall_at.items())}}


def _same_source(a: str, b: str) -> bool:
    def stem(name: str) -> str:
        base = name.rsplit("/", 1)[-1]
        return base.rsplit(".", 1)[0] if "." in base else base

    return a == b or stem(a) == stem(b)


def is_relevant(chunk: RetrievedChunk, gold: GoldAnswer) -> bool:
    if not _same_source(chunk.source, gold.source):
        return False
    if not gold.spans:
        return True
    return any(chunk.start < end and start < chunk.end for start, end in gold.spans)


def score_retrieval(results: Sequence[Sequence[RetrievedChunk]], golds: Sequence[GoldAnswer],
                    ks: Sequence[int] = (1, 5, 10)) -> RetrievalScores:
    """Recall@k (a relevant chunk in the top k) and MRR (1 / rank of the first relevant one)."""
    if len(results) != len(golds):
        raise ValueError("one result list per question")
    if not golds:
        return RetrievalScores(0, {k: 0.0 for k in ks}, 0.0)
    hits_at = {k: 0 for k in ks}
    reciprocal = 0.0
    for retrieved, gold in zip(results, golds, strict=True):
        first = next((rank for rank, chunk in enumerate(retrieved, 1) if is_relevant(chunk, gold)), None)
        if first is not None:
            reciprocal += 1.0 / first
            for k in ks:
                hits_at[k] += first <= k
    n = len(golds)
    return RetrievalScores(n, {k: hits_at[k] / n for k in ks}, reciprocal / n)
