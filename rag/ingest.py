"""Find input files, decode them into canonical text, and read their metadata.

`discover` expands the paths given to `rag index` into supported files (plus the reasons
others were skipped); `decode_file` turns one file into the canonical text that every
span in the system points into; `read_document` adds hash, title, metadata and section
labels. Supported formats are the `READERS` registry: one entry per suffix.
Whitespace is never collapsed in the canonical text; `normalize_whitespace` does that
for display and embedding only. Chunking and indexing live elsewhere.
"""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import os
import re
import stat
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rag.cleaning import OUTLETS, label_sections, outlet_of
from rag.errors import InputError
from rag.types import Document

BYTES_PER_MB = 1024 * 1024
BINARY_SNIFF_BYTES = 8192
MAX_CONTROL_CHAR_SHARE = 0.10  # random bytes decoded as latin-1 are ~23 % controls
TITLE_MAX_CHARS = 120
METADATA_HEAD_LINES = 12  # bylines and date lines are looked for near the top only

_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_ALLOWED_CONTROLS = frozenset("\t\n\r\f\v")


def decode_file(path: Path, max_bytes: int) -> str:
    """The canonical text of a text file: decoded, NFC-normalised, with \\n line endings.

    Refuses oversized files before reading them and files that look binary.
    Decoding tries UTF-8 (with or without BOM), UTF-16 with BOM, then cp1252 and latin-1.
    """
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
        raise InputError(f"Cannot read {path}: {_os_reason(error)} — check the file") from error
    if len(data) > max_bytes:
        raise InputError(
            f"{path.name} grew past the {_format_mb(max_bytes)} MB limit while reading — try again"
        )
    is_utf16 = data.startswith(_UTF16_BOMS)
    if not is_utf16 and b"\x00" in data[:BINARY_SNIFF_BYTES]:
        raise InputError(f"{path.name} looks binary (it contains NUL bytes) — only text files can be indexed")
    text = data.decode("utf-16") if is_utf16 else _decode_bytes(data)
    if _control_char_share(text[:BINARY_SNIFF_BYTES]) > MAX_CONTROL_CHAR_SHARE:
        raise InputError(
            f"{path.name} looks binary (mostly control characters) — only text files can be indexed"
        )
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


def _os_reason(error: OSError) -> str:
    if error.errno == errno.ELOOP:
        return "symlink loop"
    if error.errno == errno.EACCES:
        return "permission denied"
    if error.errno == errno.ENOENT:
        return "broken symlink or missing file"
    return error.strerror or type(error).__name__


# Readers by lower-case suffix: path and size limit in, canonical text out.
READERS: dict[str, Callable[[Path, int], str]] = {
    ".txt": decode_file,
    ".md": decode_file,
}


def _source_label(path: Path, cwd: Path) -> str:
    """Path relative to `cwd` when below it, else the resolved absolute path."""
    if path.is_relative_to(cwd):
        return path.relative_to(cwd).as_posix()
    try:
        return str(path.resolve())
    except (OSError, RuntimeError):  # a symlink loop (RuntimeError in Python 3.11): name it as found
        return str(path)


def _supported_list() -> str:
    return ", ".join(sorted(READERS))


