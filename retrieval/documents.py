"""What a loaded document is: its text, with pages and headings as character spans."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from tunewise.errors import TunewiseError


class DocumentError(TunewiseError):
    """A file that cannot be ingested. ``str()`` names the file, the problem and what to do."""

    def __init__(self, source: str, problem: str, hint: str = ""):
        self.source, self.problem = source, problem
        super().__init__(f"{source}: {problem}", hint)

    def __str__(self) -> str:
        return self.message + (f" ({self.hint})" if self.hint else "")

    def __reduce__(self):  # crosses the parsing worker's process boundary whole
        return type(self), (self.source, self.problem, self.hint)


@dataclass(frozen=True)
class Span:
    """A labelled stretch of the document's text: a page number or a heading path."""

    start: int
    end: int
    label: str


@dataclass(frozen=True)
class Document:
    """Extracted text of one file. Offsets in ``pages`` and ``sections`` index into ``text``."""

    source: str
    """The file name as uploaded (sanitised), shown in citations."""
    text: str
    title: str = ""
    kind: str = "text"
    pages: tuple[Span, ...] = ()
    sections: tuple[Span, ...] = ()
    content_hash: str = field(default="")

    def __post_init__(self) -> None:
        if not self.content_hash:
            object.__setattr__(self, "content_hash", content_hash(self.text.encode("utf-8")))

    @property
    def doc_id(self) -> str:
        """Documents are keyed by content: the same file uploaded twice is the same document."""
        return self.content_hash[:32]

    def page_at(self, offset: int) -> int | None:
        for span in self.pages:
            if span.start <= offset < span.end:
                return int(span.label)
        return None

    def section_at(self, offset: int) -> str:
        for span in self.sections:
            if span.start <= offset < span.end:
                return span.label
        return ""


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def location(source: str, page: int | None = None, section: str | None = None) -> str:
    """Where a passage is, as every face shows it: "report.pdf, page 3 · Results"."""
    return source + (f", page {page}" if page else "") + (f" · {section}" if section else "")
