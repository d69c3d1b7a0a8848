"""Collections: CSV and JSONL files that hold one article per row.

`read_collection(text, name, kind, options)` turns a decoded file into one
`Extraction` per row, numbered as in `file.csv#row=17`: CSV rows count data records
from 1 (a header is not a row), JSONL rows are line numbers. Everything is decided
from the file itself unless the options say otherwise, so reading it again gives the
same rows and the same texts:

- CSV dialect: the delimiter (`,` `;` tab `|`) and quote character (`"` `'`) that
  split the first records into the most consistent number of fields, at least two
  (10kGNAD's `category;'text'` is `;` and `'`);
- header: the first record is a header when one of its cells is a known column name
  (below) or when a column is asked for by name; otherwise columns are numbered 1, 2 …;
- text column: a known text name, else the column whose values are longest on
  average; title, date, author and outlet columns only by known names.

A row's canonical text is its title line, a blank line and its text, or the text
alone. Rows without text are skipped with a reason. Left out: spreadsheets (.xlsx),
nested JSON paths, and rows spanning several files.
"""

from __future__ import annotations

import csv
import io
import json
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from rag.errors import InputError
from rag.types import Extraction

CollectionKind = Literal["csv", "jsonl"]
Column = str | int  # a header name, or a 0-based position in a file without a header
Row = dict[Column, str]
TEXT_NAMES = ("text", "body", "content", "article", "story", "fulltext", "full_text", "artikel", "inhalt")
TITLE_NAMES = ("title", "headline", "heading", "titel", "überschrift", "ueberschrift", "schlagzeile")
DATE_NAMES = ("date", "published", "publication_date", "pubdate", "published_at", "datum", "date_published")
AUTHOR_NAMES = ("author", "authors", "byline", "autor", "autorin")
OUTLET_NAMES = ("outlet", "site", "sitename", "site_name", "publisher", "medium", "zeitung")
_DELIMITERS = (",", ";", "\t", "|")
_QUOTES = ('"', "'")
_SNIFF_RECORDS = 50
_SAMPLE_ROWS = 200  # rows looked at to find the text column


@dataclass(frozen=True)
class CollectionOptions:
    """How to read collection files; None means "decide from the file" (see the module docstring).

    `format` forces files to be read as that kind whatever their suffix; columns
    are header names or 1-based column numbers.
    """

    format: CollectionKind | None = None
    text_column: str | None = None
    title_column: str | None = None

    def describe(self) -> str:
        """A stable string of the options, part of a collection's "unchanged?" hash."""
        return json.dumps([self.format, self.text_column, self.title_column])


@dataclass(frozen=True)
class Collection:
    """The rows of one collection file: (row number, extraction) and (row number, reason)."""

    rows: list[tuple[int, Extraction]]
    skipped: list[tuple[int, str]]


@dataclass(frozen=True)
class _Columns:
    """Where each field of a row is: a header name, or a 0-based index without a header."""

    text: Column
    title: Column | None = None
    date: Column | None = None
    author: Column | None = None
    outlet: Column | None = None


def read_collection(text: str, name: str, kind: CollectionKind, options: CollectionOptions) -> Collection:
    """Every row of a decoded collection file as an Extraction; InputError if it cannot be read."""
    if kind == "jsonl":
        return _read_jsonl(text, name, options)
    return _read_csv(text, name, options)


# ---------------------------------------------------------------------------
# CSV


def _read_csv(text: str, name: str, options: CollectionOptions) -> Collection:
    delimiter, quote = _dialect(text)
    csv.field_size_limit(max(csv.field_size_limit(), len(text) + 1))
    try:
        records = list(csv.reader(io.StringIO(text), delimiter=delimiter, quotechar=quote))
    except csv.Error as error:
        raise InputError(f"{name}: not a readable CSV file ({error}) — check its quoting") from error
    records = [record for record in records if any(cell.strip() for cell in record)]
    if not records:
        raise InputError(f"{name} holds no rows — add articles, one per row")
    header = _header(records[0], options)
    data = records[1:] if header else records
    if header:
        rows: list[Row] = [dict(zip(header, record, strict=False)) for record in data]
        columns = _columns_by_name(header, rows, name, options)
    else:
        rows = [dict(enumerate(record)) for record in data]
        columns = _columns_by_number(rows, name, options)
    return _extract_rows(list(enumerate(rows, start=1)), columns)


def _dialect(text: str) -> tuple[str, str]:
    """The delimiter and quote character that split the first records most consistently."""
    sample = text[: text.rfind("\n", 0, 1 << 16) + 1] or text
    best: tuple[float, int, str, str] | None = None
    for delimiter in _DELIMITERS:
        for quote in _QUOTES:
            try:
                reader = csv.reader(io.StringIO(sample), delimiter=delimiter, quotechar=quote)
                counts = [len(record) for _, record in zip(range(_SNIFF_RECORDS), reader, strict=False)]
            except csv.Error:
                continue
            fields, agreeing = Counter(counts).most_common(1)[0] if counts else (0, 0)
            if fields < 2:
                continue
            score = (agreeing / len(counts), fields, delimiter, quote)
            if best is None or score[:2] > best[:2]:
                best = score
    return (best[2], best[3]) if best else (",", '"')


