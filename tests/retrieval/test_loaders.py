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


DOCBOOK_PAGE = b"""<html><head><title>4. Memcheck</title></head><body>
<div class="navheader"><table class="nav"><tr><td><a href="prev.html">Prev</a></td>
<td><a href="index.html">Up</a></td><td><a href="next.html">Next</a></td></tr></table></div>
<div class="chapter"><h1>4. Memcheck: a memory error detector</h1>
<div class="toc"><p><b>Table of Contents</b></p><dl><dt><a href="#overview">4.1. Overview</a></dt></dl></div>
<h2>4.1. Overview <a class="mark" href="#overview">#</a></h2>
<p>Memcheck is a memory error detector for C and C++ programs.</p>
<ul><li><a href="leaks.html">Leak checking</a></li><li>Reads of freed memory are reported as invalid reads.</li></ul>
</div>
<div class="navfooter"><table><tr><td><a href="prev.html">&lt;&lt; 3. Core</a></td>
<td><a href="index.html">Home</a></td></tr></table></div>
</body></html>"""

SITE_PAGE = b"""<html><head><title>HTTP | Docs</title></head><body>
<header><h1>Docs v20</h1><ul><li><a href="a.html">Assert</a></li><li><a href="b.html">Buffer</a></li></ul></header>
<div id="column2" role="navigation"><ul><li><a href="fs.html">File system</a></li></ul></div>
<div role="main"><h2>Class: http.Agent</h2><p>An Agent manages connection persistence for HTTP clients.</p>
<pre><code>agent.destroy()</code><button class="copy-button">copy</button></pre></div>
<footer><p>Copyright the authors</p></footer></body></html>"""


def test_html_navigation_tables_of_contents_and_permalinks_are_not_indexed():
    doc = load_bytes("mc-manual.html", DOCBOOK_PAGE)
    for furniture in ("Prev", "Next", "Up", "Home", "Table of Contents", "Leak checking", "<< 3. Core", "#"):
        assert furniture not in doc.text.split("\n\n"), furniture
    assert "Memcheck is a memory error detector for C and C++ programs." in doc.text
    assert "Reads of freed memory are reported as invalid reads." in doc.text
    assert doc.section_at(doc.text.index("Memcheck is")) == "4. Memcheck: a memory error detector > 4.1. Overview"


def test_html_with_a_main_region_indexes_only_it():
    doc = load_bytes("http.html", SITE_PAGE)
    assert doc.text.startswith("Class: http.Agent")
    for furniture in ("Docs v20", "Assert", "File system", "copy", "Copyright"):
        assert furniture not in doc.text, furniture
    assert "agent.destroy()" in doc.text and doc.title == "HTTP | Docs"


def test_pdf_running_headers_and_page_numbers_are_dropped():
    pages = [f"ACME Handbook - Edition 2\n{body}\nPage {n}" for n, body in enumerate(
        ["Leave is 25 days a year.", "Laptops are replaced every three years.",
         "ACME Handbook - Edition 2 is the current one.", "Expenses are paid monthly."], start=1)]
    doc = load_bytes("handbook.pdf", pdf_bytes(pages))
    assert doc.text.count("ACME Handbook - Edition 2") == 1  # the line in the middle of page 3 stays
    assert "ACME Handbook - Edition 2 is the current one." in doc.text
    assert "Page 1" not in doc.text and "Page 4" not in doc.text
    assert doc.page_at(doc.text.index("Expenses")) == 4


def test_two_page_pdfs_keep_every_line():
    doc = load_bytes("short.pdf", pdf_bytes(["Title line\nFirst page.", "Title line\nSecond page."]))
    assert doc.text.count("Title line") == 2


def test_an_html_term_and_its_definition_stay_one_paragraph():
    doc = load_bytes("options.html", b"<dl><dt>--leak-check=full</dt><dd>Shows each leak in detail.</dd>"
                                     b"<dt>--track-fds</dt><dd>Tracks open file descriptors.</dd></dl>")
    assert doc.text.split("\n\n") == ["--leak-check=full\nShows each leak in detail.",
                                      "--track-fds\nTracks open file descriptors."]
