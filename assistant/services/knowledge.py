"""A project's knowledge base: its document index, opened where the workspace keeps it.

The glue between the workspace (assistant/) and the retrieval service (retrieval/), used
by the CLI and the Knowledge tab alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from assistant.services.workspace import Workspace, WorkspaceError


@dataclass(frozen=True)
class KnowledgeSettings:
    chroma_url: str | None = None
    """A Chroma server (``chroma run``) instead of the embedded on-disk store."""
    embedding_model: str | None = None
    """A sentence-transformers id or path; None for the bundled all-MiniLM-L6-v2."""
    search_mode: str | None = None
    """dense, bm25 or hybrid; None for the measured default."""
    reranker: str | None = None
    """Re-score the top candidates: "sentences" (the embedding model's best sentence, no new
    weights) or a sentence-transformers CrossEncoder id or folder; None for no rerank."""


class KnowledgeBase:
    """Ingest, list, delete and search the documents of one project."""

    def __init__(self, workspace: Workspace, project: str, settings: KnowledgeSettings | None = None,
                 create: bool = True):
        """``create``: make the project if it does not exist (ingest); False for reads, which get
        "there is no project" instead of leaving an empty project behind."""
        from retrieval.embeddings import DEFAULT_EMBEDDING_MODEL, shared_embedder
        from retrieval.index import ChromaSettings, DocumentIndex, collection_name

        self.settings = settings or KnowledgeSettings()
        if not create and not workspace.exists(project):
            raise WorkspaceError(f"there is no project named {project!r}")
        project_dir = workspace.ensure(project).path
        index_dir = project_dir / "index"
        # On a shared Chroma server, a signed-in user's collections carry their folder's name.
        scope = project if workspace.owner is None else f"{workspace.root.name}--{project}"
        chroma = (ChromaSettings(url=self.settings.chroma_url, collection=collection_name(scope))
                  if self.settings.chroma_url else ChromaSettings(path=index_dir / "chroma"))
        self.index = DocumentIndex(index_dir / "chunks.sqlite", chroma)
        self.embedder = shared_embedder(self.settings.embedding_model or DEFAULT_EMBEDDING_MODEL)
        self._reranker = None

    @property
    def reranker(self):
        """The configured reranker, loaded on first use (a cross-encoder costs seconds to load)."""
        if self.settings.reranker and self._reranker is None:
            from retrieval.rerank import make_reranker

            self._reranker = make_reranker(self.settings.reranker, self.embedder)
        return self._reranker

    def ingest(self, paths: Iterable[str | Path], progress=None):
        from retrieval.ingest import ingest_paths

        return ingest_paths(self.index, self.embedder, paths, progress=progress)

    def ingest_uploads(self, items: Sequence[tuple[str, bytes]], progress=None):
        from retrieval.ingest import ingest_items

        return ingest_items(self.index, self.embedder, items, progress=progress)

    def documents(self):
        return self.index.documents()

    def delete(self, doc_id_or_source: str) -> bool:
        return self.index.delete(doc_id_or_source)

    def search(self, query: str, k: int = 5, mode: str | None = None,
               sources: Sequence[str] | None = None, with_similarity: bool = False, rerank: bool = True):
        """Hits for ``query``; ``sources`` limits the search to those file names; ``rerank`` False
        skips the configured reranker."""
        from retrieval.search import DEFAULT_SEARCH_MODE, search

        doc_ids = None
        if sources:
            wanted = set(sources)
            doc_ids = [d.doc_id for d in self.documents() if d.source in wanted or d.doc_id in wanted]
            if not doc_ids:
                return []
        return search(self.index, self.embedder, query, k, mode or self.settings.search_mode
                      or DEFAULT_SEARCH_MODE, doc_ids, with_similarity,
                      reranker=self.reranker if rerank else None)

    def measure(self, golds, modes: Sequence[str | None], k: int = 10, ks: Sequence[int] = (1, 5, 10)) -> list[dict]:
        """Retrieval scores of each search mode on questions with gold passages (quoted passages are
        located in the indexed text first); with a reranker configured, each mode with and without it."""
        from retrieval.evaluate import RetrievedChunk, score_retrieval, with_quote_spans
        from retrieval.search import DEFAULT_SEARCH_MODE

        golds = with_quote_spans(golds, self.index.document_text)
        rows = []
        for mode in modes:
            mode = mode or self.settings.search_mode or DEFAULT_SEARCH_MODE
            for rerank in (False, True) if self.settings.reranker else (False,):
                found = [[RetrievedChunk(h.source, h.start, h.end, h.text)
                          for h in self.search(g.question, k, mode, rerank=rerank)] for g in golds]
                rows.append({"mode": mode + (f" + rerank {self.settings.reranker}" if rerank else ""),
                             **score_retrieval(found, golds, ks).to_dict()})
        return rows

    def close(self) -> None:
        self.index.close()


class KnowledgeBases:
    """One open KnowledgeBase per project for the life of the app (opening Chroma costs ~1 s)."""

    def __init__(self, workspace: Workspace, settings: KnowledgeSettings | None = None):
        import threading

        self.workspace = workspace
        self.settings = settings or KnowledgeSettings()
        self._open: dict[str, KnowledgeBase] = {}
        self._lock = threading.Lock()

    def get(self, project: str, create: bool = False) -> KnowledgeBase:
        """The project's open knowledge base; ``create`` (an upload) makes a missing project, a read
        gets "there is no project" instead."""
        with self._lock:
            if project not in self._open:
                self._open[project] = KnowledgeBase(self.workspace, project, self.settings, create=create)
            return self._open[project]

    def forget(self, project: str) -> None:
        """Close a project's index (before it is renamed or deleted)."""
        with self._lock:
            kb = self._open.pop(project, None)
        if kb is not None:
            kb.close()
