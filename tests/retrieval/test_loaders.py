"""Each format loads with its structure; each kind of bad file gets a clear, per-file error."""

import pytest

from retrieval.documents import DocumentError
from retrieval.loaders import UploadLimits, iter_zip, load_bytes
from tests.retrieval.documents_factory import docx_bytes, pdf_bytes, zip_bytes

MARKDOWN = b"""# Guide

Intro text.

## Install

Run the installer. A line with # inside code:

```
# not a heading
```

## Use

Open the app.
"""


def test_markdown_keeps_the_file_text_and_heading_sections():
    doc = load_bytes("guide.md", MARKDOWN)
    assert doc.text == MARKDOWN.decode()
    assert doc.title == "Guide" and doc.kind == "markdown"
    labels = [s.label for s in doc.sections]
    assert labels == ["Guide", "Guide > Install", "Guide > Use"]
    install = doc.sections[1]
    assert doc.text[install.start:].startswith("## Install")
    assert doc.section_at(doc.text.index("Open the app")) == "Guide > Use"


def test_pdf_pages_are_spans_of_the_text():
    doc = load_bytes("report.pdf", pdf_bytes(["Revenue grew in spring.", "Costs fell in autumn."]))
    assert doc.kind == "pdf" and len(doc.pages) == 2
    assert doc.page_at(doc.text.index("Costs fell")) == 2
    assert doc.page_at(doc.text.index("Revenue")) == 1


def test_docx_headings_and_paragraphs():
    doc = load_bytes("policy.docx", docx_bytes("Leave policy", ["Staff get 25 days.", "Carry over 5."]))
    assert "Staff get 25 days." in doc.text
    assert doc.section_at(doc.text.index("Carry over")) == "Leave policy"


def test_html_drops_scripts_and_follows_headings():
    html = (b"<html><head><title>FAQ</title><script>alert('x')</script></head><body>"
            b"<h1>Billing</h1><p>Invoices go out monthly.</p><h2>Refunds</h2><p>Within 30 days.</p>"
            b"</body></html>")
    doc = load_bytes("faq.html", html)
    assert doc.title == "FAQ" and "alert" not in doc.text
    assert doc.section_at(doc.text.index("Within 30")) == "Billing > Refunds"


def test_same_bytes_same_id_changed_bytes_new_id():
    a, b = load_bytes("a.txt", b"hello world"), load_bytes("a.txt", b"hello world")
    assert a.doc_id == b.doc_id != load_bytes("a.txt", b"hello world!").doc_id


BAD = [
    ("broken.pdf", b"%PDF-1.4 garbage that is not a pdf", "damaged"),
    ("secret.pdf", None, "encrypted"),
    ("empty.txt", b"", "empty"),
    ("blank.md", b"   \n\n  ", "empty"),
    ("program.txt", bytes(range(256)) * 40, "binary"),
    ("image.png", b"\x89PNG\r\n", "unsupported"),
    ("noext", b"text", "unsupported"),
    ("broken.docx", b"PK not really a docx", "DOCX"),
]


@pytest.mark.parametrize("name, data, message", BAD, ids=[b[0] for b in BAD])
def test_bad_files_get_a_clear_error(name, data, message):
    if data is None:
        data = pdf_bytes(["classified"], password="s3cret")
    with pytest.raises(DocumentError, match=message) as caught:
        load_bytes(name, data)
    assert name in str(caught.value)


def test_oversized_file_is_refused_before_parsing():
    with pytest.raises(DocumentError, match="over the"):
        load_bytes("big.txt", b"x" * 2000, UploadLimits(max_file_bytes=1000))


def test_zip_entries_are_listed_and_limits_hold():
    data = zip_bytes({"a.md": b"# A\n\ntext", "dir/b.txt": b"bee", "__MACOSX/._a.md": b"junk"})
    names = [name for name, _ in iter_zip("docs.zip", data)]
    assert names == ["docs.zip/a.md", "docs.zip/dir/b.txt"]
    too_many = list(iter_zip("docs.zip", data, UploadLimits(max_zip_entries=1)))
    assert len(too_many) == 1 and isinstance(too_many[0][1], DocumentError)
    bomb = zip_bytes({"huge.txt": b"0" * 5_000_000})
    refused = list(iter_zip("bomb.zip", bomb, UploadLimits(max_zip_total_bytes=1_000_000)))
    assert isinstance(refused[0][1], DocumentError)
    assert isinstance(list(iter_zip("x.zip", b"not a zip"))[0][1], DocumentError)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32", "utf-8-sig"])
def test_text_with_a_byte_order_mark_is_text_in_any_unicode_encoding(encoding):
    text = "Staff get 25 days of paid leave. Überstunden zählen."
    data = text.encode(encoding)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data
    assert load_bytes("notes.txt", data).text == text


def test_nul_bytes_without_a_byte_order_mark_are_still_refused_as_binary():
    with pytest.raises(DocumentError, match="binary"):
        load_bytes("notes.txt", b"MZ\x00\x00\x90\x00" * 100)
