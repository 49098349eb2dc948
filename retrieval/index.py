"""The document index: chunk records and BM25 in SQLite, vectors in Chroma.

SQLite (stdlib) holds the document table, every chunk's text and metadata, and an FTS5
table whose built-in ``bm25()`` ranks lexical matches; FTS5 updates with each insert and
delete, so the lexical index is always in step with the vectors. Chroma holds the vectors
(cosine space, embeddings passed in, so Chroma's own downloading embedding function never
runs): embedded on disk by default, or a ``chroma run`` server through ``HttpClient``.

A document is written in three steps: its row marked ``ingesting``, its vectors, then its
chunks and the row marked ``ready``, in one SQLite transaction. Opening the index removes
whatever an interrupted ingest left, so the index only ever holds whole documents.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from retrieval.chunking import Chunk
from retrieval.lexical import fts_match, query_terms
from tunewise.errors import InputError, TunewiseError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    doc_id TEXT PRIMARY KEY, source TEXT NOT NULL, title TEXT, kind TEXT, chars INTEGER,
    chunks INTEGER, status TEXT NOT NULL, added_at REAL
);
CREATE INDEX IF NOT EXISTS documents_source ON documents(source);
CREATE TABLE IF NOT EXISTS chunks (
    chunk_id TEXT PRIMARY KEY, doc_id TEXT NOT NULL, idx INTEGER, source TEXT, title TEXT,
    page INTEGER, section TEXT, start INTEGER, "end" INTEGER, text TEXT
);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    text, heading, chunk_id UNINDEXED, doc_id UNINDEXED, tokenize = 'porter unicode61'
);
"""
DEFAULT_HEADING_WEIGHT = 1.0
"""BM25 weight of the title-and-heading field against 1.0 for the chunk's text (``bm25()``'s column
weights); chosen by measurement on both benchmarks (docs/benchmarks.md)."""
_COLLECTION_NAME = re.compile(r"[^a-zA-Z0-9._-]")
_ADD_BATCH = 5000  # below Chroma's maximum batch of 5461


class IndexUnavailableError(TunewiseError):
    """The index cannot be used right now; the message says why and what to do."""


@dataclass(frozen=True)
class IndexedDocument:
    doc_id: str
    source: str
    title: str
    kind: str
    chars: int
    chunks: int
    added_at: float


@dataclass(frozen=True)
class ChromaSettings:
    """Where vectors live: a folder (embedded Chroma) or a server URL (``chroma run``)."""

    path: Path | None = None
    url: str | None = None
    collection: str = "chunks"

    def client(self):
        import chromadb
        from chromadb.config import Settings

        settings = Settings(anonymized_telemetry=False)
        if self.url:
            parsed = urlparse(self.url if "://" in self.url else f"http://{self.url}")
            try:
                return chromadb.HttpClient(host=parsed.hostname or "127.0.0.1", port=parsed.port or 8000,
                                           ssl=parsed.scheme == "https", settings=settings)
            except Exception as error:
                raise IndexUnavailableError(f"cannot reach the Chroma server at {self.url}: {error}. Start it "
                                  "with `chroma run --path DIR --host 127.0.0.1 --port 8000`, or drop "
                                  "--chroma-url to use the embedded index") from error
        if self.path is None:
            raise InputError("ChromaSettings needs a path or a url")
        self.path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(self.path), settings=settings)


def collection_name(project: str) -> str:
    """A Chroma collection name for a project (3-512 of [a-zA-Z0-9._-], alphanumeric ends)."""
    name = "tunewise-" + _COLLECTION_NAME.sub("-", project)
    return name.strip("-._")[:500] + "-chunks"


