"""Plain data types shared by every pipeline stage.

Each stage (ingest, chunk, index, retrieve, generate, cite, evaluate) passes these
frozen dataclasses to the next. They hold data only: no I/O, no heavy imports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

SectionKind = Literal["body", "comments", "boilerplate"]


@dataclass(frozen=True)
class Section:
    """A labelled character span of a document's text."""

    kind: SectionKind
    start: int
    end: int


@dataclass(frozen=True)
class Document:
    """One decoded source file.

    `text` is the file's decoded text (BOM removed, NFC-normalised); every span in
    the system (sections, chunks, citations) is an offset into this string.
    """

    source: str  # path as indexed: relative to the cwd of `rag index`, else absolute
    text: str
    sha256: str  # hash of `text`, used to detect changes and copies
    title: str
    author: str | None = None
    date: str | None = None  # ISO date, YYYY-MM-DD
    outlet: str | None = None
    sections: tuple[Section, ...] = ()


@dataclass(frozen=True)
class Chunk:
    """A retrievable piece of a document: `document.text[start:end] == text`."""

    id: str  # content hash of (document hash, span, chunking settings)
    source: str
    start: int
    end: int
    text: str
    section: SectionKind
    ordinal: int  # position of the chunk within its document
    doc_sha256: str
    title: str
    outlet: str | None = None
    date: str | None = None
    author: str | None = None


@dataclass(frozen=True)
class Passage:
    """A retrieved span: one or more merged chunks of the same document."""

    source: str
    start: int
    end: int
    text: str
    score: float
    title: str
    section: SectionKind = "body"
    outlet: str | None = None
    date: str | None = None
    author: str | None = None
    chunk_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class SearchFilters:
    """Optional metadata filters for retrieval. Dates are ISO strings, inclusive."""

    sources: tuple[str, ...] = ()
    outlet: str | None = None
    date_from: str | None = None
    date_to: str | None = None
    include_comments: bool = False


@dataclass(frozen=True)
class Citation:
    """A verified reference from an answer sentence to passage `n` (1-based)."""

    n: int
    source: str
    title: str
    start: int
    end: int
    quote: str


@dataclass
class IndexReport:
    """What one `rag index` run changed."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (copy, original)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    chunks_total: int = 0
    chunks_embedded: int = 0
    seconds: float = 0.0
