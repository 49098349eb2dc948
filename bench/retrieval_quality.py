"""Retrieval quality on two public benchmarks, per chunking, search mode, fusion and rerank.

    .venv/bin/python bench/retrieval_quality.py         # defaults; writes bench/results/retrieval_quality.json
    .venv/bin/python bench/retrieval_quality.py --chunking 150/32,200/32,250/64 --sweep
    .venv/bin/python bench/retrieval_quality.py --sets manuals --rerank sentences

The two sets:

* ``shared``: Chroma's chunking-evaluation data (bench/data/public/retrieval/chroma_chunking_eval):
  5 markdown corpora, 472 questions written from the passages (they share its words), gold
  character spans.
* ``manuals``: bench/data/manuals: real HTML manuals (Valgrind, Node.js) with navigation and
  near-duplicate pages, and questions a user would ask, most of them paraphrased; each question's
  gold passage is a verbatim quote, located in the text the loader extracts.

For every chunking setting each set is ingested once into a fresh index (parse, chunk, embed with
the bundled all-MiniLM-L6-v2, store in Chroma and SQLite), then every search setting is scored:
recall@1/5/10 and MRR (a chunk overlapping the gold span), span recall/IoU at 5 chunks (Chroma's
token-level metrics, on characters), answer recall, and mean query time. The script runs against
whatever version of the code it sits in, so the same file measures the code before a change
(checked out in a worktree) and after.
"""

from __future__ import annotations

import argparse
import inspect
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT / "bench" / "data" / "public" / "retrieval" / "chroma_chunking_eval"
MANUALS = ROOT / "bench" / "data" / "manuals"

from retrieval.chunking import ChunkingConfig  # noqa: E402
from retrieval.embeddings import Embedder  # noqa: E402
from retrieval.evaluate import GoldAnswer, RetrievedChunk, read_questions, score_retrieval  # noqa: E402
from retrieval.index import ChromaSettings, DocumentIndex  # noqa: E402
from retrieval.ingest import ingest_paths  # noqa: E402
from retrieval.loaders import load_bytes  # noqa: E402
from retrieval.search import search  # noqa: E402


def _located(text: str, quote: str) -> tuple[int, int] | None:
    import re

    match = re.search(r"\s+".join(re.escape(w) for w in quote.split()), text)
    return (match.start(), match.end()) if match else None


def load_set(name: str) -> tuple[list[Path], list[GoldAnswer], list[str]]:
    """Files, questions (gold spans in the loader's text) and each question's kind."""
    if name == "shared":
        golds = read_questions(str(SHARED / "questions_df.csv"))
        return sorted((SHARED / "corpora").glob("*.md")), golds, ["written from the passage"] * len(golds)
    files = sorted((MANUALS / "docs").iterdir())
    texts = {p.name: load_bytes(p.name, p.read_bytes()).text for p in files}
    golds, kinds = [], []
    for line in (MANUALS / "questions.jsonl").read_text().splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        span = _located(texts[record["source"]], record["quote"])
        if span is None:
            raise SystemExit(f"quote not found in {record['source']}: {record['quote'][:60]!r}")
        golds.append(GoldAnswer(record["question"], record["source"], (span,), record.get("answer", "")))
        kinds.append(record.get("kind", ""))
    return files, golds, kinds


def _supported(function, settings: dict) -> dict:
    """Only the settings this version of ``function`` takes (older code measures its defaults)."""
    names = inspect.signature(function).parameters
    return {key: value for key, value in settings.items() if key in names}


def search_settings(sweep: bool, rerankers: list[str]) -> list[tuple[str, dict]]:
    settings = [("bm25", {"mode": "bm25"}), ("dense", {"mode": "dense"}),
                ("hybrid rrf", {"mode": "hybrid", "fusion": "rrf"}),
                ("hybrid weighted 0.5", {"mode": "hybrid", "fusion": "weighted", "dense_weight": 0.5})]
    if sweep:
        settings += [(f"hybrid weighted {w}", {"mode": "hybrid", "fusion": "weighted", "dense_weight": w})
                     for w in (0.2, 0.3, 0.4, 0.6, 0.7)]
        settings += [(f"bm25 heading x{w}", {"mode": "bm25", "heading_weight": w}) for w in (0.0, 0.5, 2.0, 4.0)]
    for name in rerankers:
        for label, base in list(settings[:4]):
            settings.append((f"{label} + rerank {name}", {**base, "reranker": name}))
    return settings


