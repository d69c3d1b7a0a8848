"""`rag show`: the canonical text of a cited span, with its surroundings, read from the source.

A citation names a source and a character span of its canonical text: the decoded
file, the text extracted from an HTML page or a PDF, or a collection row. A reader
cannot count characters in an HTML file, so `show_span` reads the source the way the
index did (`rag.ingest.read.read_source`, with the collection options recorded in the
index manifest) and cuts the span and some context out of it. It also says whether
the source has changed since it was indexed, in which case the span may point
elsewhere. It never prints; the CLI renders the result.
Left out: opening the source in a viewer, and mapping spans back to HTML markup.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rag.errors import InputError
from rag.settings import Settings

DEFAULT_CONTEXT_CHARS = 300


@dataclass(frozen=True)
class SpanView:
    """A span of a source's canonical text with up to `context` characters on each side."""

    source: str
    start: int
    end: int
    text: str  # exactly canonical_text[start:end]
    before: str
    after: str
    title: str
    page: int | None  # PDF page holding `start`
    indexed: bool  # the source is in the index
    changed: bool  # its text differs from what was indexed: the span may point elsewhere


def show_span(
    settings: Settings,
    source: str,
    start: int,
    end: int,
    context: int = DEFAULT_CONTEXT_CHARS,
    cwd: Path | None = None,
) -> SpanView:
    """Read `source` (relative to `cwd`, default the current directory) and cut out `start:end`.

    Raises InputError when the source cannot be read or the span lies outside its text.
    """
    from rag.index.reader import published_manifest
    from rag.ingest.read import read_source

    manifest = published_manifest(settings)
    options = manifest.collection_options(source) if manifest is not None else None
    max_bytes = int(settings.max_file_mb * 1024 * 1024)
    document = read_source(source, cwd or Path.cwd(), max_bytes, options)
    text = document.text
    if not 0 <= start < end <= len(text):
        raise InputError(
            f"{start}–{end} is not a span of {source} (its text has {len(text)} characters) — "
            "copy START and END from the citation"
        )
    entry = manifest.files.get(source) if manifest is not None else None
    return SpanView(
        source=source,
        start=start,
        end=end,
        text=text[start:end],
        before=text[min(start, _word_start(text, max(0, start - context))) : start],
        after=text[end : max(end, _word_end(text, min(len(text), end + context)))],
        title=document.title,
        page=document.page_at(start),
        indexed=entry is not None,
        changed=entry is not None and entry.sha256 != document.sha256,
    )


def _word_start(text: str, position: int) -> int:
    """`position` moved forward to the start of a word, so that context does not open mid-word."""
    if position == 0 or text[position - 1].isspace():
        return position
    space = text.find(" ", position)
    return position if space < 0 else space + 1


def _word_end(text: str, position: int) -> int:
    """`position` moved back to the end of a word."""
    if position == len(text) or text[position].isspace():
        return position
    space = text.rfind(" ", 0, position)
    return position if space < 0 else space
