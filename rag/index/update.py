"""Bringing the index in line with the given files: the incremental, crash-safe `update_index`.

`update_index` brings the index in line with the given files. Each file's raw bytes
are hashed first, so an unchanged corpus costs a hash per file plus one of the model
weights, and nothing else (neither the embedding model nor Chroma is loaded). Changed files are re-chunked and
only their chunks replaced; files gone from the given folders lose their chunks; a
copy of an indexed file is reported as a duplicate instead of being indexed twice;
chunks whose id already has a vector (a renamed file) reuse it instead of being
embedded again.

A run holds the index lock (and, with `chroma_url`, the Chroma server's writer lock),
removes what interrupted or replaced versions left behind, and trusts the published
version as its base only once it fits these settings and, locally, its files match
their recorded hashes. The new version is built beside it and published atomically
(rag.index.layout describes the folder; rag.index.build writes the version).

Left out: reading, chunking and embedding themselves (rag.ingest.read, rag.ingest.chunk,
rag.index.embed), opening the index for reads (rag.index.reader) and ranking
(rag.retrieval.retrieve).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

from rag.errors import InputError
from rag.index.build import Encoders, write_version
from rag.index.layout import Version, check_intact, current_version, locked, remove_leftovers
from rag.index.manifest import FileEntry, Manifest, ModelHashes, check_compatible
from rag.index.plan import Plan, ProgressCallback, find_files, plan_update, resolve_roots
from rag.index.server_cache import collect_server_garbage, server_version
from rag.ingest.formats.collection import CollectionOptions
from rag.settings import Settings
from rag.types import IndexReport

if TYPE_CHECKING:
    from rag.index.chroma_server import ServerIndex
    from rag.index.embed import Embedder


def _nothing() -> None:
    """The default `before_publish`: a write goes straight from its vectors to publishing."""


def _load_multilingual_encoder() -> Embedder:
    from rag.index.embed import load_multilingual_encoder

    return load_multilingual_encoder()


def update_index(
    settings: Settings,
    paths: Sequence[Path],
    embedder: Callable[[], Embedder],
    cwd: Path | None = None,
    rebuild: bool = False,
    on_progress: ProgressCallback | None = None,
    multilingual: Callable[[], Embedder] | None = None,
    collection: CollectionOptions | None = None,
    before_publish: Callable[[], None] = _nothing,
) -> IndexReport:
    """Bring the index in line with the files under `paths`; see the module docstring.

    `embedder` and `multilingual` (default: the packaged multilingual encoder) are
    factories, called only when some chunk really needs a vector, so an unchanged
    corpus never loads a model. `cwd` anchors relative paths and the
    `source` names (default: the current directory). `on_progress(stage, done,
    total)` reports reading, chunking and embedding. `collection` says how CSV and
    JSONL files are read; with its `format` set, every path must be a file, read as
    that format whatever its suffix. Bad files are skipped with a
    reason; a missing path or a corpus without any indexable file raises InputError,
    an index built with other settings raises StaleIndexError unless `rebuild`.
    `before_publish()` runs once a new version's vectors are stored and before it is
    published: where a crash must leave the published version untouched (tests stall
    there and kill the writer).
    """
    started = time.perf_counter()
    cwd = cwd or Path.cwd()
    collection = collection or CollectionOptions()
    paths = [Path(path) for path in paths]
    roots = resolve_roots(paths, cwd)
    root = Path(settings.index_dir)
    found, skipped = find_files(paths, cwd, root, settings, collection)

    root.mkdir(parents=True, exist_ok=True)
    server = _connect(settings)
    with locked(root), server.lock() if server else nullcontext():
        base, hashes = _checked_base(root, server, settings, rebuild)
        old = base.manifest if base is not None else None
        plan = plan_update(found, old, roots, settings, cwd, collection, on_progress)
        skipped = [*skipped, *plan.skipped]
        if plan.indexable == 0:
            names = ", ".join(str(path) for path in paths)
            first_reason = f": {skipped[0][0]}: {skipped[0][1]}" if skipped else ""
            raise InputError(f"No indexable file in {names} ({len(skipped)} skipped{first_reason})")

        if old is not None and _unchanged(plan, old):
            chunks_total, embedded = sum(len(entry.chunk_ids) for entry in old.files.values()), 0
        else:
            encoders = Encoders(embedder, multilingual or _load_multilingual_encoder)
            chunks, embedded = write_version(
                root, base, plan, encoders, settings, hashes, on_progress, server, before_publish
            )
            chunks_total = len(chunks)

    old_files = old.files if old is not None else {}
    return _report(plan, old_files, skipped, chunks_total, embedded, time.perf_counter() - started)


def _connect(settings: Settings) -> ServerIndex | None:
    """The Chroma server of `chroma_url`, or None for the embedded store."""
    if not settings.chroma_url:
        return None
    from rag.index.chroma_server import ServerIndex

    return ServerIndex.connect(settings.chroma_url, settings.chroma_prefix)


def _checked_base(
    root: Path, server: ServerIndex | None, settings: Settings, rebuild: bool
) -> tuple[Version | None, ModelHashes]:
    """The published version to build on (None: build from scratch), checked, and the models' hashes.

    Called under the lock: first clears what interrupted or replaced versions left. A base
    built with other settings raises StaleIndexError; a damaged local one DamagedIndexError.
    """
    if server is not None:
        pointer = server.pointer()
        collect_server_garbage(root, server, pointer)
        base = None if rebuild or pointer is None else server_version(root, server, pointer.current)
        place = server.describe()
    else:
        remove_leftovers(root)
        base = None if rebuild else current_version(root)
        place = f"{root}/"
    hashes = ModelHashes.of(settings)
    if base is not None:
        check_compatible(base.manifest, settings, hashes, place)
        if server is None:
            check_intact(base, root, thorough=True)  # never "unchanged", never a base, when damaged
    return base, hashes


def _unchanged(plan: Plan, old: Manifest) -> bool:
    """Whether the plan leaves the published version as it is: then nothing is written."""
    recorded = (old.files, old.duplicates, old.collections)
    return (plan.keep, plan.duplicates, plan.collections) == recorded and not plan.to_index


def _report(
    plan: Plan,
    old_files: Mapping[str, FileEntry],
    skipped: list[tuple[str, str]],
    chunks_total: int,
    embedded: int,
    seconds: float,
) -> IndexReport:
    """What the run changed, by source: the report `rag index` prints."""
    indexed_sources = {document.source for document, _ in plan.to_index}
    return IndexReport(
        added=sorted(indexed_sources - set(old_files)),
        updated=sorted(indexed_sources & set(old_files)),
        removed=sorted(set(old_files) - set(plan.keep) - indexed_sources),
        unchanged=sorted(plan.sources & set(plan.keep) & set(old_files)),
        duplicates=sorted(plan.duplicates.items()),
        skipped=skipped,
        chunks_total=chunks_total,
        chunks_embedded=embedded,
        seconds=seconds,
    )
