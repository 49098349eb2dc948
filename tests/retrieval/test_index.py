"""The index against real Chroma: idempotent re-ingest, replacement, deletion, restart, faults."""

import pytest

from retrieval.index import ChromaSettings, DocumentIndex
from retrieval.ingest import ingest_items, ingest_paths
from retrieval.search import reciprocal_rank_fusion, search, weighted_fusion
from tests.retrieval.documents_factory import pdf_bytes

HR = b"# Leave\n\nStaff get 25 days of paid leave each year.\n\n## Sick leave\n\nSick days need a note after 3 days.\n"
IT = b"# Laptops\n\nEvery engineer gets a laptop with 32 GB of memory, replaced every three years.\n"


def test_ingest_search_and_cite_spans(index, embedder):
    results = ingest_items(index, embedder, [("hr.md", HR), ("it.md", IT)])
    assert [(r.source, r.status) for r in results] == [("hr.md", "added"), ("it.md", "added")]
    for mode in ("dense", "bm25", "hybrid"):
        hits = search(index, embedder, "how many days of paid leave", k=2, mode=mode)
        assert hits[0].source == "hr.md", mode
        assert HR.decode()[hits[0].start:hits[0].end] == hits[0].text
    laptop = search(index, embedder, "laptop memory", k=1)[0]
    assert laptop.source == "it.md" and laptop.section == "Laptops"


def test_the_same_file_again_adds_nothing(index, embedder):
    ingest_items(index, embedder, [("hr.md", HR)])
    before = (index.chunk_count(), index.vector_count())
    again = ingest_items(index, embedder, [("hr.md", HR), ("copy-of-hr.md", HR)])
    assert [r.status for r in again] == ["unchanged", "unchanged"]
    assert (index.chunk_count(), index.vector_count()) == before


def test_a_changed_file_replaces_its_chunks(index, embedder):
    ingest_items(index, embedder, [("hr.md", HR)])
    changed = HR.replace(b"25 days", b"30 days")
    assert ingest_items(index, embedder, [("hr.md", changed)])[0].status == "replaced"
    assert len(index.documents()) == 1
    texts = " ".join(h.text for h in search(index, embedder, "paid leave days", k=5))
    assert "30 days" in texts and "25 days" not in texts
    assert index.vector_count() == index.chunk_count()


def test_deleting_a_document_removes_its_chunks_and_vectors(index, embedder):
    ingest_items(index, embedder, [("hr.md", HR), ("it.md", IT)])
    assert index.delete("hr.md")
    assert [d.source for d in index.documents()] == ["it.md"]
    assert index.vector_count() == index.chunk_count() == index.documents()[0].chunks
    assert all(h.source == "it.md" for h in search(index, embedder, "paid leave", k=5, mode="bm25"))
    assert not index.delete("hr.md")


def test_the_index_survives_a_restart(tmp_path, embedder):
    settings = ChromaSettings(path=tmp_path / "chroma")
    first = DocumentIndex(tmp_path / "index.sqlite", settings)
    ingest_items(first, embedder, [("hr.md", HR)])
    first.close()
    reopened = DocumentIndex(tmp_path / "index.sqlite", settings)
    assert [d.source for d in reopened.documents()] == ["hr.md"]
    assert search(reopened, embedder, "sick note", k=1, mode="dense")[0].section == "Leave > Sick leave"
    assert ingest_items(reopened, embedder, [("hr.md", HR)])[0].status == "unchanged"
    reopened.close()


def test_filter_by_document(index, embedder):
    ingest_items(index, embedder, [("hr.md", HR), ("it.md", IT)])
    it_id = next(d.doc_id for d in index.documents() if d.source == "it.md")
    for mode in ("dense", "bm25", "hybrid"):
        hits = search(index, embedder, "paid leave every year", k=5, mode=mode, doc_ids=[it_id])
        assert hits and all(h.source == "it.md" for h in hits), mode


def test_bad_files_fail_alone_and_leave_the_index_unchanged(index, embedder, tmp_path):
    ingest_items(index, embedder, [("hr.md", HR)])
    before = (index.documents(), index.chunk_count(), index.vector_count())
    folder = tmp_path / "upload"
    folder.mkdir()
    (folder / "corrupt.pdf").write_bytes(b"%PDF-1.7 this is not really a pdf")
    (folder / "locked.pdf").write_bytes(pdf_bytes(["secret"], password="pw"))
    (folder / "empty.txt").write_bytes(b"")
    (folder / "binary.txt").write_bytes(bytes(range(256)) * 50)
    (folder / "slides.pptx").write_bytes(b"PK\x03\x04")
    (folder / "huge.md").write_bytes(b"# big\n\n" + b"word " * 300_000)
    (folder / "good.md").write_bytes(IT)
    from retrieval.loaders import UploadLimits

    results = {r.source: r for r in ingest_paths(index, embedder, [folder],
                                                 limits=UploadLimits(max_file_bytes=1_000_000))}
    assert results["good.md"].status == "added"
    expected = {"corrupt.pdf": "damaged", "locked.pdf": "encrypted", "empty.txt": "empty",
                "binary.txt": "binary", "slides.pptx": "unsupported", "huge.md": "limit"}
    for name, word in expected.items():
        assert results[name].status == "failed" and word in results[name].error, (name, results[name])
    docs = {d.source for d in index.documents()}
    assert docs == {"hr.md", "good.md"}
    assert index.chunk_count() == before[1] + results["good.md"].chunks == index.vector_count()