def make_reranker(name: str, embedder: Embedder):
    """A fresh reranker (an empty sentence cache) per setting, so each setting's time starts cold;
    "sentences:W" sets the first stage's weight."""
    from retrieval.rerank import make_reranker as build

    reranker = build(name.split(":", 1)[0], embedder)
    if ":" in name:
        reranker.first_stage_weight = float(name.split(":", 1)[1])
    return reranker


def evaluate(index: DocumentIndex, embedder: Embedder, golds, kinds, settings: dict) -> dict:
    options = dict(settings)
    if "reranker" in options:
        options["reranker"] = make_reranker(options["reranker"], embedder)
    options = _supported(search, options)
    retrieved, seconds = [], []
    for gold in golds:
        started = time.perf_counter()
        hits = search(index, embedder, gold.question, 10, **options)
        seconds.append(time.perf_counter() - started)
        retrieved.append([RetrievedChunk(h.source, h.start, h.end, h.text) for h in hits])
    report = score_retrieval(retrieved, golds, (1, 5, 10)).to_dict()
    report["mean_query_ms"] = round(1000 * statistics.mean(seconds), 1)
    for kind in sorted(set(kinds)):
        chosen = [i for i, k in enumerate(kinds) if k == kind]
        if len(chosen) < len(kinds):
            part = score_retrieval([retrieved[i] for i in chosen], [golds[i] for i in chosen], (1, 5, 10))
            report[kind] = {"questions": len(chosen), "recall@5": round(part.recall_at[5], 4),
                            "mrr": round(part.mrr, 4)}
    return report


def chunk_stats(index: DocumentIndex) -> dict:
    lengths = [row[0] for row in index._db.execute("SELECT length(text) FROM chunks")]
    return {"chunks": len(lengths), "mean_chars": round(statistics.mean(lengths)),
            "under_150_chars": round(sum(1 for n in lengths if n < 150) / len(lengths), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="shared,manuals")
    parser.add_argument("--chunking", default="default",
                        help="comma-separated MAX/OVERLAP[/nocontext] settings, or 'default'")
    parser.add_argument("--sweep", action="store_true", help="also sweep fusion weights and BM25 heading weights")
    parser.add_argument("--rerank", default="", help="comma-separated: sentences[:FIRST_STAGE_WEIGHT], or a "
                                                     "cross-encoder id or folder")
    parser.add_argument("--keep", metavar="DIR", help="keep each index in DIR and reuse it on the next run "
                                                       "(only while the chunking code is unchanged)")
    parser.add_argument("--only", default="", help="comma-separated search settings to run (default: all)")
    parser.add_argument("--label", default="", help="a name for this run (e.g. the commit measured)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "retrieval_quality.json"))
    args = parser.parse_args()
    embedder = Embedder()
    embedder.encode(["warm up"])
    rerank_names = [r for r in args.rerank.split(",") if r]
    result = {"label": args.label, "machine": {"cpu": platform.processor() or platform.machine(),
                                               "python": platform.python_version()},
              "embedding_backend": embedder.backend, "runs": []}
    for chunking in args.chunking.split(","):
        config = None
        if chunking != "default":
            parts = chunking.split("/")
            wanted = {"max_tokens": int(parts[0]), "overlap_tokens": int(parts[1]),
                      "embed_context": "nocontext" not in parts}
            config = ChunkingConfig(**_supported(ChunkingConfig, wanted))
        for set_name in args.sets.split(","):
            files, golds, kinds = load_set(set_name)
            with tempfile.TemporaryDirectory() as tmp:
                folder = Path(args.keep) / f"{set_name}-{chunking.replace('/', '_')}" if args.keep else Path(tmp)
                index = DocumentIndex(folder / "i.sqlite", ChromaSettings(path=folder / "chroma"))
                started = time.perf_counter()
                if index.chunk_count() == 0:  # a kept index from an earlier run is measured as it is
                    ingest_paths(index, embedder, files, config)
                run = {"set": set_name, "chunking": chunking, "questions": len(golds),
                       "ingest_seconds": round(time.perf_counter() - started, 1), **chunk_stats(index), "search": {}}
                chosen = [c for c in args.only.split(",") if c]
                for label, settings in search_settings(args.sweep, rerank_names):
                    if chosen and label not in chosen:
                        continue
                    run["search"][label] = evaluate(index, embedder, golds, kinds, settings)
                    scores = run["search"][label]
                    print(f"{set_name:8} {chunking:14} {label:38} R@5 {scores['recall@5']:.3f} "
                          f"MRR {scores['mrr']:.3f} spanR {scores.get('span_recall@5', 0):.3f} "
                          f"IoU {scores.get('span_iou@5', 0):.3f} {scores['mean_query_ms']} ms", flush=True)
                index.close()
            result["runs"].append(run)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
