"""Answers grounded in retrieved chunks, citing them as [n].

The prompt building and the relevance decision are pure; generation goes through the runtime.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

NOTHING_FOUND = "I could not find this in your documents, so I will not guess."
MIN_SIMILARITY = 0.25
"""Cosine similarity below which a chunk is taken as unrelated to the question (all-MiniLM-L6-v2:
unrelated sentence pairs mostly score under 0.2)."""

SYSTEM_PROMPT = ("Answer the question using only the numbered context blocks. After each statement, cite "
                 "the block it comes from as [n]. If the blocks do not contain the answer, say that you "
                 "cannot find it in the documents.")


@dataclass(frozen=True)
class Source:
    number: int
    source: str
    page: int | None
    section: str
    snippet: str
    start: int
    end: int


@dataclass(frozen=True)
class CitedAnswer:
    text: str
    sources: tuple[Source, ...]
    grounded: bool
    """False when nothing relevant was found and the answer says so instead of guessing."""


def relevant_hits(hits: Sequence, min_similarity: float = MIN_SIMILARITY) -> list:
    """Hits worth showing the model: those with a known similarity at or above the bar.

    A hit found by BM25 alone has no similarity; it counts only when no dense score exists
    for any hit (a BM25-only search), where a lexical match is the only evidence there is.
    """
    scored = [h for h in hits if h.similarity is not None]
    if not scored:
        return list(hits)
    return [h for h in hits if h.similarity is not None and h.similarity >= min_similarity]


def sources_for(hits: Sequence) -> tuple[Source, ...]:
    return tuple(Source(i, h.source, h.page, h.section, " ".join(h.text.split())[:300], h.start, h.end)
                 for i, h in enumerate(hits, start=1))


def cited_messages(question: str, hits: Sequence) -> list[dict]:
    """The chat messages for a grounded answer: the context blocks, numbered, then the question."""
    blocks = []
    for i, hit in enumerate(hits, start=1):
        where = hit.source + (f", page {hit.page}" if hit.page else "") + (f", {hit.section}" if hit.section else "")
        blocks.append(f"[{i}] ({where})\n{hit.text.strip()}")
    context = "\n\n".join(blocks)
    return [{"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": f"Context:\n\n{context}\n\nQuestion: {question.strip()}"}]


def stream_cited_answer(loaded, question: str, hits: Sequence, generation=None) -> Iterator[CitedAnswer]:
    """Stream a cited answer; says so without calling the model when nothing is relevant."""
    from assistant.runtime import stream_chat

    useful = relevant_hits(hits)
    if not useful:
        yield CitedAnswer(NOTHING_FOUND, (), False)
        return
    sources = sources_for(useful)
    for text in stream_chat(loaded, cited_messages(question, useful), generation):
        yield CitedAnswer(text, sources, True)
