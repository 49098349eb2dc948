"""Turn uploaded files into :class:`Document`s: PDF, DOCX, HTML, Markdown and plain text.

Libraries (all permissive licences, all maintained): pypdf (BSD-3) for PDF, python-docx (MIT)
for DOCX, BeautifulSoup 4 (MIT) for HTML, markdown-it-py (MIT) to find Markdown headings the
way a Markdown renderer does (a '#' inside a code block is not a heading).

Markdown and plain text keep the file's own characters, so a span in the extracted text is a
span in the file. Every failure is a :class:`DocumentError` naming the file and what to do.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from retrieval.documents import Document, DocumentError, Span, content_hash

SUPPORTED_SUFFIXES = (".pdf", ".docx", ".html", ".htm", ".md", ".markdown", ".txt", ".text")


@dataclass(frozen=True)
class UploadLimits:
    """Caps on what one upload may hold and cost, all in one place (docs/security.md lists them).

    Sizes are checked before parsing where the format declares them (zip and DOCX directories,
    PDF page counts); what no header tells (a PDF stream that inflates, a parser that loops) is
    bounded by the parsing worker's CPU-time and memory limits (retrieval/parsing.py).
    """

    max_file_bytes: int = 50 * 1024 * 1024
    max_files: int = 1000
    max_zip_entries: int = 2000
    max_zip_total_bytes: int = 500 * 1024 * 1024
    max_docx_xml_bytes: int = 10 * 1024 * 1024
    """Unpacked XML of a DOCX (a 300-page report holds about 5 MB); a 71 KB file can declare 24 MB."""
    max_pdf_pages: int = 2000
    max_text_chars: int = 5_000_000
    """Extracted text of one document (about 2,500 pages); more takes an hour to embed on a CPU."""
    parse_cpu_seconds: int = 60
    parse_memory_bytes: int = 2 * 1024 ** 3
    parse_wall_seconds: float = 120.0


def load_bytes(source: str, data: bytes, limits: UploadLimits | None = None) -> Document:
    """Load one file's bytes; ``source`` is its display name and decides the format."""
    limits = limits or UploadLimits()
    suffix = PurePosixPath(source).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DocumentError(source, f"unsupported file type {suffix or '(none)'!r}",
                            f"supported: {', '.join(SUPPORTED_SUFFIXES)}, or a .zip of them")
    if len(data) > limits.max_file_bytes:
        raise DocumentError(source, f"file is {len(data) / 1e6:.1f} MB, over the "
                                    f"{limits.max_file_bytes / 1e6:.0f} MB limit", "split it into parts")
    if not data.strip():
        raise DocumentError(source, "file is empty")
    loader = {".pdf": _load_pdf, ".docx": _load_docx, ".html": _load_html, ".htm": _load_html,
              ".md": _load_markdown, ".markdown": _load_markdown}.get(suffix, _load_text)
    if suffix == ".docx":
        _check_docx_size(source, data, limits)
    document = loader(source, data, limits) if suffix == ".pdf" else loader(source, data)
    if len(document.text) > limits.max_text_chars:
        raise DocumentError(source, f"holds {len(document.text):,} characters of text, over the limit of "
                                    f"{limits.max_text_chars:,}", "split it into parts")
    if not document.text.strip():
        raise DocumentError(source, "no text could be extracted",
                            "a scanned PDF needs OCR first" if suffix == ".pdf" else "")
    return document


def iter_path(path: str | Path, limits: UploadLimits | None = None) -> Iterator[tuple[str, bytes | DocumentError]]:
    """(name, bytes) for a file, every supported file under a folder, or every entry of a zip.

    Problems with one entry are yielded as a DocumentError in place of its bytes, so the
    caller can report them and go on with the rest.
    """
    limits = limits or UploadLimits()
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        if len(files) > limits.max_files:
            yield path.name, DocumentError(path.name, f"folder holds {len(files)} files, over the "
                                                      f"limit of {limits.max_files}")
            return
        for file in files:
            yield from iter_path(file, limits) if file.suffix.lower() == ".zip" else [
                (str(file.relative_to(path)), _read(file, limits))]
        return
    if not path.exists():
        yield path.name, DocumentError(path.name, "no such file")
        return
    if path.suffix.lower() == ".zip":
        data = _read(path, limits, zip_ok=True)
        if isinstance(data, DocumentError):
            yield path.name, data
            return
        yield from iter_zip(path.name, data, limits)
        return
    yield path.name, _read(path, limits)


def _read(path: Path, limits: UploadLimits, zip_ok: bool = False) -> bytes | DocumentError:
    cap = limits.max_zip_total_bytes if zip_ok else limits.max_file_bytes
    try:
        size = path.stat().st_size
        if size > cap:
            return DocumentError(path.name, f"file is {size / 1e6:.1f} MB, over the {cap / 1e6:.0f} MB limit",
                                 "split it into parts")
        return path.read_bytes()
    except OSError as error:
        return DocumentError(path.name, f"cannot read the file ({error.strerror})")


