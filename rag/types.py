"""Plain data types shared by every pipeline stage.

Each stage (ingest, chunk, index, retrieve, generate, cite, evaluate) passes these
frozen dataclasses to the next. They hold data only: no I/O, no heavy imports.
`Passage.to_json` is the one JSON shape of a passage, so every output that shows one
(`rag search --json`, `rag ask --json`, eval run files) shows the same keys;
`IndexReport.to_json` is the one shape of an indexing run (`rag index --json`).
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any, Literal

SectionKind = Literal["body", "comments", "boilerplate"]


@dataclass(frozen=True)
class Section:
    """A labelled character span of a document's text."""

    kind: SectionKind
    start: int
    end: int


@dataclass(frozen=True)
class Extraction:
    """What a format reader gets out of one document: the canonical text and what the format states.

    Metadata left None is looked for in the text (bylines, date lines); `comments_start`
    marks where a reader-comment section that the format delimits begins (HTML);
    `page_starts` holds the offset of each page, page 1 first (PDF).
    """

    text: str
    title: str | None = None
    author: str | None = None
    date: str | None = None  # ISO date, YYYY-MM-DD
    outlet: str | None = None
    comments_start: int | None = None
    page_starts: tuple[int, ...] = ()


@dataclass(frozen=True)
class Document:
    """One source document: a file, or one row of a collection file (`file.csv#row=17`).

    `text` is the canonical text: the decoded file (BOM removed, NFC-normalised) for
    text files, the extracted article or page text for HTML and PDF, the row's title
    and text for collections. Every span in the system (sections, chunks, citations)
    is an offset into this string.
    """

    source: str  # path as indexed: relative to the cwd of `rag index`, else absolute; `#row=N` for rows
    text: str
    sha256: str  # hash of `text`, used to detect changes and copies
    title: str
    author: str | None = None
    date: str | None = None  # ISO date, YYYY-MM-DD
    outlet: str | None = None
    sections: tuple[Section, ...] = ()
    page_starts: tuple[int, ...] = ()  # offset of each page (PDF); empty for unpaged formats

    def page_at(self, offset: int) -> int | None:
        """The 1-based page holding `offset`, or None for an unpaged document."""
        if not self.page_starts:
            return None
        return bisect_right(self.page_starts, offset)  # page_starts[0] == 0, so at least 1


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
    page: int | None = None  # 1-based page of a PDF; chunks never cross a page


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
    page: int | None = None  # 1-based page of a PDF (merged chunks share it)

    def to_json(self, n: int) -> dict[str, Any]:
        """The passage in JSON output, as number `n` (1-based, what citations' `[n]` point to).

        One shape for every output that lists passages. Field names are fixed; fields may be added.
        """
        return {
            "n": n,
            "source": self.source,
            "title": self.title,
            "start": self.start,
            "end": self.end,
            "text": self.text,
            "score": round(self.score, 6),
            "section": self.section,
            "outlet": self.outlet,
            "date": self.date,
            "page": self.page,
        }


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
    page: int | None = None  # 1-based page of a PDF source


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

    def to_json(self, index_dir: str) -> dict[str, Any]:
        """The run in `rag index --json`: what changed, what was skipped and why, and the totals.

        The index directory is passed in because the report describes a run, not where it wrote.
        """
        return {
            "added": self.added,
            "updated": self.updated,
            "removed": self.removed,
            "unchanged": self.unchanged,
            "duplicates": [{"copy": copy, "original": original} for copy, original in self.duplicates],
            "skipped": [{"path": path, "reason": reason} for path, reason in self.skipped],
            "chunks": self.chunks_total,
            "chunks_embedded": self.chunks_embedded,
            "seconds": round(self.seconds, 3),
            "index_dir": index_dir,
        }