def discover(
    paths: Sequence[Path], cwd: Path, follow_symlinks: bool = False
) -> tuple[list[tuple[Path, str]], list[tuple[str, str]]]:
    """Expand files and directories into (path, source) pairs of supported files, sorted.

    Directories are walked recursively (hidden entries skipped, unsupported suffixes
    ignored, directory symlinks followed once). A symlink found in a directory that
    leads outside that given directory (e.g. to /etc/passwd) is skipped unless
    `follow_symlinks`; paths given explicitly are always taken. Returns the files and
    (path, reason) for everything that could not be taken. Raises InputError for a
    path that does not exist at all.
    """
    cwd = Path(os.path.abspath(cwd))
    found: list[tuple[Path, str]] = []
    skipped: list[tuple[str, str]] = []
    seen_files: dict[tuple[int, int], str] = {}
    visited_dirs: set[tuple[int, int]] = set()

    def take_file(path: Path, status: os.stat_result, explicit: bool) -> None:
        source = _source_label(path, cwd)
        if not stat.S_ISREG(status.st_mode):
            if explicit:
                skipped.append((source, "not a regular file"))
            return
        if path.suffix.lower() not in READERS:
            if explicit:
                kind = f"file type {path.suffix}" if path.suffix else "file without suffix"
                skipped.append((source, f"unsupported {kind} (supported: {_supported_list()})"))
            return
        key = (status.st_dev, status.st_ino)
        if key in seen_files:
            if seen_files[key] != source:
                skipped.append((source, f"same file as {seen_files[key]}"))
            return
        if not os.access(path, os.R_OK, effective_ids=os.access in os.supports_effective_ids):
            skipped.append((source, "permission denied"))
            return
        seen_files[key] = source
        found.append((path, source))

    def walk(root: Path, root_status: os.stat_result) -> None:
        visited_dirs.add((root_status.st_dev, root_status.st_ino))
        resolved_root = root.resolve()
        pending = [root]
        while pending:
            directory = pending.pop()
            try:
                entries = sorted(os.scandir(directory), key=lambda entry: entry.name, reverse=True)
            except OSError as error:
                skipped.append((_source_label(directory, cwd), f"cannot list directory: {_os_reason(error)}"))
                continue
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                path = Path(entry.path)
                try:
                    status = path.stat()
                except OSError as error:
                    if entry.is_symlink() or path.suffix.lower() in READERS:
                        skipped.append((_source_label(path, cwd), _os_reason(error)))
                    continue
                taken = stat.S_ISDIR(status.st_mode) or path.suffix.lower() in READERS
                if (
                    taken
                    and entry.is_symlink()
                    and not follow_symlinks
                    and not path.resolve().is_relative_to(resolved_root)
                ):
                    link = path.relative_to(cwd).as_posix() if path.is_relative_to(cwd) else str(path)
                    reason = (
                        f"symlink to {path.resolve()}, outside {root} — pass --follow-symlinks to index it"
                    )
                    skipped.append((link, reason))
                    continue
                if stat.S_ISDIR(status.st_mode):
                    key = (status.st_dev, status.st_ino)
                    if key in visited_dirs:
                        skipped.append((_source_label(path, cwd), "symlink loop (directory already scanned)"))
                        continue
                    visited_dirs.add(key)
                    pending.append(path)
                else:
                    take_file(path, status, explicit=False)

    for given in paths:
        path = Path(os.path.abspath(cwd / given))
        if not os.path.lexists(path):
            raise InputError(f"No such file or directory: {given} — check the path")
        try:
            status = path.stat()
        except OSError as error:
            skipped.append((_source_label(path, cwd), _os_reason(error)))
            continue
        if stat.S_ISDIR(status.st_mode):
            start = len(found)
            walk(path, status)
            found[start:] = sorted(found[start:], key=lambda pair: pair[1])
        else:
            take_file(path, status, explicit=True)
    return found, skipped


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


