"""Retrieval metrics over gold spans or gold documents: recall@k, MRR, span-level recall,
precision and IoU, and answer recall.

A retrieved chunk is relevant when it comes from the gold document and, where gold character
spans are given, its span overlaps one of them. Recall@k only asks whether the passage was found;
the span metrics (Chroma's chunking-evaluation definitions, on character spans) also ask how much
of what was retrieved is the answer: recall = gold characters covered / gold characters,
precision = gold characters covered / characters retrieved, IoU = covered / (retrieved + gold -
covered), over the top ``span_k`` chunks. Answer recall@k: a question's short answer string
appears in one of the top k chunks' text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from tunewise.errors import InputError


@dataclass(frozen=True)
class GoldAnswer:
    question: str
    source: str
    """The gold document's file name (or its stem)."""
    spans: tuple[tuple[int, int], ...] = ()
    answer: str = ""
    """A short answer string, when the question has one (answer recall)."""
    quote: str = ""
    """A verbatim passage of the gold document that answers the question; turned into ``spans`` by
    :func:`with_quote_spans` once the document's text is known, so a questions file needs no offsets."""


@dataclass(frozen=True)
class RetrievedChunk:
    source: str
    start: int
    end: int
    text: str = ""


@dataclass(frozen=True)
class SpanScores:
    recall: float
    precision: float
    iou: float


@dataclass(frozen=True)
class RetrievalScores:
    questions: int
    recall_at: dict[int, float] = field(default_factory=dict)
    mrr: float = 0.0
    span: SpanScores | None = None
    """Means over the questions with gold spans, at ``span_k`` chunks."""
    span_k: int = 5
    answer_recall_at: dict[int, float] = field(default_factory=dict)
    """Over the questions with an answer string."""

    def to_dict(self) -> dict:
        out = {"questions": self.questions, "mrr": round(self.mrr, 4),
               **{f"recall@{k}": round(v, 4) for k, v in sorted(self.recall_at.items())}}
        if self.span is not None:
            out.update({f"span_recall@{self.span_k}": round(self.span.recall, 4),
                        f"span_precision@{self.span_k}": round(self.span.precision, 4),
                        f"span_iou@{self.span_k}": round(self.span.iou, 4)})
        out.update({f"answer_recall@{k}": round(v, 4) for k, v in sorted(self.answer_recall_at.items())})
        return out


def merged(ranges) -> list[tuple[int, int]]:
    """Overlapping or touching ranges joined, in order."""
    out: list[tuple[int, int]] = []
    for start, end in sorted(r for r in ranges if r[1] > r[0]):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _length(ranges) -> int:
    return sum(end - start for start, end in ranges)


def span_scores(retrieved: Sequence[RetrievedChunk], gold: GoldAnswer) -> SpanScores:
    """How much of the gold spans the chunks cover, and how much of the chunks is gold."""
    golds = merged(gold.spans)
    covered = merged((max(c.start, s), min(c.end, e)) for c in retrieved if _same_source(c.source, gold.source)
                     for s, e in golds if c.start < e and s < c.end)
    hit, gold_chars = _length(covered), _length(golds)
    retrieved_chars = sum(max(0, c.end - c.start) for c in retrieved)
    union = retrieved_chars + gold_chars - hit
    return SpanScores(hit / gold_chars if gold_chars else 0.0, hit / retrieved_chars if retrieved_chars else 0.0,
                      hit / union if union else 0.0)


def _normalised(text: str) -> str:
    return " ".join(text.casefold().split())


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
                    ks: Sequence[int] = (1, 5, 10), span_k: int = 5) -> RetrievalScores:
    """Recall@k (a relevant chunk in the top k), MRR (1 / rank of the first relevant one), the span
    metrics at ``span_k`` chunks, and answer recall@k where questions carry answers."""
    if len(results) != len(golds):
        raise ValueError("one result list per question")
    if not golds:
        return RetrievalScores(0, {k: 0.0 for k in ks}, 0.0)
    hits_at = {k: 0 for k in ks}
    answers_at = {k: 0 for k in ks}
    reciprocal = 0.0
    spans: list[SpanScores] = []
    for retrieved, gold in zip(results, golds, strict=True):
        first = next((rank for rank, chunk in enumerate(retrieved, 1) if is_relevant(chunk, gold)), None)
        if first is not None:
            reciprocal += 1.0 / first
            for k in ks:
                hits_at[k] += first <= k
        if gold.spans:
            spans.append(span_scores(retrieved[:span_k], gold))
        if gold.answer:
            wanted = _normalised(gold.answer)
            found = next((rank for rank, c in enumerate(retrieved, 1) if wanted in _normalised(c.text)), None)
            for k in ks:
                answers_at[k] += found is not None and found <= k
    n = len(golds)
    with_answers = sum(1 for g in golds if g.answer)
    mean_span = (SpanScores(*(sum(getattr(s, f) for s in spans) / len(spans) for f in ("recall", "precision", "iou")))
                 if spans else None)
    return RetrievalScores(n, {k: hits_at[k] / n for k in ks}, reciprocal / n, mean_span, span_k,
                           {k: answers_at[k] / with_answers for k in ks} if with_answers else {})


def locate_quote(text: str, quote: str) -> tuple[int, int] | None:
    """The character span of ``quote`` in ``text``, whitespace runs matching any whitespace run
    (extraction joins blocks with blank lines; a quote copied from a page has single spaces)."""
    words = quote.split()
    if not words:
        return None
    match = re.search(r"\s+".join(re.escape(w) for w in words), text)
    return (match.start(), match.end()) if match else None


def with_quote_spans(golds: Sequence[GoldAnswer], text_of) -> list[GoldAnswer]:
    """Questions whose ``quote`` is located in their document (``text_of(source)`` gives its
    text, or None) get that span as their gold span; a quote that is not found is an error, since
    scoring without it would count every chunk of the file as a hit."""
    out = []
    for number, gold in enumerate(golds, start=1):
        if not gold.quote or gold.spans:
            out.append(gold)
            continue
        text = text_of(gold.source)
        span = locate_quote(text, gold.quote) if text is not None else None
        if span is None:
            where = "is not indexed" if text is None else "does not contain the quote"
            raise InputError(f"question {number}: {gold.source} {where}: {gold.quote[:60]!r}")
        out.append(replace(gold, spans=(span,)))
    return out


def read_questions(path: str) -> list[GoldAnswer]:
    """Questions with gold answers, from either of two formats.

    * CSV with columns ``question``, ``references`` (a JSON list of objects with
      ``start_index`` and ``end_index``) and ``corpus_id`` (the gold file's stem), as in the
      chunking-evaluation data set;
    * JSONL with ``question``, ``source`` (file name), optional ``spans`` ([[start, end], ...]),
      optional ``quote`` (the passage's words, in place of spans) and optional ``answer`` (a short
      string the passage contains).
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
                raise InputError(f"line {line}: expected question, references, corpus_id ({error})") from error
    else:
        for line, raw in enumerate(text.splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
                spans = tuple((int(s), int(e)) for s, e in record.get("spans", ()))
                golds.append(GoldAnswer(record["question"], record["source"], spans, str(record.get("answer") or ""),
                                        str(record.get("quote") or "")))
            except (KeyError, TypeError, ValueError) as error:
                raise InputError(f"line {line}: expected question, source, spans ({error})") from error
    if not golds:
        raise InputError("no questions found")
    return golds