def iter_zip(name: str, data: bytes, limits: UploadLimits | None = None) -> Iterator[tuple[str, bytes | DocumentError]]:
    """The supported entries of a zip archive, checked against the limits before extraction."""
    limits = limits or UploadLimits()
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        yield name, DocumentError(name, "not a valid zip archive")
        return
    entries = [e for e in archive.infolist() if not e.is_dir()]
    declared = sum(e.file_size for e in entries)
    if len(entries) > limits.max_zip_entries or declared > limits.max_zip_total_bytes:
        yield name, DocumentError(name, f"archive holds {len(entries)} files, {declared / 1e6:.0f} MB "
                                        f"unpacked: over the limits ({limits.max_zip_entries} files, "
                                        f"{limits.max_zip_total_bytes / 1e6:.0f} MB)")
        return
    for entry in entries:
        entry_name = f"{name}/{entry.filename}"
        if PurePosixPath(entry.filename).name.startswith(".") or "__MACOSX" in entry.filename:
            continue
        if entry.file_size > limits.max_file_bytes:
            yield entry_name, DocumentError(entry_name, f"entry is {entry.file_size / 1e6:.1f} MB, over "
                                                        f"the {limits.max_file_bytes / 1e6:.0f} MB limit")
            continue
        try:
            # Read at most one byte past the cap: a lying header cannot inflate past it.
            with archive.open(entry) as handle:
                content = handle.read(limits.max_file_bytes + 1)
        except (zipfile.BadZipFile, RuntimeError, OSError) as error:
            yield entry_name, DocumentError(entry_name, f"cannot extract ({error})",
                                            "encrypted zip entries are not supported")
            continue
        if len(content) > limits.max_file_bytes:
            yield entry_name, DocumentError(entry_name, "entry is over the size limit")
            continue
        yield entry_name, content


# --- formats --------------------------------------------------------------------------------