class DocumentIndex:
    """Documents, their chunks, a BM25 table and their vectors, kept in step."""

    def __init__(self, sqlite_path: str | Path, chroma: ChromaSettings):
        self.sqlite_path = Path(sqlite_path)
        self.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.sqlite_path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._upgrade_lexical_table()
        self._db.executescript(_SCHEMA)
        self.chroma = chroma
        self._collection = None
        self.recover()

    def _upgrade_lexical_table(self) -> None:
        """An index written before chunks carried their heading path gets the new BM25 table,
        filled from its stored chunks (no re-embedding needed)."""
        row = self._db.execute("SELECT sql FROM sqlite_master WHERE name = 'chunks_fts'").fetchone()
        if row is None or "heading" in row[0]:
            return
        self._db.execute("DROP TABLE chunks_fts")
        self._db.executescript(_SCHEMA)
        rows = self._db.execute(
            'SELECT chunk_id, doc_id, source, title, idx, start, "end", text, page, section FROM chunks').fetchall()
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT INTO chunks_fts (text, heading, chunk_id, doc_id) VALUES (?, ?, ?, ?)",
                                 [(c.text, c.context, c.chunk_id, c.doc_id) for c in (Chunk(*r) for r in rows)])

    # --- Chroma -------------------------------------------------------------------------------

    @property
    def collection(self):
        if self._collection is None:
            try:
                client = self.chroma.client()
                self._collection = client.get_or_create_collection(
                    self.chroma.collection, embedding_function=None,
                    configuration={"hnsw": {"space": "cosine"}})
            except IndexUnavailableError:
                raise
            except Exception as error:
                where = self.chroma.url or self.chroma.path
                raise IndexUnavailableError(f"the vector store at {where} is not available: {error}") from error
        return self._collection

    def _chroma_call(self, action: str, call):
        try:
            return call()
        except IndexUnavailableError:
            raise
        except Exception as error:
            self._collection = None  # reconnect next time: a restarted server is picked up
            where = self.chroma.url or self.chroma.path
            raise IndexUnavailableError(f"could not {action} in the vector store at {where}: {error}") from error

    # --- writes -------------------------------------------------------------------------------

    def recover(self) -> list[str]:
        """Remove documents an interrupted ingest left half-written; returns their ids."""
        with self._lock:
            stale = [row[0] for row in self._db.execute(
                "SELECT doc_id FROM documents WHERE status != 'ready'")]
            for doc_id in stale:
                self._remove(doc_id)
            return stale

    def has_document(self, doc_id: str) -> bool:
        row = self._db.execute("SELECT 1 FROM documents WHERE doc_id = ? AND status = 'ready'",
                               (doc_id,)).fetchone()
        return row is not None

    def add(self, doc_id: str, source: str, title: str, kind: str, chars: int,
            chunks: Sequence[Chunk], embeddings) -> bool:
        """Add one document with its chunks and their vectors. Returns False, changing
        nothing, when the same content is already indexed; a document of the same name with
        other content is replaced."""
        if len(chunks) != len(embeddings):
            raise ValueError("one embedding per chunk")
        with self._lock:
            if self.has_document(doc_id):
                return False
            replaced = [row[0] for row in self._db.execute(
                "SELECT doc_id FROM documents WHERE source = ?", (source,)).fetchall()]
            self._db.execute(
                "INSERT OR REPLACE INTO documents VALUES (?, ?, ?, ?, ?, ?, 'ingesting', ?)",
                (doc_id, source, title, kind, chars, len(chunks), time.time()))
            try:
                self._write_chunks(doc_id, chunks, embeddings)
            except BaseException:
                # Leave the index as it was; if even this fails, recover() finishes it on reopen.
                with contextlib.suppress(Exception):
                    self._remove(doc_id)
                raise
            # The old version goes only once the new one is whole.
            for old in replaced:
                self._remove(old)
            return True

    def _write_chunks(self, doc_id: str, chunks: Sequence[Chunk], embeddings) -> None:
        ids = [c.chunk_id for c in chunks]
        metadatas = [{"doc_id": doc_id} for _ in chunks]
        for i in range(0, len(chunks), _ADD_BATCH):
            self._chroma_call("add vectors", lambda i=i: self.collection.upsert(
                ids=ids[i:i + _ADD_BATCH], embeddings=embeddings[i:i + _ADD_BATCH],
                metadatas=metadatas[i:i + _ADD_BATCH]))
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR REPLACE INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(c.chunk_id, doc_id, c.index, c.source, c.title, c.page, c.section, c.start,
                  c.end, c.text) for c in chunks])
            self._db.executemany("INSERT INTO chunks_fts (text, heading, chunk_id, doc_id) VALUES (?, ?, ?, ?)",
                                 [(c.text, c.context, c.chunk_id, doc_id) for c in chunks])
            self._db.execute("UPDATE documents SET status = 'ready' WHERE doc_id = ?", (doc_id,))

    def delete(self, doc_id_or_source: str) -> bool:
        """Remove a document (by id or file name) and all its chunks."""
        with self._lock:
            rows = self._db.execute("SELECT doc_id FROM documents WHERE doc_id = ? OR source = ?",
                                    (doc_id_or_source, doc_id_or_source)).fetchall()
            for (doc_id,) in rows:
                self._remove(doc_id)
            return bool(rows)

    def _remove(self, doc_id: str) -> None:
        self._chroma_call("delete vectors", lambda: self.collection.delete(where={"doc_id": doc_id}))
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM chunks_fts WHERE doc_id = ?", (doc_id,))
            self._db.execute("DELETE FROM chunks WHERE doc_id = ?", (doc_id,))
            self._db.execute("DELETE FROM documents WHERE doc_id = ?", (doc_id,))

    # --- reads --------------------------------------------------------------------------------

    def documents(self) -> list[IndexedDocument]:
        rows = self._db.execute("SELECT doc_id, source, title, kind, chars, chunks, added_at FROM documents "
                                "WHERE status = 'ready' ORDER BY source").fetchall()
        return [IndexedDocument(*row) for row in rows]

    def chunk_count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]

    def vector_count(self) -> int:
        return self._chroma_call("count vectors", lambda: self.collection.count())

    def chunks_by_id(self, chunk_ids: Sequence[str]) -> dict[str, Chunk]:
        if not chunk_ids:
            return {}
        marks = ",".join("?" * len(chunk_ids))
        rows = self._db.execute(
            f'SELECT chunk_id, doc_id, source, title, idx, start, "end", text, page, section '
            f"FROM chunks WHERE chunk_id IN ({marks})", list(chunk_ids)).fetchall()
        return {row[0]: Chunk(*row) for row in rows}

    def document_chunks(self, doc_id_or_source: str) -> list[Chunk]:
        """A ready document's chunks in order (by id or file name)."""
        rows = self._db.execute(
            'SELECT c.chunk_id, c.doc_id, c.source, c.title, c.idx, c.start, c."end", c.text, c.page, c.section '
            "FROM chunks c JOIN documents d ON d.doc_id = c.doc_id WHERE d.status = 'ready' "
            "AND (d.doc_id = ? OR d.source = ?) ORDER BY c.idx", (doc_id_or_source, doc_id_or_source)).fetchall()
        return [Chunk(*row) for row in rows]

    def document_text(self, doc_id_or_source: str) -> str | None:
        """A document's text as far as its chunks hold it, at its original offsets (what was never in a
        chunk, the whitespace between paragraphs, is a space): enough to locate a quoted passage."""
        chunks = self.document_chunks(doc_id_or_source)
        if not chunks:
            return None
        text = [" "] * max(c.end for c in chunks)
        for chunk in chunks:
            text[chunk.start:chunk.end] = chunk.text
        return "".join(text)

    def vectors_by_id(self, chunk_ids: Sequence[str]) -> dict[str, list[float]]:
        if not chunk_ids:
            return {}
        result = self._chroma_call("read vectors", lambda: self.collection.get(ids=list(chunk_ids),
                                                                               include=["embeddings"]))
        return dict(zip(result["ids"], result["embeddings"], strict=True))

    def dense_ids(self, query_embedding, k: int, doc_ids: Sequence[str] | None = None) -> list[tuple[str, float]]:
        """(chunk id, cosine similarity) of the ``k`` nearest chunks."""
        if self.chunk_count() == 0:
            return []
        where = {"doc_id": {"$in": list(doc_ids)}} if doc_ids else None
        result = self._chroma_call("search", lambda: self.collection.query(
            query_embeddings=[query_embedding], n_results=k, where=where, include=["distances"]))
        return [(cid, 1.0 - float(dist)) for cid, dist in zip(result["ids"][0], result["distances"][0],
                                                               strict=True)]

    def lexical_ids(self, query: str, k: int, doc_ids: Sequence[str] | None = None,
                    heading_weight: float = DEFAULT_HEADING_WEIGHT) -> list[tuple[str, float]]:
        """(chunk id, BM25 score, higher is better) of the ``k`` best lexical matches, the chunk's
        title and heading path weighted ``heading_weight`` against its text."""
        terms = query_terms(query)
        if not terms:
            return []
        match = fts_match(terms)
        sql = (f"SELECT chunk_id, bm25(chunks_fts, 1.0, {float(heading_weight)!r}) AS score "
               "FROM chunks_fts WHERE chunks_fts MATCH ?")
        params: list = [match]
        if doc_ids:
            sql += f" AND doc_id IN ({','.join('?' * len(doc_ids))})"
            params += list(doc_ids)
        sql += " ORDER BY score LIMIT ?"
        rows = self._db.execute(sql, [*params, k]).fetchall()
        return [(cid, -float(score)) for cid, score in rows]  # FTS5's bm25() is lower-is-better

    def close(self) -> None:
        self._db.close()