_MONTHS = {
    "januar": 1, "jänner": 1, "jan": 1, "februar": 2, "feber": 2, "feb": 2, "märz": 3, "mär": 3, "mrz": 3,
    "april": 4, "apr": 4, "mai": 5, "juni": 6, "jun": 6, "juli": 7, "jul": 7, "august": 8, "aug": 8,
    "september": 9, "sept": 9, "sep": 9, "oktober": 10, "okt": 10, "november": 11, "nov": 11,
    "dezember": 12, "dez": 12,
}  # fmt: skip
_MONTH_NAMES = "|".join(sorted(_MONTHS, key=len, reverse=True))
_DATE_PATTERNS = (
    re.compile(
        rf"\b(?P<day>\d{{1,2}})\.\s*(?P<month>{_MONTH_NAMES})\.?\s+(?P<year>\d{{4}})\b", re.IGNORECASE
    ),
    re.compile(r"\b(?P<day>\d{1,2})\.\s?(?P<month>\d{1,2})\.\s?(?P<year>\d{4})\b"),
    re.compile(r"\b(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})\b"),
)
_NAME = r"[A-ZÄÖÜ][\w'’.-]+(?:\s+(?:von|van|de|der|zu|al|el)?\s*[A-ZÄÖÜ][\w'’.-]+){1,3}"
_BYLINE = re.compile(
    rf"^\s*(?:Von|Ein (?:Beitrag|Kommentar|Gastbeitrag|Interview) von|Autor(?:in)?:|Text:)\s+"
    rf"(?P<author>{_NAME}(?:\s+(?:und|&)\s+{_NAME})?)\s*(?:[–—|,-]\s*(?P<rest>.*))?$",
    re.MULTILINE,
)
_DATE_LINE = re.compile(
    r"^\s*(?:(?:Veröffentlicht|Publiziert|Erschienen)(?: am)?:?|Stand:|Datum:)?\s*(?P<date>[\w. -]{6,30}?)"
    r"\s*(?:,?\s*\d{1,2}[:.]\d{2}(?:\s*Uhr)?)?\s*$",
    re.MULTILINE,
)
_OUTLET_NAMES = "|".join(re.escape(name) for name in OUTLETS)
_CREDIT_LINE = re.compile(rf"^\s*(?P<author>{_NAME})\s+für\s+(?:{_OUTLET_NAMES})\s*$", re.MULTILINE)


def parse_date(text: str) -> str | None:
    """The first valid date in `text` as ISO YYYY-MM-DD (German formats)."""
    for pattern in _DATE_PATTERNS:
        for match in pattern.finditer(text):
            month_text = match["month"]
            month = int(month_text) if month_text.isdigit() else _MONTHS[month_text.lower()]
            try:
                return dt.date(int(match["year"]), month, int(match["day"])).isoformat()
            except ValueError:
                continue
    return None


def extract_metadata(text: str) -> dict[str, Any]:
    """Author, date and outlet when the text states them; None where it does not.

    Looks only where articles state them: a byline ("Von Andrew Korybko – 20. Februar
    2026") or a date line near the top, a credit line ("Joseph Fischer für Novastan"),
    and self-references to the outlets in `rag.cleaning.OUTLETS`. Dates in the running
    text (events, photo captions) are deliberately ignored.
    """
    head = "\n".join(text.lstrip().split("\n")[:METADATA_HEAD_LINES])
    author = date = None
    byline = _BYLINE.search(head)
    if byline:
        author = byline["author"].strip()
        date = parse_date(byline["rest"] or "")
    if date is None:
        for line in _DATE_LINE.finditer(head):
            date = parse_date(line["date"])
            if date:
                break
    if author is None:
        credit = _CREDIT_LINE.search(text)
        author = credit["author"] if credit else None
    return {"author": author, "date": date, "outlet": outlet_of(text)}


def _title_of(text: str) -> str:
    first_line = next((line for line in text.split("\n") if line.strip()), "")
    title = normalize_whitespace(first_line)
    if len(title) <= TITLE_MAX_CHARS:
        return title
    return title[:TITLE_MAX_CHARS].rsplit(" ", 1)[0] + " …"


def read_document(path: Path, source: str, max_bytes: int) -> Document:
    """Decode one file and describe it; raises InputError for files that cannot be indexed."""
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise InputError(
            f"{source}: unsupported file type (supported: {_supported_list()}) — convert it to text"
        )
    text = reader(path, max_bytes)
    if not text.strip():
        raise InputError(f"{source} is an empty file — add text to it or leave it out")
    metadata = extract_metadata(text)
    return Document(
        source=source,
        text=text,
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        title=_title_of(text),
        author=metadata["author"],
        date=metadata["date"],
        outlet=metadata["outlet"],
        sections=label_sections(text),
    )