BYTE_ORDER_MARKS = ((b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"),
                    (b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))
"""Longest first: a UTF-32 little-endian mark starts with UTF-16's."""


def _decode(source: str, data: bytes) -> str:
    for mark, encoding in BYTE_ORDER_MARKS:  # a marked file says its encoding (UTF-16/32 hold NUL bytes)
        if data.startswith(mark):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError as error:
                raise DocumentError(source, f"starts with a {encoding} byte order mark but is not {encoding}",
                                    "save it as UTF-8") from error
    if b"\x00" in data[:8192]:
        raise DocumentError(source, "looks like a binary file, not text", "upload the original document")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError as error:
        raise DocumentError(source, "is not readable text", "save it as UTF-8") from error
    # cp1252 decodes almost anything; many control characters mean it was not text at all.
    controls = sum(1 for ch in text[:8192] if ord(ch) < 32 and ch not in "\r\n\t\f")
    if controls > 0.01 * min(len(text), 8192):
        raise DocumentError(source, "looks like a binary file, not text", "upload the original document")
    return text


def _title(source: str) -> str:
    return PurePosixPath(source).stem.replace("_", " ").replace("-", " ").strip()


def _load_text(source: str, data: bytes) -> Document:
    return Document(source, _decode(source, data), _title(source), "text", content_hash=content_hash(data))


def _heading_sections(headings: list[tuple[int, int, str]], length: int) -> tuple[Span, ...]:
    """Sections from (offset, level, heading text): each runs to the next heading, labelled
    with its heading path ("Guide > Install")."""
    spans, path = [], []
    for i, (offset, level, text) in enumerate(headings):
        path = [p for p in path if p[0] < level] + [(level, text)]
        end = headings[i + 1][0] if i + 1 < len(headings) else length
        spans.append(Span(offset, end, " > ".join(t for _, t in path)))
    if headings and headings[0][0] > 0:
        spans.insert(0, Span(0, headings[0][0], ""))
    return tuple(spans)


def _load_markdown(source: str, data: bytes) -> Document:
    from markdown_it import MarkdownIt

    text = _decode(source, data)
    line_starts = [0]
    for line in text.splitlines(keepends=True):
        line_starts.append(line_starts[-1] + len(line))
    tokens = MarkdownIt("commonmark").parse(text)
    headings = []
    for i, token in enumerate(tokens):
        if token.type == "heading_open" and token.map:
            inline = tokens[i + 1].content if i + 1 < len(tokens) else ""
            headings.append((line_starts[token.map[0]], int(token.tag[1]), inline.strip()))
    title = next((h[2] for h in headings if h[1] == 1), "") or _title(source)
    return Document(source, text, title, "markdown", sections=_heading_sections(headings, len(text)),
                    content_hash=content_hash(data))


def _load_html(source: str, data: bytes) -> Document:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(_decode(source, data), "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    strip_boilerplate(soup)
    mains = soup.find_all(lambda tag: tag.name == "main" or tag.get("role") == "main")
    root = mains[0] if len(mains) == 1 else soup  # a page that marks its main content: only that
    parts, headings, offset, previous = [], [], 0, ""
    blocks = root.find_all(["h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "pre", "td", "th",
                            "blockquote", "dt", "dd", "figcaption", "caption"])
    for block in blocks:
        if block.find_parent(["p", "li", "pre", "td", "th", "blockquote", "dd"]) is not None:
            continue  # its text is already in the enclosing block
        piece = block.get_text(" ", strip=True)
        if not piece or _is_link_list(block, piece):
            continue
        if block.name[0] == "h" and block.name[1:].isdigit():
            headings.append((offset, int(block.name[1]), piece))
        if block.name == "dd" and previous == "dt" and parts:  # a term and its definition: one paragraph
            parts[-1] += "\n" + piece
            offset += len(piece) + 1
        else:
            parts.append(piece)
            offset += len(piece) + 2
        previous = block.name
    if not parts:  # no block structure: take all visible text
        parts = [soup.get_text("\n", strip=True)]
    text = "\n\n".join(parts)
    return Document(source, text, title or next((h[2] for h in headings), "") or _title(source), "html",
                    sections=_heading_sections(headings, len(text)), content_hash=content_hash(data))


BOILERPLATE_TAGS = ("script", "style", "noscript", "template", "svg", "nav", "header", "footer", "aside",
                    "button", "form", "menu")
BOILERPLATE_ROLES = frozenset(("navigation", "banner", "contentinfo", "search", "menu", "menubar", "toolbar"))
BOILERPLATE_NAMES = re.compile(
    r"^(g?toc|nav|navbar|navheader|navfooter|navigation|breadcrumbs?|sidebar|side-?nav|menu|menubar|"
    r"skip-?(link|nav)|site-?(header|footer)|page-?footer|footer|header)$", re.IGNORECASE)
"""Class or id names that mark page furniture: DocBook's ``navheader``/``navfooter`` and "nav"
tables (Next / Previous / Up), tables of contents, site menus."""
PERMALINK_MARKS = frozenset(("#", "¶", "§", "🔗"))
LINK_LIST_CHARS = 120
"""A block this short that is all link text is a menu entry or a "Next: ..." line, not content."""


def strip_boilerplate(soup) -> None:
    """Remove what every page of a site repeats around its content: navigation, headers and
    footers, tables of contents, menus, buttons and heading permalinks. Left in, such text fills
    the index with short chunks that match many queries (measured on the manuals benchmark)."""
    def is_furniture(tag) -> bool:
        if tag.name in BOILERPLATE_TAGS or (tag.get("role") or "").lower() in BOILERPLATE_ROLES:
            return True
        names = [*(tag.get("class") or []), tag.get("id") or ""]
        return any(BOILERPLATE_NAMES.match(name) for name in names if name)

    for tag in soup.find_all(is_furniture):
        if not tag.decomposed:
            tag.decompose()
    for link in soup.find_all("a"):
        if not link.decomposed and link.get_text(strip=True) in PERMALINK_MARKS:
            link.decompose()


def _is_link_list(block, text: str) -> bool:
    """A short block whose words are all inside links (a menu entry, "Next: Chapter 3")."""
    if len(text) > LINK_LIST_CHARS:
        return False
    linked = sum(len(a.get_text(" ", strip=True)) for a in block.find_all("a", href=True))
    return linked >= 0.9 * len(text)


def _check_docx_size(source: str, data: bytes, limits: UploadLimits) -> None:
    """Refuse a DOCX whose XML would unpack past the limit, from its zip directory, before parsing
    (python-docx's memory and time grow with the unpacked size: a DOCX bomb)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as error:
        raise DocumentError(source, "not a readable DOCX file", "re-save it from Word as .docx") from error
    declared = sum(e.file_size for e in archive.infolist() if e.filename.lower().endswith((".xml", ".rels")))
    if declared > limits.max_docx_xml_bytes:
        raise DocumentError(source, f"unpacks to {declared / 1e6:.0f} MB of XML, over the limit of "
                                    f"{limits.max_docx_xml_bytes / 1e6:.0f} MB", "split the document into parts")
    # A header can lie: inflate the main part with a cap one byte past the limit.
    try:
        with archive.open("word/document.xml") as part:
            if len(part.read(limits.max_docx_xml_bytes + 1)) > limits.max_docx_xml_bytes:
                raise DocumentError(source, "unpacks to more XML than its header says, over the limit",
                                    "split the document into parts")
    except KeyError as error:
        raise DocumentError(source, "not a readable DOCX file (no word/document.xml)",
                            "re-save it from Word as .docx") from error
    except (zipfile.BadZipFile, RuntimeError, OSError, EOFError) as error:
        raise DocumentError(source, "not a readable DOCX file", "re-save it from Word as .docx") from error


def _load_docx(source: str, data: bytes) -> Document:
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as error:
        raise DocumentError(source, "not a readable DOCX file", "re-save it from Word as .docx") from error
    parts, headings, offset = [], [], 0
    for paragraph in document.paragraphs:
        piece = paragraph.text.strip()
        if not piece:
            continue
        style = (paragraph.style.name if paragraph.style is not None else "") or ""
        if style.startswith("Heading") and style[7:].strip().isdigit():
            headings.append((offset, int(style[7:]), piece))
        elif style == "Title":
            headings.append((offset, 1, piece))
        parts.append(piece)
        offset += len(piece) + 2
    for table in document.tables:
        for row in table.rows:
            piece = " | ".join(cell.text.strip() for cell in row.cells if cell.text.strip())
            if piece:
                parts.append(piece)
                offset += len(piece) + 2
    text = "\n\n".join(parts)
    title = (document.core_properties.title or "").strip() or next((h[2] for h in headings), "")
    return Document(source, text, title or _title(source), "docx",
                    sections=_heading_sections(headings, len(text)), content_hash=content_hash(data))


PAGE_EDGE_LINES = 2
"""Lines at the top and at the bottom of a page where running headers, footers and page numbers sit."""


def _line_key(line: str) -> str:
    """A header line with its page number or date digits masked, so "Guide - page 3" matches "page 4"."""
    return re.sub(r"\d+", "#", " ".join(line.split())).casefold()


def repeated_page_lines(pages_text: list[str]) -> frozenset[str]:
    """Keys of the lines that sit at a page's top or bottom edge on at least half of the pages
    (and at least 3): running headers and footers, which would otherwise start or end a chunk on
    every page and match every query that names the document."""
    if len(pages_text) < 3:
        return frozenset()
    seen: dict[str, int] = {}
    for page in pages_text:
        lines = [line for line in page.splitlines() if line.strip()]
        edges = {_line_key(line) for line in lines[:PAGE_EDGE_LINES] + lines[-PAGE_EDGE_LINES:]}
        for key in edges:
            seen[key] = seen.get(key, 0) + 1
    needed = max(3, (len(pages_text) + 1) // 2)
    return frozenset(key for key, count in seen.items() if count >= needed)


def without_lines(page: str, keys: frozenset[str]) -> str:
    """The page without its edge lines whose keys are in ``keys`` (lines in the middle stay)."""
    if not keys:
        return page
    lines = page.splitlines()
    content = [i for i, line in enumerate(lines) if line.strip()]
    edges = set(content[:PAGE_EDGE_LINES] + content[-PAGE_EDGE_LINES:])
    return "\n".join(line for i, line in enumerate(lines) if i not in edges or _line_key(line) not in keys)


def _load_pdf(source: str, data: bytes, limits: UploadLimits) -> Document:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise DocumentError(source, "the PDF is encrypted", "remove the password and upload it again")
        if len(reader.pages) > limits.max_pdf_pages:
            raise DocumentError(source, f"has {len(reader.pages):,} pages, over the limit of {limits.max_pdf_pages:,}",
                                "split it into parts")
        pages_text, length = [], 0
        for page in reader.pages:  # stop as soon as the text is over the limit, not after every page
            pages_text.append(page.extract_text() or "")
            length += len(pages_text[-1])
            if length > limits.max_text_chars:
                raise DocumentError(source, f"holds more than {limits.max_text_chars:,} characters of text",
                                    "split it into parts")
    except DocumentError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError,
            RecursionError, OSError) as error:
        if "crypt" in str(error).lower():
            raise DocumentError(source, "the PDF is encrypted",
                                "remove the password and upload it again") from error
        raise DocumentError(source, "the PDF is damaged and cannot be read",
                            "re-export it from the original program") from error
    repeated = repeated_page_lines(pages_text)
    parts, pages, offset = [], [], 0
    for number, page_text in enumerate(pages_text, start=1):
        page_text = without_lines(page_text, repeated).strip()
        pages.append(Span(offset, offset + len(page_text) + 2, str(number)))
        parts.append(page_text)
        offset += len(page_text) + 2
    text = "\n\n".join(parts)
    metadata_title = ""
    try:
        metadata_title = (reader.metadata.title or "") if reader.metadata else ""
    except Exception:  # metadata of a half-broken PDF is optional
        metadata_title = ""
    return Document(source, text, metadata_title.strip() or _title(source), "pdf", pages=tuple(pages),
                    content_hash=content_hash(data))
