"""Split a document into chunks that fit the embedding model and follow its headings.

all-MiniLM-L6-v2 reads at most 256 word pieces and silently drops the rest, so a chunk is
measured with the embedding model's own tokenizer (a counting function passed in) and kept
under ``max_tokens``. A chunk never crosses a section (heading) boundary or a page; within a
section, paragraphs are packed greedily, and a paragraph too long on its own is split at
sentences, then at words. Each chunk's text is exactly ``document.text[start:end]``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from retrieval.documents import Document

TokenCounter = Callable[[list[str]], list[int]]


@dataclass(frozen=True)
class ChunkingConfig:
    max_tokens: int = 200
    """Word pieces per chunk; below the model's 256 to leave room for special tokens."""
    overlap_tokens: int = 32
    """Word pieces repeated from the end of one chunk at the start of the next."""

    def __post_init__(self) -> None:
        if self.max_tokens < 16:
            raise ValueError("max_tokens must be at least 16")
        if not 0 <= self.overlap_tokens < self.max_tokens // 2:
            raise ValueError("overlap_tokens must be between 0 and half of max_tokens")


@dataclass(frozen=True)
class Chunk:
    chunk_id: str
    doc_id: str
    source: str
    title: str
    index: int
    start: int
    end: int
    text: str
    page: int | None = None
    section: str = ""


_APPROXIMATE_PIECE = re.compile(r"\w{1,6}|[^\w\s]")


def approximate_token_counter(texts: list[str]) -> list[int]:
    """Word pieces guessed as runs of up to 6 word characters and single punctuation marks.

    Like a WordPiece tokenizer it is additive over whitespace, which the packing relies on.
    For tests and for when no tokenizer is at hand.
    """
    return [len(_APPROXIMATE_PIECE.findall(t)) for t in texts]


_PARAGRAPH = re.compile(r"\n\s*\n")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[A-Z0-9])")
_WORD = re.compile(r"\s+")
MAX_WORD_CHARS = 256
"""Longer runs without a space (a base64 blob, a file of one long line) are cut every 256 characters."""


def _pieces(text: str, start: int, end: int, pattern: re.Pattern) -> list[tuple[int, int]]:
    """Sub-spans of text[start:end] between matches of ``pattern``, whitespace trimmed."""
    spans, cursor = [], start
    for match in pattern.finditer(text, start, end):
        spans.append((cursor, match.start()))
        cursor = match.end()
    spans.append((cursor, end))
    trimmed = []
    for s, e in spans:
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if s < e:
            trimmed.append((s, e))
    return trimmed


def _units(text: str, start: int, end: int, count: TokenCounter, limit: int,
           level: int = 0) -> list[tuple[int, int, int]]:
    """(start, end, tokens) units of at most ``limit`` tokens: paragraphs; a paragraph too long
    is split at sentences, and a sentence too long into word windows."""
    splitters = (_PARAGRAPH, _SENTENCE)
    if level == len(splitters):
        return _word_windows(text, start, end, count, limit)
    spans = _pieces(text, start, end, splitters[level])
    sizes = count([text[s:e] for s, e in spans])
    units = []
    for (s, e), size in zip(spans, sizes, strict=True):
        units.extend([(s, e, size)] if size <= limit else _units(text, s, e, count, limit, level + 1))
    return units


def _word_windows(text: str, start: int, end: int, count: TokenCounter, limit: int) -> list[tuple[int, int, int]]:
    """A run-on sentence cut into word windows of at most ``limit`` tokens."""
    words = []
    for s, e in _pieces(text, start, end, _WORD):  # a "word" of thousands of characters is cut up too
        words.extend((a, min(a + MAX_WORD_CHARS, e)) for a in range(s, e, MAX_WORD_CHARS))
    sizes = count([text[s:e] for s, e in words])
    windows, first, total = [], 0, 0
    for i, size in enumerate(sizes):
        if total + size > limit and i > first:
            windows.append((words[first][0], words[i - 1][1], total))
            first, total = i, 0
        total += size
    windows.append((words[first][0], words[-1][1], total))
    return windows


def _regions(document: Document) -> list[tuple[int, int]]:
    """Stretches a chunk may not cross: the intersections of sections and pages."""
    cuts = {0, len(document.text)}
    for span in document.sections + document.pages:
        cuts.update((min(span.start, len(document.text)), min(span.end, len(document.text))))
    ordered = sorted(cuts)
    return [(a, b) for a, b in zip(ordered, ordered[1:], strict=False) if b > a]


def chunk_document(document: Document, count: TokenCounter = approximate_token_counter,
                   config: ChunkingConfig | None = None) -> list[Chunk]:
    config = config or ChunkingConfig()
    text, chunks = document.text, []
    for region_start, region_end in _regions(document):
        units = _units(text, region_start, region_end, count, config.max_tokens)
        i = 0
        while i < len(units):
            j, total = i, 0
            while j < len(units) and (total + units[j][2] <= config.max_tokens or j == i):
                total += units[j][2]
                j += 1
            start, end = units[i][0], units[j - 1][1]
            chunks.append(Chunk(
                chunk_id=f"{document.doc_id}:{len(chunks)}", doc_id=document.doc_id,
                source=document.source, title=document.title, index=len(chunks), start=start, end=end,
                text=text[start:end], page=document.page_at(start), section=document.section_at(start)))
            if j >= len(units):
                break
            # Step back over whole units worth at most overlap_tokens, never to where we began.
            back, carried = j, 0
            while back - 1 > i and carried + units[back - 1][2] <= config.overlap_tokens:
                back -= 1
                carried += units[back][2]
            i = back
    return chunks
