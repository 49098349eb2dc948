"""Ingest files into the index: load, chunk, embed, store; one result per file.

A failing file never stops the others, and leaves the index as it was.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from retrieval.chunking import ChunkingConfig, chunk_document
from retrieval.documents import DocumentError
from retrieval.embeddings import Embedder
from retrieval.index import DocumentIndex
from retrieval.loaders import UploadLimits, iter_path, iter_zip
from retrieval.parsing import parse_upload

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class IngestResult:
    source: str
    status: str
    """"added", "unchanged" (same content already indexed), "replaced" or "failed"."""
    chunks: int = 0
    error: str = ""
    hint: str = ""

    @property
    def ok(self) -> bool:
        return self.status != "failed"


def safe_source_name(name: str) -> str:
    """A display name with no directory traversal, drive letters or control characters."""
    parts = [p for p in PurePosixPath(str(name).replace("\\", "/")).parts if p not in ("", ".", "..", "/")]
    cleaned = "/".join(re.sub(r"[\x00-\x1f\x7f:*?\"<>|]", "_", p) for p in parts[-4:])
    return cleaned or "unnamed"


def ingest_items(index: DocumentIndex, embedder: Embedder, items: Iterable[tuple[str, bytes | DocumentError]],
                 config: ChunkingConfig | None = None, limits: UploadLimits | None = None,
                 progress: Progress | None = None) -> list[IngestResult]:
    """Ingest (name, bytes) pairs; a DocumentError in place of bytes is reported as failed."""
    items = list(items)
    results = []
    for position, (name, data) in enumerate(items):
        source = safe_source_name(name)
        if progress:
            progress(position / max(len(items), 1), f"{source}")
        if isinstance(data, DocumentError):
            results.append(IngestResult(source, "failed", error=data.problem, hint=data.hint))
            continue
        if source.lower().endswith(".zip"):
            results.extend(ingest_items(index, embedder, iter_zip(source, data, limits), config, limits))
            continue
        results.append(_ingest_one(index, embedder, source, data, config, limits))
    if progress:
        progress(1.0, "done")
    return results


def _ingest_one(index: DocumentIndex, embedder: Embedder, source: str, data: bytes,
                config: ChunkingConfig | None, limits: UploadLimits | None) -> IngestResult:
    try:
        document = parse_upload(source, data, limits)
    except DocumentError as error:
        return IngestResult(source, "failed", error=error.problem, hint=error.hint)
    if index.has_document(document.doc_id):
        return IngestResult(source, "unchanged", chunks=0)
    replacing = any(d.source == source for d in index.documents())
    config = config or ChunkingConfig()
    chunks = chunk_document(document, embedder.count_tokens, config)
    if not chunks:
        return IngestResult(source, "failed", error="no text to index")
    vectors = embedder.encode([c.embedding_text(config.embed_context) for c in chunks])
    index.add(document.doc_id, source, document.title, document.kind, len(document.text), chunks, vectors)
    return IngestResult(source, "replaced" if replacing else "added", chunks=len(chunks))


def ingest_paths(index: DocumentIndex, embedder: Embedder, paths: Iterable[str | Path],
                 config: ChunkingConfig | None = None, limits: UploadLimits | None = None,
                 progress: Progress | None = None) -> list[IngestResult]:
    """Ingest files, folders and zip archives from disk."""
    items = [item for path in paths for item in iter_path(path, limits)]
    return ingest_items(index, embedder, items, config, limits, progress)
