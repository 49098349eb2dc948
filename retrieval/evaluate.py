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


def read_questions(path: str) -> list[GoldAnswer]:
    """Questions with gold answers, from either of two formats.

    * CSV with columns ``question``, ``references`` (a JSON list of objects with
      ``start_index`` and ``end_index``) and ``corpus_id`` (the gold file's stem), as in the
      chunking-evaluation data set;
    * JSONL with ``question``, ``source`` (file name) and optional ``spans`` ([[start, end], ...]).
    """
    import csv
    import json

    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    golds = []
    if path.lower().endswith(".csv"):
        for line, row in enumerate(csv.DictReader(text.splitlines()), start=2):
            try:
                references = json.loads(row.get("references") or "[]")
                spans = tuple((int(r["start_index"]), int(r["end_index"])) for r in references)
                golds.append(GoldAnswer(row["question"], row["corpus_id"], spans))
            except (KeyError, TypeError, ValueError) as error:
                raise ValueError(f"line {line}: expected question, references, corpus_id ({error})") from error
    else:
        for line, raw in enumerate(text.splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
                spans = tuple((int(s), int(e)) for s, e in record.get("spans", ()))
                golds.append(GoldAnswer(record["question"], record["source"], spans))
            except (KeyError, TypeError, ValueError) as error:
                raise ValueError(f"line {line}: expected question, source, spans ({error})") from error
    if not golds:
        raise ValueError("no questions found")
    return golds
