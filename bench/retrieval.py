"""Retrieval benchmark: quality of dense, BM25 and hybrid search, ingest speed, query latency.

    .venv/bin/python bench/retrieval.py                  # everything, writes bench/results/retrieval.json
    .venv/bin/python bench/retrieval.py --skip-scale     # quality and ingest only

Quality: the chunking-evaluation set in bench/data/public/retrieval/chroma_chunking_eval (5 corpora,
472 questions with gold character spans). A hit is a chunk from the gold corpus whose span
overlaps a gold span. Scale: the index is filled to 10k and 100k chunks (real corpus text,
random unit vectors, so only latency is measured) and timed on the full search path
(query embedding + Chroma + SQLite FTS5 + chunk fetch).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT / "bench" / "data" / "public" / "retrieval" / "chroma_chunking_eval"

from retrieval.embeddings import Embedder  # noqa: E402
from retrieval.evaluate import RetrievedChunk, read_questions, score_retrieval  # noqa: E402
from retrieval.index import ChromaSettings, DocumentIndex  # noqa: E402
from retrieval.ingest import ingest_paths  # noqa: E402
from retrieval.search import SEARCH_MODES, search  # noqa: E402


def machine() -> dict:
    import os

    import chromadb
    import sentence_transformers
    import torch

    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "python": platform.python_version(), "torch": torch.__version__, "chromadb": chromadb.__version__,
            "sentence_transformers": sentence_transformers.__version__}


def quality(workdir: Path, embedder: Embedder) -> dict:
    index = DocumentIndex(workdir / "q.sqlite", ChromaSettings(path=workdir / "q-chroma"))
    corpora = sorted((DATA / "corpora").glob("*.md"))
    started = time.perf_counter()
    results = ingest_paths(index, embedder, corpora)
    seconds = time.perf_counter() - started
    chunks = sum(r.chunks for r in results)
    golds = read_questions(str(DATA / "questions_df.csv"))
    report = {"corpora": len(corpora), "questions": len(golds), "chunks": chunks,
              "ingest_seconds": round(seconds, 1), "ingest_chunks_per_s": round(chunks / seconds, 1)}
    for mode in SEARCH_MODES:
        retrieved = [[RetrievedChunk(h.source, h.start, h.end, h.text)
                      for h in search(index, embedder, g.question, 10, mode)]
                     for g in golds]
        report[mode] = score_retrieval(retrieved, golds, (1, 5, 10)).to_dict()
        print(mode, report[mode], flush=True)
    index.close()
    return report


def latency_at(workdir: Path, embedder: Embedder, sizes: list[int], queries: int = 200) -> dict:
    import numpy as np

    from retrieval.chunking import Chunk

    text = " ".join(p.read_text() for p in sorted((DATA / "corpora").glob("*.md")))
    words = text.split()
    golds = read_questions(str(DATA / "questions_df.csv"))
    rng = random.Random(0)
    np_rng = np.random.default_rng(0)
    index = DocumentIndex(workdir / "s.sqlite", ChromaSettings(path=workdir / "s-chroma"))
    report, filled, doc = {}, 0, 0
    for size in sizes:
        started = time.perf_counter()
        while filled < size:
            batch = min(5000, size - filled)
            chunks = []
            for i in range(batch):
                at = rng.randrange(0, len(words) - 150)
                body = " ".join(words[at:at + 150])
                chunks.append(Chunk(f"synthetic{doc}:{i}", f"synthetic{doc}", f"synthetic{doc}.md", "", i, 0,
                                    len(body), body))
            vectors = np_rng.standard_normal((batch, embedder.dimension)).astype("float32")
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            index.add(f"synthetic{doc}", f"synthetic{doc}.md", "", "text", 0, chunks, vectors)
            filled += batch
            doc += 1
        fill_seconds = time.perf_counter() - started
        per_mode = {}
        for mode in SEARCH_MODES:
            timings = []
            for gold in golds[:queries]:
                t0 = time.perf_counter()
                search(index, embedder, gold.question, 5, mode)
                timings.append((time.perf_counter() - t0) * 1000)
            timings.sort()
            per_mode[mode] = {"p50_ms": round(statistics.median(timings), 1),
                              "p95_ms": round(timings[int(0.95 * len(timings)) - 1], 1)}
        report[str(size)] = {"chunks": index.chunk_count(), "fill_seconds": round(fill_seconds, 1), **per_mode}
        print(size, report[str(size)], flush=True)
    index.close()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--skip-quality", action="store_true",
                        help="latency only (quality: bench/retrieval_quality.py)")
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "retrieval.json"))
    args = parser.parse_args()
    embedder = Embedder()
    embedder.encode(["warm up"])
    with tempfile.TemporaryDirectory() as tmp:
        result = {"machine": machine()}
        if not args.skip_quality:
            result["quality"] = quality(Path(tmp), embedder)
        if not args.skip_scale:
            result["latency"] = latency_at(Path(tmp), embedder, [int(s) for s in args.sizes.split(",")])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