def test_an_interrupted_ingest_is_rolled_back_on_reopen(tmp_path, embedder):
    settings = ChromaSettings(path=tmp_path / "chroma")
    index = DocumentIndex(tmp_path / "index.sqlite", settings)
    ingest_items(index, embedder, [("hr.md", HR)])
    # Simulate a crash after the vectors went in but before the chunks were committed.
    from retrieval.chunking import chunk_document
    from retrieval.loaders import load_bytes

    doc = load_bytes("it.md", IT)
    chunks = chunk_document(doc, embedder.count_tokens)
    index._db.execute("INSERT INTO documents VALUES (?, 'it.md', '', 'markdown', 1, ?, 'ingesting', 0)",
                      (doc.doc_id, len(chunks)))
    index.collection.upsert(ids=[c.chunk_id for c in chunks], embeddings=embedder.encode([c.text for c in chunks]),
                            metadatas=[{"doc_id": doc.doc_id}] * len(chunks))
    index.close()
    reopened = DocumentIndex(tmp_path / "index.sqlite", settings)
    assert [d.source for d in reopened.documents()] == ["hr.md"]
    assert reopened.vector_count() == reopened.chunk_count()
    reopened.close()


def test_rrf_rewards_agreement():
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["b", "c", "a"]])
    assert [item for item, _ in fused] == ["b", "a", "c"]
    assert fused[0][1] == pytest.approx(1 / 62 + 1 / 61)


def test_empty_queries_and_empty_index(index, embedder):
    assert search(index, embedder, "anything", k=5) == []
    ingest_items(index, embedder, [("hr.md", HR)])
    assert search(index, embedder, "   ", k=5) == []
    assert search(index, embedder, "?!", k=5, mode="bm25") == []
    with pytest.raises(ValueError, match="unknown search mode"):
        search(index, embedder, "x", mode="magic")


def test_every_mode_can_report_cosine_similarity(index, embedder):
    ingest_items(index, embedder, [("hr.md", HR), ("it.md", IT)])
    for mode in ("dense", "bm25", "hybrid"):
        hits = search(index, embedder, "paid leave days", k=2, mode=mode, with_similarity=True)
        assert all(h.similarity is not None and -1 <= h.similarity <= 1 for h in hits), mode
        assert hits[0].similarity > 0.3
    dense = search(index, embedder, "paid leave days", k=1, mode="dense")[0]
    bm25 = search(index, embedder, "paid leave days", k=5, mode="bm25", with_similarity=True)
    same = next(h for h in bm25 if h.chunk_id == dense.chunk_id)
    assert same.similarity == pytest.approx(dense.similarity, abs=1e-4)


MANUAL = (b"# Valgrind\n\n## Memcheck\n\nIt reports reads of memory after it was released.\n\n"
          b"## Massif\n\nIt measures how much heap memory your program uses over time.\n")


def test_the_heading_path_is_searchable_with_the_chunk(index, embedder):
    ingest_items(index, embedder, [("manual.md", MANUAL), ("hr.md", HR)])
    hits = search(index, embedder, "massif", k=1, mode="bm25")
    assert hits and "heap memory" in hits[0].text  # the word is only in the heading
    unweighted = search(index, embedder, "massif", k=1, mode="bm25", heading_weight=0.0)
    assert unweighted[0].score == pytest.approx(0.0, abs=1e-5)  # weight 0: the heading field counts for nothing


def test_an_index_from_before_headings_were_indexed_is_upgraded_in_place(tmp_path, embedder):
    import sqlite3

    built = DocumentIndex(tmp_path / "old.sqlite", ChromaSettings(path=tmp_path / "chroma"))
    ingest_items(built, embedder, [("manual.md", MANUAL)])
    built.close()
    db = sqlite3.connect(tmp_path / "old.sqlite")  # the table as earlier versions wrote it
    db.executescript("DROP TABLE chunks_fts; CREATE VIRTUAL TABLE chunks_fts USING fts5(text, chunk_id UNINDEXED, "
                     "doc_id UNINDEXED, tokenize = 'porter unicode61'); INSERT INTO chunks_fts SELECT text, "
                     "chunk_id, doc_id FROM chunks;")
    db.close()
    reopened = DocumentIndex(tmp_path / "old.sqlite", ChromaSettings(path=tmp_path / "chroma"))
    assert "heap memory" in search(reopened, embedder, "massif", k=1, mode="bm25")[0].text
    assert reopened.chunk_count() == reopened._db.execute("SELECT COUNT(*) FROM chunks_fts").fetchone()[0]
    reopened.close()


