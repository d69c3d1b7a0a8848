"""Turn one input file into Documents with canonical text, metadata and sections.

Supported formats are the `READERS` registry, one entry per suffix: text files are
decoded here (`decode_file`); saved web pages, PDFs and collections (CSV/JSONL, one
article per row) are read by `rag.ingest.formats`.
`read_documents` turns one file into its documents (a collection gives one per row,
`file.csv#row=17`), adding hash, title, metadata (`rag.ingest.metadata`) and section labels
(`rag.ingest.cleaning`); `read_source` gives the document behind any indexed source, the one
way to get the canonical text that every span in the system points into.
Whitespace is never collapsed in the canonical text; `normalize_whitespace` does that
for display and embedding only. Finding the input files is `rag.ingest.discovery`'s
job; chunking and indexing live elsewhere.
"""

from __future__ import annotations

import errno
import hashlib
import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from rag.errors import InputError
from rag.ingest.cleaning import label_sections
from rag.ingest.formats.collection import CollectionKind, CollectionOptions
from rag.ingest.metadata import extract_metadata, parse_date
from rag.types import Document, Extraction, Section

Format = Literal["text", "html", "pdf", "csv", "jsonl"]

BYTES_PER_MB = 1024 * 1024
BINARY_SNIFF_BYTES = 8192
MAX_CONTROL_CHAR_SHARE = 0.10  # random bytes decoded as latin-1 are ~23 % controls
TITLE_MAX_CHARS = 120

_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_ALLOWED_CONTROLS = frozenset("\t\n\r\f\v")


