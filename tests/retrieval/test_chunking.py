"""Chunks fit the embedding model, follow headings and pages, and keep exact spans."""

import pytest

from retrieval.chunking import ChunkingConfig, approximate_token_counter, chunk_document
from retrieval.loaders import load_bytes
from tests.paths import RETRIEVAL_CORPORA


def words(n: int, word: str = "alpha") -> str:
    return " ".join(f"{word}{i}." if i % 12 == 11 else f"{word}{i}" for i in range(n))


def test_every_chunk_is_an_exact_span_and_under_the_limit():
    text = "# Title\n\n" + "\n\n".join(words(60 + 13 * i) for i in range(12))
    doc = load_bytes("long.md", text.encode())
    config = ChunkingConfig(max_tokens=64, overlap_tokens=8)
    chunks = chunk_document(doc, approximate_token_counter, config)
    assert len(chunks) > 5
    for chunk in chunks:
        assert chunk.text == doc.text[chunk.start:chunk.end]
        assert approximate_token_counter([chunk.text])[0] <= config.max_tokens * 1.1
    assert [c.index for c in chunks] == list(range(len(chunks)))


def test_chunks_never_cross_a_heading():
    text = "# A\n\n" + words(30) + "\n\n## B\n\n" + words(30, "beta")
    doc = load_bytes("two.md", text.encode())
    chunks = chunk_document(doc, approximate_token_counter, ChunkingConfig(max_tokens=400, overlap_tokens=0))
    assert [c.section for c in chunks] == ["A", "A > B"]
    assert "beta" not in chunks[0].text


def test_one_huge_sentence_is_cut_into_windows():
    doc = load_bytes("run-on.txt", (" ".join(["word"] * 3000)).encode())
    chunks = chunk_document(doc, approximate_token_counter, ChunkingConfig(max_tokens=100, overlap_tokens=0))
    assert len(chunks) >= 20
    assert all(approximate_token_counter([c.text])[0] <= 100 for c in chunks)
    assert chunks[-1].end == len(doc.text)


def test_overlap_repeats_the_tail_of_the_previous_chunk():
    doc = load_bytes("p.txt", "\n\n".join(f"Paragraph {i} " + "x " * 8 for i in range(30)).encode())
    chunks = chunk_document(doc, approximate_token_counter, ChunkingConfig(max_tokens=60, overlap_tokens=20))
    assert any(b.start < a.end for a, b in zip(chunks, chunks[1:], strict=False))


def test_real_tokenizer_keeps_chunks_under_256_word_pieces(embedder):
    text = (RETRIEVAL_CORPORA / "state_of_the_union.md").read_text()
    doc = load_bytes("state_of_the_union.md", text.encode())
    chunks = chunk_document(doc, embedder.count_tokens)
    counts = embedder.count_tokens([c.text for c in chunks])
    assert max(counts) + 2 <= embedder.max_tokens  # +2 for [CLS] and [SEP]


@pytest.mark.parametrize("bad", [dict(max_tokens=8), dict(max_tokens=100, overlap_tokens=60)])
def test_bad_chunking_settings_are_refused(bad):
    with pytest.raises(ValueError):
        ChunkingConfig(**bad)
