"""Chunks fit the embedding model, follow headings and pages, and keep exact spans."""

import re

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
    chunks = chunk_document(doc, approximate_token_counter,
                            ChunkingConfig(max_tokens=400, overlap_tokens=0, min_tokens=0))
    assert [c.section for c in chunks] == ["A", "A > B"]
    assert "beta" not in chunks[0].text


def test_a_section_too_small_to_stand_alone_joins_the_next():
    text = "# Guide\n\n## Install\n\n### Linux\n\n" + words(40) + "\n\n### macOS\n\n" + words(40, "beta")
    doc = load_bytes("guide.md", text.encode())
    chunks = chunk_document(doc, approximate_token_counter, ChunkingConfig(max_tokens=120, overlap_tokens=0))
    assert [c.section for c in chunks] == ["Guide > Install > Linux", "Guide > Install > macOS"]
    assert chunks[0].text.startswith("# Guide")  # the bare headings travel with the text under them
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


def facts(n: int) -> str:
    """Paragraphs of distinct sentences; each sentence is an answer a question may point to."""
    paragraphs = []
    for p in range(n):
        paragraphs.append(" ".join(f"Fact {p}-{s} says the value of item {p}{s} is {p * 7 + s} units."
                                   for s in range(3 + p % 4)))
    return "\n\n".join(paragraphs)


@pytest.mark.parametrize("max_tokens,overlap", [(40, 0), (64, 16), (100, 32), (200, 0)])
def test_no_sentence_is_split_between_chunks(max_tokens, overlap):
    doc = load_bytes("facts.txt", facts(40).encode())
    config = ChunkingConfig(max_tokens=max_tokens, overlap_tokens=overlap)
    chunks = chunk_document(doc, approximate_token_counter, config)
    for sentence_start in [m.start() for m in re.finditer(r"Fact \d+-\d+", doc.text)]:
        sentence_end = doc.text.index(".", doc.text.index(" units", sentence_start)) + 1
        assert any(c.start <= sentence_start and sentence_end <= c.end for c in chunks), \
            doc.text[sentence_start:sentence_end]


@pytest.mark.parametrize("paragraphs", range(3, 30, 4))
def test_no_tail_chunk_is_an_orphan(paragraphs):
    doc = load_bytes("facts.txt", facts(paragraphs).encode())
    config = ChunkingConfig(max_tokens=80, overlap_tokens=0)
    chunks = chunk_document(doc, approximate_token_counter, config)
    sizes = approximate_token_counter([c.text for c in chunks])
    if len(chunks) > 1:
        assert min(sizes) >= config.minimum_tokens, sizes
    assert chunks[-1].end == len(doc.text.rstrip())


def test_a_chunk_ends_at_a_paragraph_break_when_one_fills_it_well():
    first = " ".join(f"Alpha sentence {i} is here." for i in range(8))   # about 48 pieces
    second = " ".join(f"Beta sentence {i} is here." for i in range(8))
    doc = load_bytes("two.txt", f"{first}\n\n{second}".encode())
    chunks = chunk_document(doc, approximate_token_counter, ChunkingConfig(max_tokens=80, overlap_tokens=0))
    assert chunks[0].text == first  # not first + half of second


def test_overlap_repeats_whole_sentences():
    doc = load_bytes("facts.txt", facts(30).encode())
    chunks = chunk_document(doc, approximate_token_counter, ChunkingConfig(max_tokens=60, overlap_tokens=20))
    overlapping = [(a, b) for a, b in zip(chunks, chunks[1:], strict=False) if b.start < a.end]
    assert overlapping
    for _, b in overlapping:
        assert b.text.startswith("Fact ")


def test_the_context_is_the_title_and_heading_path_once():
    text = "# Valgrind Manual\n\n## Memcheck\n\n" + words(40)
    doc = load_bytes("manual.md", text.encode())
    chunk = chunk_document(doc, approximate_token_counter)[0]
    assert chunk.context == "Valgrind Manual > Memcheck"  # the title is the path's first heading
    assert chunk.embedding_text().startswith("Valgrind Manual > Memcheck\n\n")
    assert chunk.embedding_text(with_context=False) == chunk.text
    plain = chunk_document(load_bytes("notes.txt", b"Just text here."), approximate_token_counter)[0]
    assert plain.context == "notes" and plain.embedding_text() == "notes\n\nJust text here."
