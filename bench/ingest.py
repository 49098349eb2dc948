"""Ingest speed against plain sentence-transformers, at measured retrieval quality, in one run.

    .venv/bin/python bench/ingest.py            # writes bench/results/ingest.json

The same chunks of the shared retrieval set (5 corpora, chunked as ingest chunks them) are encoded
by (a) plain ``SentenceTransformer(model).encode(texts)`` with its defaults, and by Tunewise's
embedder with (b) ONNX fp32 and (c) ONNX int8 weights. Each Tunewise backend then ingests the
corpora end to end (parse, chunk, embed, store in Chroma and SQLite) into its own index, and its
dense and hybrid recall@5 / MRR on the 472 questions are measured, so speed is never reported
without the quality it keeps. The torch backend (sentence-transformers inside Tunewise, the
fallback) ingests too, as the quality reference.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT / "bench" / "data" / "public" / "retrieval" / "chroma_chunking_eval"

from retrieval.chunking import chunk_document  # noqa: E402
from retrieval.embeddings import Embedder, bundled_model_path  # noqa: E402
from retrieval.evaluate import RetrievedChunk, read_questions, score_retrieval  # noqa: E402
from retrieval.index import ChromaSettings, DocumentIndex  # noqa: E402
from retrieval.ingest import ingest_paths  # noqa: E402
from retrieval.loaders import load_bytes  # noqa: E402
from retrieval.search import search  # noqa: E402


def corpus_chunks(embedder: Embedder) -> list[str]:
    texts = []
    for path in sorted((DATA / "corpora").glob("*.md")):
        document = load_bytes(path.name, path.read_bytes())
        texts += [c.text for c in chunk_document(document, embedder.count_tokens)]
    return texts


def timed(call) -> tuple[float, object]:
    started = time.perf_counter()
    value = call()
    return time.perf_counter() - started, value


def quality(workdir: Path, backend: str, precision: str) -> dict:
    embedder = Embedder(backend=backend, precision=precision)
    embedder.encode(["warm up"])
    index = DocumentIndex(workdir / f"{backend}-{precision}.sqlite",
                          ChromaSettings(path=workdir / f"{backend}-{precision}-chroma"))
    seconds, results = timed(lambda: ingest_paths(index, embedder, sorted((DATA / "corpora").glob("*.md"))))
    chunks = sum(r.chunks for r in results)
    golds = read_questions(str(DATA / "questions_df.csv"))
    report = {"backend": embedder.backend, "chunks": chunks, "ingest_seconds": round(seconds, 1),
              "ingest_chunks_per_s": round(chunks / seconds, 1)}
    for mode in ("dense", "hybrid"):
        retrieved = [[RetrievedChunk(h.source, h.start, h.end) for h in search(index, embedder, g.question, 10, mode)]
                     for g in golds]
        scores = score_retrieval(retrieved, golds, (1, 5, 10)).to_dict()
        report[mode] = {"recall@5": scores["recall@5"], "mrr": scores["mrr"]}
    index.close()
    print(json.dumps(report), flush=True)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "ingest.json"))
    args = parser.parse_args()
    import sentence_transformers
    import torch
    from sentence_transformers import SentenceTransformer

    reference = Embedder(backend="onnx", precision="fp32")
    texts = corpus_chunks(reference)
    tokens = sum(reference.count_tokens(texts))
    print(f"{len(texts)} chunks, {tokens} word pieces", flush=True)

    plain = SentenceTransformer(bundled_model_path(), device="cpu")
    plain.encode(texts[:4])
    encode = {"plain sentence-transformers": timed(lambda: plain.encode(texts))[0]}
    for precision in ("fp32", "int8"):
        ours = Embedder(backend="onnx", precision=precision)
        ours.encode(texts[:4])
        encode[f"tunewise onnx-{precision}"] = timed(lambda ours=ours: ours.encode(texts))[0]
    base = encode["plain sentence-transformers"]
    encode_report = {name: {"seconds": round(s, 1), "chunks_per_s": round(len(texts) / s, 1),
                            "x_plain": round(base / s, 2)} for name, s in encode.items()}
    print(json.dumps(encode_report, indent=2), flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        end_to_end = [quality(Path(tmp), "torch", "fp32"), quality(Path(tmp), "onnx", "fp32"),
                      quality(Path(tmp), "onnx", "int8")]
    for row in end_to_end:
        row["x_plain_encode"] = round(row["ingest_chunks_per_s"] / (len(texts) / base), 2)
    result = {
        "date": date.today().isoformat(),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "python": platform.python_version(), "torch": torch.__version__,
                    "sentence_transformers": sentence_transformers.__version__,
                    "onnxruntime": __import__("onnxruntime").__version__},
        "chunks": len(texts), "word_pieces": tokens,
        "encode_same_chunks": encode_report,
        "ingest_end_to_end": end_to_end,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
