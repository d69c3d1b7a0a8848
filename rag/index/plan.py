"""Planning an update: which files this run finds, which of them changed, and what is a duplicate.

Each file's raw bytes are hashed first, so an unchanged file costs one hash and is
not read; a changed file is read and each of its documents compared by content hash,
so a changed row of a collection file (CSV, JSONL) is re-indexed alone. A copy of an
indexed document is recorded as a duplicate instead of being indexed twice, and files
outside the given folders keep their entries. The result is a `Plan`, decided before
anything is written.

Left out: reading files into documents (rag.ingest.read) and acting on the plan
(rag.index.build, rag.index.update).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from rag.errors import InputError, RagError
from rag.index.layout import file_sha256
from rag.index.manifest import FileEntry, Manifest
from rag.ingest.formats.collection import CollectionOptions
from rag.settings import Settings
from rag.types import Document

ProgressCallback = Callable[[str, int, int], None]


@dataclass
class Plan:
    """What one update will do, decided before anything is written."""

    keep: dict[str, FileEntry]
    to_index: list[tuple[Document, str]]  # (document, raw-bytes hash)
    duplicates: dict[str, str]
    skipped: list[tuple[str, str]]
    indexable: int  # documents of this run that are indexed or known duplicates
    sources: set[str]  # the documents found in this run: files, and rows of collection files
    collections: dict[str, dict[str, str | None]]  # collection file -> its options (manifest)


@dataclass
class _Reading:
    """What `plan_update` learns from reading this run's files, before it looks for duplicates."""

    keep: dict[str, FileEntry] = field(default_factory=dict)  # unchanged: their entries stay
    sources: set[str] = field(default_factory=set)  # every document found: files and rows
    collections: dict[str, dict[str, str | None]] = field(default_factory=dict)
    candidates: list[tuple[Document, str]] = field(default_factory=list)  # new or changed documents
    skipped: list[tuple[str, str]] = field(default_factory=list)


def resolve_roots(paths: Sequence[Path], cwd: Path) -> list[Path]:
    """The given paths as absolute paths, both as written and with symlinks resolved."""
    roots: list[Path] = []
    for path in paths:
        full = cwd / path
        if not full.exists():
            raise InputError(f"No such file or directory: {path} — check the path")
        roots.extend({Path(os.path.abspath(full)), full.resolve()})
    return roots


def _is_under(path: Path, roots: Sequence[Path]) -> bool:
    forms = {Path(os.path.abspath(path)), path.resolve()}
    return any(form.is_relative_to(root) for form in forms for root in roots)


def find_files(
    paths: Sequence[Path], cwd: Path, index_root: Path, settings: Settings, options: CollectionOptions
) -> tuple[list[tuple[Path, str]], list[tuple[str, str]]]:
    """This run's (path, source) pairs sorted by source, minus the index's own files, and the skipped ones.

    With `options.format` set, every path is a file read as that format. Raises
    InputError when no supported file is found.
    """
    from rag.ingest.discovery import discover, given_files
    from rag.ingest.read import READERS

    skipped: list[tuple[str, str]] = []
    if options.format:
        found = given_files(paths, cwd, options.format)
    else:
        found, skipped = discover(paths, cwd, settings.follow_symlinks)
    index_forms = [Path(os.path.abspath(index_root)), index_root.resolve()]
    found = sorted(
        ((path, source) for path, source in found if not _is_under(path, index_forms)),
        key=lambda item: item[1],
    )
    if not found:
        names = ", ".join(str(path) for path in paths)
        raise InputError(
            f"No supported files ({', '.join(sorted(READERS))}) in {names} — give a folder with articles"
        )
    return found, skipped


def _read_found(
    found: Sequence[tuple[Path, str]],
    old_files: Mapping[str, FileEntry],
    max_bytes: int,
    options: CollectionOptions,
    on_progress: ProgressCallback | None,
) -> _Reading:
    """Read the files whose bytes (or collection options) changed; the others keep their entries unread."""
    from rag.ingest.read import collection_kind, read_documents, source_file

    rows_of: dict[str, dict[str, FileEntry]] = {}
    for source, entry in old_files.items():
        rows_of.setdefault(source_file(source), {})[source] = entry
    reading = _Reading()
    for done, (path, source) in enumerate(found, start=1):
        if on_progress:
            on_progress("reading", done, len(found))
        is_collection = collection_kind(path, options) is not None
        if is_collection:
            reading.collections[source] = asdict(options)
        known = rows_of.get(source, {})
        reading.sources.update(known)  # until read: a file that cannot be read loses its old entries
        try:
            how = options.describe() if is_collection else ""
            file_sha = file_sha256(path, how) if path.stat().st_size <= max_bytes else ""
            if known and all(entry.file_sha256 == file_sha for entry in known.values()):
                reading.keep.update(known)
                continue
            documents, skipped_rows = read_documents(path, source, max_bytes, options)
        except (RagError, OSError) as error:
            reading.skipped.append((source, str(error)))
            continue
        reading.skipped.extend(skipped_rows)
        reading.sources.difference_update(known)
        for document in documents:
            reading.sources.add(document.source)
            previous = old_files.get(document.source)
            if previous is not None and previous.sha256 == document.sha256:
                reading.keep[document.source] = replace(previous, file_sha256=file_sha)
            else:
                reading.candidates.append((document, file_sha))
    return reading


def plan_update(
    found: Sequence[tuple[Path, str]],
    old: Manifest | None,
    roots: Sequence[Path],
    settings: Settings,
    cwd: Path,
    options: CollectionOptions,
    on_progress: ProgressCallback | None,
) -> Plan:
    """Sort this run's documents into unchanged, to (re)index and duplicates; keep files outside `roots`.

    A collection file counts as unchanged when its bytes and options are: then none of
    its rows is read. Otherwise every row is compared by content hash, so a changed
    row is re-indexed alone.
    """
    from rag.ingest.read import source_file

    old_files = old.files if old is not None else {}
    old_duplicates = old.duplicates if old is not None else {}
    reading = _read_found(found, old_files, int(settings.max_file_mb * 1024 * 1024), options, on_progress)
    keep, sources, candidates = reading.keep, reading.sources, reading.candidates

    def outside_roots(source: str) -> bool:
        return source not in sources and not _is_under(cwd / source_file(source), roots)

    for source, entry in old_files.items():
        if source not in keep and outside_roots(source):
            keep[source] = entry
    original_of = {entry.sha256: source for source, entry in keep.items()}
    duplicates = {copy: original for copy, original in old_duplicates.items() if outside_roots(copy)}
    to_index: list[tuple[Document, str]] = []
    for document, file_sha in candidates:
        original = original_of.setdefault(document.sha256, document.source)
        if original == document.source:
            to_index.append((document, file_sha))
        else:
            duplicates[document.source] = original
    duplicates = {copy: original for copy, original in duplicates.items() if original in original_of.values()}
    indexed_now = set(keep) | {document.source for document, _ in to_index} | set(duplicates)
    indexed_files = {source_file(source) for source in indexed_now}
    collections = {**(old.collections if old is not None else {}), **reading.collections}
    return Plan(
        keep,
        to_index,
        duplicates,
        reading.skipped,
        indexable=len(sources & indexed_now),
        sources=sources,
        collections={file: how for file, how in sorted(collections.items()) if file in indexed_files},
    )
