"""Search the index: dense (vectors), lexical (BM25), or hybrid (weighted or reciprocal rank fusion),
with an optional rerank of the top candidates."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from retrieval.embeddings import Embedder
from retrieval.index import DEFAULT_HEADING_WEIGHT, DocumentIndex
from retrieval.rerank import RERANK_CANDIDATES, Reranker, min_max
from tunewise.errors import InputError

SEARCH_MODES = ("dense", "bm25", "hybrid")
DEFAULT_SEARCH_MODE = "hybrid"
"""Chosen by measurement on both benchmarks (bench/retrieval_quality.py, docs/benchmarks.md): on the
manuals set, whose questions are mostly paraphrased, hybrid beats BM25 by 19 points of recall@5
(0.63 vs 0.44); on the shared set, written from the passages' own words, it trails BM25 by 3
(0.90 vs 0.93). Weighted hybrid has the best MRR averaged over the two sets."""
RRF_K = 60
"""The constant of reciprocal rank fusion (Cormack et al. 2009): 1 / (60 + rank)."""
FUSIONS = ("weighted", "rrf")
DEFAULT_FUSION = "weighted"
DEFAULT_DENSE_WEIGHT = 0.5
"""Share of the dense side in weighted fusion. Measured from 0.2 to 0.7: more weight on dense helps
the paraphrased manuals set up to 0.6 and costs the shared set from 0.3 on; 0.5 has the best MRR
averaged over both (docs/benchmarks.md)."""
FUSION_CANDIDATES = 40
"""Candidates taken from each side before fusing: with 20, the manuals set's recall@5 fell from
0.63 to 0.60 (a passage ranked 25th by one side and 3rd by the other never met)."""


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
    """Cosine similarity (dense), BM25 score (bm25), fused score (hybrid), or the reranker's score."""
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


def weighted_fusion(dense: Sequence[tuple[str, float]], lexical: Sequence[tuple[str, float]],
                    dense_weight: float = DEFAULT_DENSE_WEIGHT) -> list[tuple[str, float]]:
    """Convex combination of the two lists' scores, each min-max scaled within its list; an id
    missing from a list scores 0 there. Unlike RRF it keeps how far apart the scores are, so one
    side's clear winner is not levelled with the other side's weak first place."""
    fused: dict[str, float] = {}
    for ranking, weight in ((dense, dense_weight), (lexical, 1.0 - dense_weight)):
        for (item, _), scaled in zip(ranking, min_max([score for _, score in ranking]), strict=True):
            fused[item] = fused.get(item, 0.0) + weight * scaled
    return sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))


def rescored(query: str, ranked: list[tuple[str, float]], chunks: dict, reranker: Reranker) -> list[tuple[str, float]]:
    """The candidates ordered by the reranker's score plus ``first_stage_weight`` times the first
    stage's (both min-max scaled)."""
    present = [(cid, score) for cid, score in ranked if cid in chunks]
    if not present:
        return []
    second = min_max(reranker.scores(query, [chunks[cid] for cid, _ in present]))
    first = min_max([score for _, score in present])
    weight = getattr(reranker, "first_stage_weight", 0.0)
    combined = [(cid, b + weight * a) for (cid, _), a, b in zip(present, first, second, strict=True)]
    return sorted(combined, key=lambda kv: -kv[1])


def search(index: DocumentIndex, embedder: Embedder, query: str, k: int = 5,
           mode: str = DEFAULT_SEARCH_MODE, doc_ids: Sequence[str] | None = None,
           with_similarity: bool = False, *, fusion: str = DEFAULT_FUSION,
           dense_weight: float = DEFAULT_DENSE_WEIGHT, heading_weight: float = DEFAULT_HEADING_WEIGHT,
           reranker: Reranker | None = None, rerank_candidates: int = RERANK_CANDIDATES) -> list[ChunkHit]:
    """The ``k`` best chunks for ``query``, optionally only from ``doc_ids``.

    ``with_similarity`` fills every hit's cosine similarity to the query (from the stored
    vectors), which answering needs to tell a relevant passage from a merely lexical match.
    ``reranker`` re-scores the first stage's top ``rerank_candidates`` before the cut to ``k``.
    """
    if mode not in SEARCH_MODES:
        raise InputError(f"unknown search mode {mode!r}; use one of {', '.join(SEARCH_MODES)}")
    if fusion not in FUSIONS:
        raise InputError(f"unknown fusion {fusion!r}; use one of {', '.join(FUSIONS)}")
    if not query.strip() or k < 1:
        return []
    wanted = max(k, rerank_candidates) if reranker is not None else k
    pool = max(4 * wanted, FUSION_CANDIDATES)  # fusion needs candidates beyond the final cut from each side
    similarities: dict[str, float] = {}
    query_vector = embedder.encode([query])[0] if mode != "bm25" or with_similarity else None
    if mode in ("dense", "hybrid"):
        dense = index.dense_ids(query_vector, pool if mode == "hybrid" else wanted, doc_ids)
        similarities = dict(dense)
    if mode == "dense":
        ranked = dense
    elif mode == "bm25":
        ranked = index.lexical_ids(query, wanted, doc_ids, heading_weight)
    else:
        lexical = index.lexical_ids(query, pool, doc_ids, heading_weight)
        ranked = (weighted_fusion(dense, lexical, dense_weight) if fusion == "weighted"
                  else reciprocal_rank_fusion([[cid for cid, _ in dense], [cid for cid, _ in lexical]]))
    ranked = ranked[:wanted]
    chunks = index.chunks_by_id([cid for cid, _ in ranked])
    if reranker is not None:
        ranked = rescored(query, ranked, chunks, reranker)
    ranked = ranked[:k]
    if with_similarity:
        missing = [cid for cid, _ in ranked if cid not in similarities]
        for cid, vector in index.vectors_by_id(missing).items():
            similarities[cid] = float(sum(a * b for a, b in zip(vector, query_vector, strict=True)))
    hits = []
    for cid, score in ranked:
        chunk = chunks.get(cid)
        if chunk is None:  # a vector whose chunk row is gone: skip rather than cite nothing
            continue
        hits.append(ChunkHit(cid, chunk.doc_id, chunk.source, chunk.title, chunk.page, chunk.section,
                             chunk.start, chunk.end, chunk.text, float(score), similarities.get(cid)))
    return hits
