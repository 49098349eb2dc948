"""Second-stage rerankers: re-score the first stage's top candidates with a closer look.

Two kinds, one shape (``scores(query, chunks) -> list[float]``, higher is better):

* :class:`CrossEncoderReranker`, a sentence-transformers ``CrossEncoder`` (hub id or local
  folder) reading query and passage together; the kind BEIR measured adding 11-22 nDCG points
  over BM25. Its weights are a download this product does not ship.
* :class:`SentenceReranker`, which needs no new weights: the embedding model compares the query
  with each sentence of a candidate (and the candidate's heading path), so one sentence that
  answers the question is not averaged away by the rest of a long chunk. Its score is added to the
  first stage's normalised score (``first_stage_weight``), since the sentence view alone loses what
  the chunk as a whole says.

Whether either helps, and what it costs per query, is measured in bench/retrieval_quality.py.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

from retrieval.chunking import CONTEXT_CHARS, Chunk
from tunewise.errors import InputError

RERANK_CANDIDATES = 20
"""How many first-stage hits a reranker re-scores."""
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n\s*\n")
MIN_SENTENCE_CHARS = 24
"""Shorter pieces ("Note:", a bare heading) are joined to the next one before scoring."""


class Reranker(Protocol):
    name: str
    first_stage_weight: float
    """How much of the first stage's (min-max scaled) score is added to the reranker's."""

    def scores(self, query: str, chunks: Sequence[Chunk]) -> list[float]:
        """One relevance score per chunk, higher is better."""


class CrossEncoderReranker:
    """A sentence-transformers CrossEncoder over (query, heading path + passage) pairs."""

    def __init__(self, model: str, device: str | None = None, max_length: int = 512, batch_size: int = 32):
        import os

        if os.path.isdir(model):
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import CrossEncoder

        try:
            self.model = CrossEncoder(model, device=device, max_length=max_length)
        except (OSError, ValueError) as error:
            raise InputError(f"cannot load the reranker {model!r}: give a local folder or a cached "
                             f"cross-encoder id ({str(error).splitlines()[0]})") from error
        self.name = f"cross-encoder:{model}"
        self.batch_size = batch_size
        self.first_stage_weight = 0.0

    def scores(self, query: str, chunks: Sequence[Chunk]) -> list[float]:
        if not chunks:
            return []
        pairs = [(query, chunk.embedding_text()) for chunk in chunks]
        return [float(s) for s in self.model.predict(pairs, batch_size=self.batch_size, show_progress_bar=False)]


def sentences(text: str) -> list[str]:
    """The text cut at sentence ends and blank lines, short pieces joined to the next."""
    out, pending = [], ""
    for piece in _SENTENCE.split(text):
        piece = " ".join(piece.split())
        if not piece:
            continue
        pending = f"{pending} {piece}".strip()
        if len(pending) >= MIN_SENTENCE_CHARS:
            out.append(pending)
            pending = ""
    if pending:
        out.append(pending)
    return out or [" ".join(text.split())]


class SentenceReranker:
    """Best sentence similarity under the embedding model, each sentence read with its heading path.

    A chunk's sentence vectors are kept (up to ``cache_chunks`` chunks, least recently used out), so a
    passage is split and embedded once however often it comes back as a candidate: embedding up to
    480 sentences is what a query costs the first time (about 3 s on two CPU cores).
    """

    name = "sentences"

    def __init__(self, embedder, max_sentences: int = 24, first_stage_weight: float = 1.0,
                 cache_chunks: int = 8192):
        self.embedder = embedder
        self.max_sentences = max_sentences
        self.first_stage_weight = first_stage_weight
        self.cache_chunks = cache_chunks
        self._vectors: OrderedDict[tuple[str, str], object] = OrderedDict()

    def _sentence_vectors(self, chunks: Sequence[Chunk]) -> list:
        keys = [(chunk.chunk_id, chunk.text) for chunk in chunks]
        missing = [(key, chunk) for key, chunk in zip(keys, chunks, strict=True) if key not in self._vectors]
        texts, owners = [], []
        for number, (_, chunk) in enumerate(missing):
            context = chunk.context[:CONTEXT_CHARS]
            for sentence in sentences(chunk.text)[:self.max_sentences]:
                texts.append(f"{context}: {sentence}" if context else sentence)
                owners.append(number)
        if texts:
            vectors = self.embedder.encode(texts)
            for number, (key, _) in enumerate(missing):
                self._vectors[key] = vectors[[i for i, owner in enumerate(owners) if owner == number]]
        found = [self._vectors[key] for key in keys]
        for key in keys:
            self._vectors.move_to_end(key)
        while len(self._vectors) > self.cache_chunks:
            self._vectors.popitem(last=False)
        return found

    def scores(self, query: str, chunks: Sequence[Chunk]) -> list[float]:
        if not chunks:
            return []
        query_vector = self.embedder.encode([query])[0]
        return [float((vectors @ query_vector).max()) if len(vectors) else -1.0
                for vectors in self._sentence_vectors(chunks)]


def make_reranker(name: str, embedder) -> Reranker:
    """"sentences" for the no-new-weights reranker, anything else a CrossEncoder id or folder."""
    if name == SentenceReranker.name:
        return SentenceReranker(embedder)
    return CrossEncoderReranker(name)


def min_max(values: Sequence[float]) -> list[float]:
    """Scores scaled to [0, 1] within one result list (all equal: all 1)."""
    if not values:
        return []
    low, high = min(values), max(values)
    return [1.0 if high == low else (v - low) / (high - low) for v in values]
