"""A hostile upload costs a bounded parsing worker, never the server: sizes are checked before
parsing where the format declares them, and the rest is parsed under CPU and memory limits."""

import io
import threading
import time
import zipfile

import pytest

from retrieval.documents import DocumentError
from retrieval.loaders import UploadLimits, load_bytes
from retrieval.parsing import parse_upload, shutdown
from tests.retrieval.documents_factory import docx_bytes, pdf_bytes


@pytest.fixture(autouse=True)
def fresh_worker():
    yield
    shutdown()


def docx_bomb(unpacked_mb: int) -> bytes:
    """A real DOCX whose document.xml is padded with tens of MB of empty paragraphs (compresses ~1000:1)."""
    source = zipfile.ZipFile(io.BytesIO(docx_bytes("Bomb", ["tick"])))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as bomb:
        for entry in source.infolist():
            data = source.read(entry)
            if entry.filename == "word/document.xml":
                padding = b"<w:p/>" * (unpacked_mb * 1024 * 1024 // 6)
                data = data.replace(b"</w:body>", padding + b"</w:body>")
            bomb.writestr(entry, data)
    return out.getvalue()


def slow_html(paragraphs: int = 150_000) -> bytes:
    return ("<html><body>" + "".join(f"<div><p>para {i} <b>x</b></p></div>" for i in range(paragraphs))
            + "</body></html>").encode()


def test_a_docx_bomb_is_refused_from_its_directory_in_a_moment():
    bomb = docx_bomb(24)
    assert len(bomb) < 200_000  # small on the wire
    started = time.perf_counter()
    with pytest.raises(DocumentError, match=r"unpacks to 2\d MB of XML, over the limit of 10 MB"):
        load_bytes("report.docx", bomb)
    assert time.perf_counter() - started < 2  # it was never parsed


def test_a_pdf_with_too_many_pages_or_a_text_over_the_limit_is_refused():
    with pytest.raises(DocumentError, match="has 3 pages, over the limit of 2"):
        load_bytes("long.pdf", pdf_bytes(["one", "two", "three"]), UploadLimits(max_pdf_pages=2))
    with pytest.raises(DocumentError, match="characters of text"):
        load_bytes("long.txt", b"word " * 1000, UploadLimits(max_text_chars=4000))


def test_a_file_that_outruns_its_cpu_budget_costs_one_worker_and_the_next_file_parses():
    started = time.perf_counter()
    with pytest.raises(DocumentError, match=r"took more than the parsing limits \(1 s of CPU"):
        parse_upload("slow.html", slow_html(), UploadLimits(parse_cpu_seconds=1))
    assert time.perf_counter() - started < 30
    assert parse_upload("fine.md", b"# Fine\n\nStaff get 25 days.").title == "Fine"  # a fresh worker


def test_the_server_keeps_answering_while_a_hostile_file_is_parsed():
    outcome = {}

    def hostile():
        try:
            parse_upload("slow.html", slow_html(), UploadLimits(parse_cpu_seconds=4))
        except DocumentError as error:
            outcome["error"] = error

    worker = threading.Thread(target=hostile)
    worker.start()
    time.sleep(1.0)  # the worker is busy parsing now
    started = time.perf_counter()
    answered = load_bytes("note.md", b"# Note\n\nThe office opens at nine.")  # the server's own work
    assert answered.title == "Note" and time.perf_counter() - started < 1.0
    worker.join(timeout=60)
    assert "parsing limits" in str(outcome["error"])


def test_a_single_line_without_spaces_never_becomes_one_giant_chunk():
    from retrieval.chunking import chunk_document

    document = load_bytes("blob.txt", b"a" * 200_000)
    assert max(len(c.text) for c in chunk_document(document)) <= 4096
