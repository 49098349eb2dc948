"""Split a document into chunks that fit the embedding model and follow its headings.

all-MiniLM-L6-v2 reads at most 256 word pieces and silently drops the rest, so a chunk is
measured with the embedding model's own tokenizer (a counting function passed in) and kept
under ``max_tokens``. A chunk never crosses a section (heading) boundary or a page, except that
a section too small to stand alone joins the next. Within a section, whole sentences are packed
greedily, ending at a paragraph break where one fills the chunk well enough; a sentence too long
on its own is split at lines, then at words. Tails too small to stand alone take the sentences
before them. Each chunk's text is exactly ``document.text[start:end]``; its title and heading
path (``Chunk.context``) are indexed beside it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from retrieval.documents import Document
from tunewise.errors import InputError

TokenCounter = Callable[[list[str]], list[int]]
CONTEXT_CHARS = 160
"""A heading path longer than this is cut before embedding: about 40 word pieces, which with a
200-piece chunk stays under the model's 256."""


@dataclass(frozen=True)
class ChunkingConfig:
    max_tokens: int = 200
    """Word pieces per chunk; below the model's 256 to leave room for special tokens."""
    overlap_tokens: int = 32
    """Word pieces of whole sentences repeated from the end of one chunk at the start of the next."""
    min_tokens: int | None = None
    """Smallest chunk worth indexing alone (default a quarter of ``max_tokens``): a shorter section
    joins the next one, and a shorter tail takes the sentences before it."""
    embed_context: bool = True
    """Embed each chunk with its document title and heading path in front (``Chunk.context``)."""

    def __post_init__(self) -> None:
        if self.max_tokens < 16:
            raise InputError("max_tokens must be at least 16")
        if not 0 <= self.overlap_tokens < self.max_tokens // 2:
            raise InputError("overlap_tokens must be between 0 and half of max_tokens")
        if self.min_tokens is not None and not 0 <= self.min_tokens <= self.max_tokens // 2:
            raise InputError("min_tokens must be between 0 and half of max_tokens")

    @property
    def minimum_tokens(self) -> int:
        return self.max_tokens // 4 if self.min_tokens is None else self.min_tokens


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

    @property
    def context(self) -> str:
        """Where the chunk sits: the document title and heading path ("Valgrind > Memcheck >
        Options"), the title left out when the path already starts with it. Indexed with the
        chunk (BM25's heading field, and in front of the embedded text) because a passage rarely
        repeats the name of what it describes."""
        if not self.section:
            return self.title
        if not self.title or self.section.split(" > ", 1)[0].strip().casefold() == self.title.strip().casefold():
            return self.section
        return f"{self.title} > {self.section}"

    def embedding_text(self, with_context: bool = True) -> str:
        """The text given to the embedding model: the context (at most ``CONTEXT_CHARS``) then the chunk."""
        context = self.context[:CONTEXT_CHARS] if with_context else ""
        return f"{context}\n\n{self.text}" if context else self.text


_APPROXIMATE_PIECE = re.compile(r"\w{1,6}|[^\w\s]")


def approximate_token_counter(texts: list[str]) -> list[int]:
    """Word pieces guessed as runs of up to 6 word characters and single punctuation marks.

    Like a WordPiece tokenizer it is additive over whitespace, which the packing relies on.
    For tests and for when no tokenizer is at hand.
    """
    return [len(_APPROXIMATE_PIECE.findall(t)) for t in texts]


_PARAGRAPH = re.compile(r"\n\s*\n")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[A-Z0-9])")
_LINE = re.compile(r"\n")
_WORD = re.compile(r"\s+")
MAX_WORD_CHARS = 256
"""Longer runs without a space (a base64 blob, a file of one long line) are cut every 256 characters."""
PARAGRAPH_CUT_FILL = 0.5
"""A chunk ends at a paragraph break rather than mid-paragraph when that still fills half of it."""


@dataclass(frozen=True)
class _Unit:
    """A sentence (or a window of a sentence too long): the smallest thing a chunk holds whole."""

    start: int
    end: int
    tokens: int
    opens_paragraph: bool


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