def _header(first: Sequence[str], options: CollectionOptions) -> list[str] | None:
    cells = [cell.strip() for cell in first]
    named = [
        column for column in (options.text_column, options.title_column) if column and not column.isdigit()
    ]
    known = {*TEXT_NAMES, *TITLE_NAMES, *DATE_NAMES, *AUTHOR_NAMES, *OUTLET_NAMES}
    if named or any(cell.casefold() in known for cell in cells):
        return cells
    return None


# ---------------------------------------------------------------------------
# JSONL


def _read_jsonl(text: str, name: str, options: CollectionOptions) -> Collection:
    rows: list[tuple[int, Row]] = []
    skipped: list[tuple[int, str]] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as error:
            skipped.append((number, f"invalid JSON ({error})"))
            continue
        if not isinstance(record, dict):
            skipped.append((number, "not a JSON object"))
            continue
        rows.append((number, {key: _as_text(value) for key, value in record.items()}))
    if not rows:
        raise InputError(f"{name} holds no JSON objects — put one article object on each line")
    keys = list(dict.fromkeys(key for _, row in rows[:_SAMPLE_ROWS] for key in row))
    columns = _columns_by_name([str(key) for key in keys], [row for _, row in rows], name, options)
    collection = _extract_rows(rows, columns)
    return Collection(collection.rows, sorted([*skipped, *collection.skipped]))


def _as_text(value: object) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


# ---------------------------------------------------------------------------
# Columns and rows


def _find(names: Sequence[str], wanted: Sequence[str]) -> str | None:
    by_folded = {name.casefold(): name for name in reversed(names)}
    return next((by_folded[candidate] for candidate in wanted if candidate in by_folded), None)


def _columns_by_name(
    names: Sequence[str], rows: Sequence[Row], file: str, options: CollectionOptions
) -> _Columns:
    def chosen(given: str | None, known: Sequence[str], flag: str) -> str | None:
        if given is None:
            return _find(names, known)
        if given.isdigit() and 0 < int(given) <= len(names):
            return names[int(given) - 1]
        found = _find(names, [given.casefold()])
        if found is None:
            listed = ", ".join(names[:12])
            raise InputError(f"{file} has no column {given!r} (columns: {listed}) — check {flag}")
        return found

    text = chosen(options.text_column, TEXT_NAMES, "--text-column") or _longest(names, rows, file)
    return _Columns(
        text=text,
        title=chosen(options.title_column, TITLE_NAMES, "--title-column"),
        date=_find(names, DATE_NAMES),
        author=_find(names, AUTHOR_NAMES),
        outlet=_find(names, OUTLET_NAMES),
    )


def _columns_by_number(rows: Sequence[Row], file: str, options: CollectionOptions) -> _Columns:
    width = max(len(row) for row in rows)

    def chosen(given: str | None, flag: str) -> int | None:
        if given is None:
            return None
        if not given.isdigit() or not 0 < int(given) <= width:
            raise InputError(f"{file} has no header and {width} columns — give {flag} as a number 1–{width}")
        return int(given) - 1

    text = chosen(options.text_column, "--text-column")
    return _Columns(
        text=_longest(list(range(width)), rows, file) if text is None else text,
        title=chosen(options.title_column, "--title-column"),
    )


def _longest(keys: Sequence[Column], rows: Sequence[Row], file: str) -> Column:
    """The column whose values are longest on average over the first rows."""
    sample = rows[:_SAMPLE_ROWS]
    lengths = {key: sum(len(row.get(key, "")) for row in sample) for key in keys}
    if not lengths or max(lengths.values()) == 0:
        raise InputError(f"{file}: every column is empty — check the file")
    return max(keys, key=lambda key: lengths[key])


def _extract_rows(rows: Sequence[tuple[int, Row]], columns: _Columns) -> Collection:
    extracted: list[tuple[int, Extraction]] = []
    skipped: list[tuple[int, str]] = []
    for number, row in rows:
        body = _clean(row.get(columns.text, ""))
        if not body:
            skipped.append((number, "empty text"))
            continue
        title = _field(row, columns.title)
        extraction = Extraction(
            text=f"{title}\n\n{body}" if title else body,
            title=title,
            author=_field(row, columns.author),
            date=_field(row, columns.date),
            outlet=_field(row, columns.outlet),
        )
        extracted.append((number, extraction))
    return Collection(extracted, skipped)


def _field(row: Row, column: Column | None) -> str | None:
    """A one-line metadata value, or None when the column is absent or empty."""
    value = row.get(column, "") if column is not None else ""
    return " ".join(value.split()) or None


def _clean(text: str) -> str:
    return unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n")).strip()