def test_weighted_fusion_scales_each_list_and_mixes_them():
    dense = [("a", 0.9), ("b", 0.5), ("c", 0.1)]
    lexical = [("c", 30.0), ("d", 10.0)]
    fused = dict(weighted_fusion(dense, lexical, dense_weight=0.25))
    assert fused == pytest.approx({"a": 0.25, "b": 0.125, "c": 0.75, "d": 0.0})
    assert [i for i, _ in weighted_fusion(dense, lexical, dense_weight=1.0)][:2] == ["a", "b"]
    assert weighted_fusion([], [("x", 2.0)], 0.5) == [("x", 0.5)]


def test_hybrid_search_takes_either_fusion(index, embedder):
    ingest_items(index, embedder, [("hr.md", HR), ("it.md", IT), ("manual.md", MANUAL)])
    for fusion in ("weighted", "rrf"):
        hits = search(index, embedder, "how many days of paid leave", k=2, mode="hybrid", fusion=fusion)
        assert hits[0].source == "hr.md", fusion
    with pytest.raises(ValueError, match="unknown fusion"):
        search(index, embedder, "leave", mode="hybrid", fusion="magic")


def test_a_cross_encoder_reranks_the_candidates_by_its_own_scores(index, embedder, tmp_path):
    from retrieval.rerank import CrossEncoderReranker
    from tests.retrieval.tiny_cross_encoder import build_cross_encoder

    ingest_items(index, embedder, [("hr.md", HR), ("it.md", IT), ("manual.md", MANUAL)])
    folder = build_cross_encoder(tmp_path / "ce", (HR + IT + MANUAL).decode() * 3)
    reranker = CrossEncoderReranker(str(folder))
    query = "memory of the laptop"
    first = search(index, embedder, query, k=10, mode="hybrid")
    reranked = search(index, embedder, query, k=10, mode="hybrid", reranker=reranker)
    assert {h.chunk_id for h in reranked} == {h.chunk_id for h in first}
    chunks = index.chunks_by_id([h.chunk_id for h in first])
    expected = reranker.model.predict([(query, chunks[h.chunk_id].embedding_text()) for h in first])
    by_model = [h.chunk_id for _, h in sorted(zip(expected, first, strict=True), key=lambda pair: -pair[0])]
    assert [h.chunk_id for h in reranked] == by_model
    assert [h.chunk_id for h in search(index, embedder, query, k=2, mode="hybrid", reranker=reranker)] == by_model[:2]


def test_a_missing_cross_encoder_is_a_clear_error(tmp_path):
    from retrieval.rerank import CrossEncoderReranker

    with pytest.raises(ValueError, match="cannot load the reranker"):
        CrossEncoderReranker(str(tmp_path / "nothing-here"))


def test_the_sentence_reranker_scores_a_chunk_by_its_best_sentence(embedder):
    from retrieval.chunking import Chunk
    from retrieval.rerank import SentenceReranker, sentences

    assert sentences("Note: see below. Memcheck reports invalid reads.\n\nOK.") == \
        ["Note: see below. Memcheck reports invalid reads.", "OK."]
    answer = Chunk("a", "d", "m.md", "Manual", 0, 0, 10, "Unrelated filler about fonts. "
                   "Memcheck reports a read of freed memory as an invalid read.")
    filler = Chunk("b", "d", "m.md", "Manual", 1, 10, 20, "Fonts are drawn with anti-aliasing on screen.")
    reranker = SentenceReranker(embedder)
    query = "which tool reports reading freed memory"
    scores = reranker.scores(query, [answer, filler])
    vectors = embedder.encode([query, "Manual: Memcheck reports a read of freed memory as an invalid read."])
    assert scores[0] == pytest.approx(float(vectors[0] @ vectors[1]), abs=1e-5)
    assert scores[0] > scores[1]


def test_the_sentence_reranker_embeds_a_passage_once(embedder):
    from retrieval.chunking import Chunk
    from retrieval.rerank import SentenceReranker

    calls = []

    class Counting:
        def encode(self, texts):
            calls.append(len(texts))
            return embedder.encode(texts)

    chunks = [Chunk(str(i), "d", "m.md", "Manual", i, 0, 10, f"Sentence number {i} talks about topic {i}.")
              for i in range(3)]
    reranker = SentenceReranker(Counting(), cache_chunks=2)
    first = reranker.scores("topic 1", chunks)
    assert calls == [1, 3]  # the query, then the three passages' sentences in one batch
    assert reranker.scores("topic 1", chunks[1:]) == pytest.approx(first[1:], abs=1e-6)
    assert calls == [1, 3, 1]  # only the query: both passages were kept
    reranker.scores("topic 1", chunks[:1])
    assert calls[-2:] == [1, 1]  # the query, and passage 0 again: it had been dropped (two kept at most)