def _fitting(text: str, spans: list[tuple[int, int]], count: TokenCounter, limit: int,
             finer: list[re.Pattern]) -> list[tuple[int, int, int]]:
    """(start, end, tokens) of each span, those over ``limit`` split by the next finer pattern
    (sentences, then lines), and at last into word windows."""
    sizes = count([text[s:e] for s, e in spans])
    out = []
    for (s, e), size in zip(spans, sizes, strict=True):
        if size <= limit:
            out.append((s, e, size))
        elif finer:
            out.extend(_fitting(text, _pieces(text, s, e, finer[0]), count, limit, finer[1:]))
        else:
            out.extend(_word_windows(text, s, e, count, limit))
    return out


def _units(text: str, start: int, end: int, count: TokenCounter, limit: int) -> list[_Unit]:
    """The region's sentences, each marked when it opens a paragraph. Chunks are cut between
    sentences, so on sentence-level text an answer is never split; overlap repeats whole sentences."""
    units = []
    for p_start, p_end in _pieces(text, start, end, _PARAGRAPH):
        sentences = _fitting(text, _pieces(text, p_start, p_end, _SENTENCE), count, limit, [_LINE])
        units.extend(_Unit(s, e, n, i == 0) for i, (s, e, n) in enumerate(sentences))
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


def _region_units(document: Document, count: TokenCounter, config: ChunkingConfig) -> list[list[_Unit]]:
    """Each region's units; a region under ``min_tokens`` (a heading with nothing under it yet,
    a page holding one line) is joined to the next instead of becoming a chunk of its own."""
    groups: list[list[_Unit]] = []
    pending: list[_Unit] = []
    for start, end in _regions(document):
        units = _units(document.text, start, end, count, config.max_tokens)
        if not units:
            continue
        if pending:
            units[0] = _Unit(units[0].start, units[0].end, units[0].tokens, True)
        pending = pending + units
        if sum(u.tokens for u in pending) >= config.minimum_tokens:
            groups.append(pending)
            pending = []
    if pending:
        if groups and sum(u.tokens for u in groups[-1]) + sum(u.tokens for u in pending) <= config.max_tokens:
            groups[-1] = groups[-1] + pending
        else:
            groups.append(pending)
    return groups


def _spans_of(units: list[_Unit], config: ChunkingConfig) -> list[tuple[int, int]]:
    """Pack one region's units into chunks: (first unit, end unit) index pairs.

    Greedy up to ``max_tokens``, ending at a paragraph break when one still fills half the chunk;
    each chunk after the first starts ``overlap_tokens`` of whole sentences back; a last chunk
    under ``minimum_tokens`` (an orphan tail) starts earlier instead, taking the sentences before
    it, so it carries its context rather than ranking as a fragment.
    """
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(units):
        j, total = i, 0
        while j < len(units) and (total + units[j].tokens <= config.max_tokens or j == i):
            total += units[j].tokens
            j += 1
        if j < len(units):
            filled = 0
            cut = None
            for m in range(i, j):
                if m > i and units[m].opens_paragraph and filled >= PARAGRAPH_CUT_FILL * config.max_tokens:
                    cut = m
                filled += units[m].tokens
            if cut is not None:
                j = cut
        elif spans and total < config.minimum_tokens:
            while i > 0 and total + units[i - 1].tokens <= config.max_tokens and total < config.minimum_tokens:
                i -= 1
                total += units[i].tokens
            while spans and spans[-1][0] >= i:  # the earlier chunk now lies inside this one
                spans.pop()
        spans.append((i, j))
        if j >= len(units):
            break
        back, carried = j, 0
        while back - 1 > i and carried + units[back - 1].tokens <= config.overlap_tokens:
            back -= 1
            carried += units[back].tokens
        i = back
    return spans


def chunk_document(document: Document, count: TokenCounter = approximate_token_counter,
                   config: ChunkingConfig | None = None) -> list[Chunk]:
    config = config or ChunkingConfig()
    text, chunks = document.text, []
    for units in _region_units(document, count, config):
        for first, stop in _spans_of(units, config):
            start, end = units[first].start, units[stop - 1].end
            chunks.append(Chunk(
                chunk_id=f"{document.doc_id}:{len(chunks)}", doc_id=document.doc_id,
                source=document.source, title=document.title, index=len(chunks), start=start, end=end,
                text=text[start:end], page=document.page_at(start), section=document.section_at(end - 1)))
    return chunks
