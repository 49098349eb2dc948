"""Turn uploaded files into :class:`Document`s: PDF, DOCX, HTML, Markdown and plain text.

Libraries (all permissive licences, all maintained): pypdf (BSD-3) for PDF, python-docx (MIT)
for DOCX, BeautifulSoup 4 (MIT) for HTML, markdown-it-py (MIT) to find Markdown headings the
way a Markdown renderer does (a '#' inside a code block is not a heading).

Markdown and plain text keep the file's own characters, so a span in the extracted text is a
span in the file. Every failure is a :class:`DocumentError` naming the file and what to do.
"""

from __future__ import annotations

import io
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
    for tag in soup(["script", "style", "noscript", "template", "nav", "svg"]):
        tag.decompose()
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    parts, headings, offset = [], [], 0
    blocks = soup.find_all(["h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "pre", "td", "th",
                            "blockquote", "dt", "dd", "figcaption", "caption"])
    for block in blocks:
        if block.find_parent(["p", "li", "pre", "td", "th", "blockquote", "dd"]) is not None:
            continue  # its text is already in the enclosing block
        piece = block.get_text(" ", strip=True)
        if not piece:
            continue
        if block.name[0] == "h" and block.name[1:].isdigit():
            headings.append((offset, int(block.name[1]), piece))
        parts.append(piece)
        offset += len(piece) + 2
    if not parts:  # no block structure: take all visible text
        parts = [soup.get_text("\n", strip=True)]
    text = "\n\n".join(parts)
    return Document(source, text, title or next((h[2] for h in headings), "") or _title(source), "html",
                    sections=_heading_sections(headings, len(text)), content_hash=content_hash(data))


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
    parts, pages, offset = [], [], 0
    for number, page_text in enumerate(pages_text, start=1):
        page_text = page_text.strip()
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
