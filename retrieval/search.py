"""Search the index: dense (vectors), lexical (BM25), or hybrid by reciprocal rank fusion."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from retrieval.embeddings import Embedder
from retrieval.index import DocumentIndex

SEARCH_MODES = ("dense", "bm25", "hybrid")
DEFAULT_SEARCH_MODE = "bm25"
"""Chosen by measurement (bench/retrieval.py, docs/benchmarks.md): on the 472-question chunking
benchmark BM25 had the best MRR and recall@5/10 of the three, and p95 under 100 ms at 100k chunks."""
RRF_K = 60
"""The constant of reciprocal rank fusion (Cormack et al. 2009): 1 / (60 + rank)."""


@dataclass(frozen=True)
class ChunkHit:
    chunk_id: str
    doc_id: str
    source: str
    title: str
    page: int | None
    section: str
    start: int
    end: int
    text: str
    score: float
    """Cosine similarity (dense), BM25 score (bm25), or fused RRF score (hybrid)."""
    similarity: float | None = None
    """Cosine similarity to the query where known: what the "nothing relevant" threshold uses."""

    def to_dict(self) -> dict:
        return asdict(self)


def reciprocal_rank_fusion(rankings: Sequence[Sequence[str]], k: int = RRF_K) -> list[tuple[str, float]]:
    """Fuse ranked id lists: each id scores the sum of 1 / (k + rank) over the lists."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


def search(index: DocumentIndex, embedder: Embedder, query: str, k: int = 5,
           mode: str = DEFAULT_SEARCH_MODE, doc_ids: Sequence[str] | None = None,
           with_similarity: bool = False) -> list[ChunkHit]:
    """The ``k`` best chunks for ``query``, optionally only from ``doc_ids``.

    ``with_similarity`` fills every hit's cosine similarity to the query (from the stored
    vectors), which answering needs to tell a relevant passage from a merely lexical match.
    """
    if mode not in SEARCH_MODES:
        raise ValueError(f"unknown search mode {mode!r}; use one of {', '.join(SEARCH_MODES)}")
    if not query.strip() or k < 1:
        return []
    pool = max(4 * k, 20)  # fusion needs candidates beyond the final k from each side
    similarities: dict[str, float] = {}
    query_vector = embedder.encode([query])[0] if mode != "bm25" or with_similarity else None
    if mode in ("dense", "hybrid"):
        dense = index.dense_ids(query_vector, pool if mode == "hybrid" else k, doc_ids)
        similarities = dict(dense)
    if mode == "dense":
        ranked = dense
    elif mode == "bm25":
        ranked = index.lexical_ids(query, k, doc_ids)
    else:
        lexical = index.lexical_ids(query, pool, doc_ids)
        ranked = reciprocal_rank_fusion([[cid for cid, _ in dense], [cid for cid, _ in lexical]])
    ranked = ranked[:k]
    if with_similarity:
        missing = [cid for cid, _ in ranked if cid not in similarities]
        for cid, vector in index.vectors_by_id(missing).items():
            similarities[cid] = float(sum(a * b for a, b in zip(vector, query_vector, strict=True)))
    chunks = index.chunks_by_id([cid for cid, _ in ranked])
    hits = []
    for cid, score in ranked:
        chunk = chunks.get(cid)
        if chunk is None:  # a vector whose chunk row is gone: skip rather than cite nothing
            continue
        hits.append(ChunkHit(cid, chunk.doc_id, chunk.source, chunk.title, chunk.page, chunk.section,
                             chunk.start, chunk.end, chunk.text, float(score), similarities.get(cid)))
    return hits