def read_limited(path: Path, max_bytes: int) -> bytes:
    """The raw bytes of a file; refuses files over the size limit before reading them."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise InputError(
                f"{path.name} is {_format_mb(size)} MB, over the {_format_mb(max_bytes)} MB limit "
                "(max_file_mb) — split it or raise RAG_MAX_FILE_MB"
            )
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as error:
        raise InputError(f"Cannot read {path}: {os_reason(error)} — check the file") from error
    if len(data) > max_bytes:
        raise InputError(
            f"{path.name} grew past the {_format_mb(max_bytes)} MB limit while reading — try again"
        )
    return data


def decode_file(path: Path, max_bytes: int) -> str:
    """The canonical text of a text file: decoded, NFC-normalised, with \\n line endings.

    Refuses oversized files before reading them and files that look binary.
    Decoding tries UTF-8 (with or without BOM), UTF-16 with BOM, then cp1252 and latin-1.
    """
    return decode_text(read_limited(path, max_bytes), path.name)


def decode_text(data: bytes, name: str) -> str:
    """`data` decoded as in `decode_file`; InputError when it looks binary."""
    is_utf16 = data.startswith(_UTF16_BOMS)
    if not is_utf16 and b"\x00" in data[:BINARY_SNIFF_BYTES]:
        raise InputError(f"{name} looks binary (it contains NUL bytes) — only text files can be indexed")
    text = data.decode("utf-16") if is_utf16 else _decode_bytes(data)
    if _control_char_share(text[:BINARY_SNIFF_BYTES]) > MAX_CONTROL_CHAR_SHARE:
        raise InputError(f"{name} looks binary (mostly control characters) — only text files can be indexed")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return unicodedata.normalize("NFC", text)


def _decode_bytes(data: bytes) -> str:
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def _control_char_share(text: str) -> float:
    if not text:
        return 0.0
    controls = sum(1 for char in text if unicodedata.category(char) == "Cc" and char not in _ALLOWED_CONTROLS)
    return controls / len(text)


def _format_mb(size: float) -> str:
    megabytes = size / BYTES_PER_MB
    return f"{megabytes:.0f}" if megabytes >= 10 else f"{megabytes:.1f}".removesuffix(".0")


def os_reason(error: OSError) -> str:
    """Why a file could not be read or looked at, in a few words for a one-line message."""
    if error.errno == errno.ELOOP:
        return "symlink loop"
    if error.errno == errno.EACCES:
        return "permission denied"
    if error.errno == errno.ENOENT:
        return "broken symlink or missing file"
    return error.strerror or type(error).__name__


# Supported formats by lower-case suffix: plain text, a saved web page, a PDF, or a
# collection of articles (one per row, see rag.ingest.formats.collection).
READERS: dict[str, Format] = {
    ".txt": "text",
    ".md": "text",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
    ".csv": "csv",
    ".tsv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}


def supported_list() -> str:
    """The supported suffixes, for messages that name what can be indexed."""
    return ", ".join(sorted(READERS))


_WHITESPACE_RUN = re.compile(r"[^\S\n]+")
_SPACED_NEWLINES = re.compile(r" ?\n\s*")
_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))


def normalize_whitespace(text: str) -> str:
    """Collapse blanks (including no-break and thin spaces) for display and embedding.

    Paragraph breaks survive as a single blank line; zero-width characters go.
    Never applied to the canonical text that spans point into.
    """
    text = _WHITESPACE_RUN.sub(" ", text.translate(_ZERO_WIDTH))
    text = _SPACED_NEWLINES.sub(lambda match: "\n\n" if match.group().count("\n") > 1 else "\n", text)
    return text.strip()


def _title_of(text: str) -> str:
    first_line = next((line for line in text.split("\n") if line.strip()), "")
    title = normalize_whitespace(first_line)
    if len(title) <= TITLE_MAX_CHARS:
        return title
    return title[:TITLE_MAX_CHARS].rsplit(" ", 1)[0] + " …"


def extract(path: Path, source: str, max_bytes: int) -> Extraction:
    """The canonical text and stated metadata of one single-document file (text, HTML or PDF)."""
    kind = READERS.get(path.suffix.lower())
    if kind == "html":
        from rag.ingest.formats.html import extract_html

        return extract_html(read_limited(path, max_bytes), path.name)
    if kind == "pdf":
        from rag.ingest.formats.pdf import extract_pdf

        return extract_pdf(read_limited(path, max_bytes), path.name)
    if kind == "text":
        return Extraction(decode_file(path, max_bytes))
    raise InputError(f"{source}: unsupported file type (supported: {supported_list()}) — convert it to text")


def read_document(path: Path, source: str, max_bytes: int) -> Document:
    """Read one single-document file and describe it; raises InputError for files that cannot be indexed."""
    return document_from(extract(path, source, max_bytes), source)


def collection_kind(path: Path, options: CollectionOptions) -> CollectionKind | None:
    """How `path` is read as a collection (forced by `options.format`, else by suffix), or None."""
    kind = options.format or READERS.get(path.suffix.lower())
    return kind if kind in ("csv", "jsonl") else None


def read_documents(
    path: Path, source: str, max_bytes: int, options: CollectionOptions
) -> tuple[list[Document], list[tuple[str, str]]]:
    """The documents of one file: itself, or each row of a collection (`source#row=N`).

    Returns the documents and (row source, reason) for rows that were skipped;
    raises InputError when the file as a whole cannot be read.
    """
    from rag.ingest.formats.collection import read_collection

    kind = collection_kind(path, options)
    if kind is None:
        return [read_document(path, source, max_bytes)], []
    collection = read_collection(decode_file(path, max_bytes), path.name, kind, options)
    documents = [document_from(extraction, row_source(source, row)) for row, extraction in collection.rows]
    return documents, [(row_source(source, row), reason) for row, reason in collection.skipped]


_ROW_FRAGMENT = re.compile(r"^(?P<path>.+)#row=(?P<row>\d+)$")


def row_source(file_source: str, row: int) -> str:
    """The source of one row of a collection file: `file.csv#row=17`."""
    return f"{file_source}#row={row}"


def source_file(source: str) -> str:
    """The file part of a source: `file.csv` for `file.csv#row=17`, else the source itself."""
    match = _ROW_FRAGMENT.match(source)
    return match["path"] if match else source


def read_source(source: str, cwd: Path, max_bytes: int, options: CollectionOptions | None = None) -> Document:
    """The document behind a source as indexed: the one way to get the canonical text of a span.

    `source` is a path (relative to `cwd` unless absolute), optionally with `#row=N` for a
    collection row; `options` are the ones the collection was indexed with
    (`rag.index.manifest.Manifest.collection_options`). Raises InputError when the file or row is gone.
    """
    match = _ROW_FRAGMENT.match(source)
    path = cwd / (match["path"] if match else source)
    if match is None:
        return read_document(path, source, max_bytes)
    options = options or CollectionOptions()
    if collection_kind(path, options) is None:
        raise InputError(
            f"{source}: {match['path']} is read as a collection only with the --format it was indexed with"
        )
    documents, _ = read_documents(path, match["path"], max_bytes, options)
    found = next((document for document in documents if document.source == source), None)
    if found is None:
        raise InputError(f"{source}: {match['path']} has no such row any more — run `rag index` again")
    return found


def document_from(extraction: Extraction, source: str) -> Document:
    """A Document from what a reader extracted: metadata completed from the text, sections labelled.

    Metadata the format states wins; what it leaves open is looked for in the text as
    for text files (`extract_metadata`). The part before `comments_start` is labelled
    by `rag.ingest.cleaning`, the rest is one comments section, and sections are cut at page
    starts, so that no chunk crosses a page.
    """
    text = extraction.text
    if not text.strip():
        raise InputError(f"{source} is an empty file — add text to it or leave it out")
    found = extract_metadata(text)
    body_end = len(text) if extraction.comments_start is None else extraction.comments_start
    sections = label_sections(text[:body_end])
    if body_end < len(text):
        sections = (*sections, Section("comments", body_end, len(text)))
    return Document(
        source=source,
        text=text,
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        title=extraction.title or _title_of(text),
        author=extraction.author or found["author"],
        date=(parse_date(extraction.date) if extraction.date else None) or found["date"],
        outlet=extraction.outlet or found["outlet"],
        sections=split_at_pages(sections, extraction.page_starts),
        page_starts=extraction.page_starts,
    )


def split_at_pages(sections: Sequence[Section], page_starts: Sequence[int]) -> tuple[Section, ...]:
    """`sections` cut wherever a page starts inside one."""
    result: list[Section] = []
    for section in sections:
        start = section.start
        for page_start in page_starts:
            if start < page_start < section.end:
                result.append(Section(section.kind, start, page_start))
                start = page_start
        result.append(Section(section.kind, start, section.end))
    return tuple(result)
