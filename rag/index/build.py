"""Building and publishing one new index version from a plan: chunk, embed, write, swap.

The documents to index are chunked with the embedding model's tokenizer; the chunks
of unchanged files are carried over from the base version, and their vectors too:
locally the base's Chroma folder is copied, on a Chroma server the base's collections
are shared. Only searchable chunks without a vector under their id are embedded (ids
are content hashes, so a renamed file reuses its vectors). Then the chunk table, the
BM25 index and the manifest are written, flushed to disk, and the version published:
locally by repointing `current` (and `previous`), on a server by moving its pointer.

Left out: deciding what changed (rag.index.plan), the lock and the checks of the
base (rag.index.update), and the encoders and stores themselves (rag.index.embed,
rag.index.store, rag.index.chroma_server).
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rag.index.layout import (
    BM25_DIR,
    CHROMA_DIR,
    CHUNKS_FILE,
    CURRENT_LINK,
    FORMAT_VERSION,
    MANIFEST_FILE,
    PREVIOUS_LINK,
    SEARCHABLE_SECTIONS,
    SERVER_FILES,
    SERVER_VERSIONS_DIR,
    VERSIONS_DIR,
    Version,
    data_files,
    link_target_name,
    new_version_name,
    point_link,
    read_chunks,
    remove_leftovers,
    sync_tree,
    write_chunks,
)
from rag.index.manifest import FileEntry, Manifest, ModelHashes, library_versions
from rag.index.plan import Plan, ProgressCallback
from rag.ingest.formats import extractor_fingerprint
from rag.settings import Settings
from rag.types import Chunk, Document

if TYPE_CHECKING:
    from rag.index.chroma_server import Pointer, ServerIndex
    from rag.index.embed import Embedder
    from rag.index.store import VectorStore


@dataclass(frozen=True)
class Encoders:
    """Factories of the two dense encoders, each called only when a chunk needs its vector."""

    embedding: Callable[[], Embedder]
    multilingual: Callable[[], Embedder]


@dataclass
class _Draft:
    """A version being built: its folder, the store its vectors go to, and how it is published."""

    directory: Path
    store: VectorStore
    stale_ids: set[str]  # vectors of chunks the new version drops, deleted from `store`
    publish: Callable[[], None]


def write_version(
    root: Path,
    base: Version | None,
    plan: Plan,
    encoders: Encoders,
    settings: Settings,
    hashes: ModelHashes,
    on_progress: ProgressCallback | None,
    server: ServerIndex | None,
    before_publish: Callable[[], None],
) -> tuple[list[Chunk], int]:
    """Build a complete new version (from `base`, or from scratch) and publish it.

    With a `server`, the vectors go to its collections (those of `base`, or new ones for a
    build from scratch) and the version is published by moving the server's pointer.
    `before_publish()` runs once the vectors are stored. Returns the new chunk table and
    the number of chunks embedded.
    """
    new_entries, new_chunks = _chunk_documents(plan.to_index, settings, on_progress)
    kept_chunks, stale_ids = _carried_over(base, plan)
    name = new_version_name()
    fingerprint = hashes.index_fingerprint(settings)
    if server is not None:
        draft = _server_draft(root, server, base, name, fingerprint)
    else:
        draft = _local_draft(root, base, name, stale_ids)
    embedded = _store_vectors(draft, new_chunks, encoders, settings, on_progress)
    before_publish()

    chunks = sorted([*kept_chunks, *new_chunks], key=lambda chunk: (chunk.source, chunk.ordinal))
    _write_tables(draft.directory, chunks)
    manifest = _new_manifest(draft.directory, plan, new_entries, settings, hashes, fingerprint)
    (draft.directory / MANIFEST_FILE).write_text(manifest.to_json(), encoding="utf-8")
    sync_tree(draft.directory)
    draft.publish()
    return chunks, embedded


# ---------------------------------------------------------------------------
# Chunks


def _file_entry(document: Document, file_sha: str, chunks: Sequence[Chunk]) -> FileEntry:
    return FileEntry(
        sha256=document.sha256,
        file_sha256=file_sha,
        chunk_ids=[chunk.id for chunk in chunks],
        title=document.title,
        author=document.author,
        date=document.date,
        outlet=document.outlet,
        chunk_counts=dict(Counter(chunk.section for chunk in chunks)),
    )


def _chunk_documents(
    to_index: Sequence[tuple[Document, str]], settings: Settings, on_progress: ProgressCallback | None
) -> tuple[dict[str, FileEntry], list[Chunk]]:
    """Chunk the documents with the embedding model's tokenizer (the model itself is not loaded)."""
    from rag.index.embed import load_token_counter
    from rag.ingest.chunk import chunk_document

    if not to_index:
        return {}, []
    count_tokens = load_token_counter(settings.embedding_model)
    entries: dict[str, FileEntry] = {}
    chunks: list[Chunk] = []
    for done, (document, file_sha) in enumerate(to_index, start=1):
        document_chunks = chunk_document(
            document, count_tokens, settings.chunk_tokens, settings.chunk_overlap_tokens
        )
        entries[document.source] = _file_entry(document, file_sha, document_chunks)
        chunks.extend(document_chunks)
        if on_progress:
            on_progress("chunking", done, len(to_index))
    return entries, chunks


def _carried_over(base: Version | None, plan: Plan) -> tuple[list[Chunk], set[str]]:
    """The base's chunks of the files the plan keeps, and the ids of its other chunks (stale)."""
    if base is None:
        return [], set()
    kept = [chunk for chunk in read_chunks(base.directory / CHUNKS_FILE) if chunk.source in plan.keep]
    stale = {
        chunk_id
        for source, entry in base.manifest.files.items()
        if source not in plan.keep
        for chunk_id in entry.chunk_ids
    }
    return kept, stale


# ---------------------------------------------------------------------------
# Where the version goes, and how it is published


def _local_draft(root: Path, base: Version | None, name: str, stale_ids: set[str]) -> _Draft:
    """A folder under versions/ with a copy of the base's vectors, published by the links."""
    from rag.index.store import ChromaStore

    replaced = link_target_name(root / CURRENT_LINK) if (root / CURRENT_LINK).is_dir() else None
    directory = root / VERSIONS_DIR / name
    directory.mkdir(parents=True)
    if base is not None:
        shutil.copytree(base.directory / CHROMA_DIR, directory / CHROMA_DIR)
    store = ChromaStore.open(directory / CHROMA_DIR, create=True)
    return _Draft(directory, store, stale_ids, publish=lambda: _publish_local(root, name, replaced))


def _publish_local(root: Path, name: str, replaced: str | None) -> None:
    """Point `current` at the new version and `previous` at the one it replaces; drop the rest."""
    if replaced is not None:
        point_link(root, PREVIOUS_LINK, replaced)
    point_link(root, CURRENT_LINK, name)
    remove_leftovers(root)


def _server_draft(
    root: Path, server: ServerIndex, base: Version | None, name: str, fingerprint: str
) -> _Draft:
    """A folder under server-versions/ and the server's collections (the base's, or new ones)."""
    from rag.index.chroma_server import vectors_stem

    pointer = server.pointer()
    directory = root / SERVER_VERSIONS_DIR / name
    directory.mkdir(parents=True)
    stem = (
        pointer.current_vectors
        if base is not None and pointer is not None
        else vectors_stem(server.prefix, fingerprint, name)
    )
    store = server.vectors(stem, create=True)
    # No stale ids: readers of the published versions still query them; the next writer removes them.
    return _Draft(
        directory, store, set(), publish=lambda: _publish_on_server(server, name, directory, stem, pointer)
    )


def _publish_on_server(
    server: ServerIndex, name: str, directory: Path, stem: str, pointer: Pointer | None
) -> None:
    """Upload the version's files, then move the server's pointer to it (the old current is previous)."""
    from rag.index.chroma_server import Pointer

    server.upload(name, directory, SERVER_FILES)
    previous = (pointer.current, pointer.current_vectors) if pointer else (None, None)
    server.publish(Pointer(name, stem, *previous))


# ---------------------------------------------------------------------------
# Vectors, tables and the manifest


def _store_vectors(
    draft: _Draft,
    new_chunks: Sequence[Chunk],
    encoders: Encoders,
    settings: Settings,
    on_progress: ProgressCallback | None,
) -> int:
    """Fill both encoders' collections of the draft's store; returns how many chunks were embedded."""
    from rag.index.store import COLLECTION_NAME, MULTILINGUAL_COLLECTION_NAME

    try:
        counts = []
        for collection, encoder, stage in (
            (COLLECTION_NAME, encoders.embedding, "embedding"),
            (MULTILINGUAL_COLLECTION_NAME, encoders.multilingual, "embedding (multilingual)"),
        ):
            progress = _stage_progress(on_progress, stage)
            target = draft.store.sibling(collection, create=True)
            counts.append(_fill_store(target, new_chunks, draft.stale_ids, encoder, settings, progress))
        return counts[0]  # both encoders embed the same chunks
    finally:
        draft.store.close()


def _fill_store(
    store: VectorStore,
    new_chunks: Sequence[Chunk],
    stale_ids: set[str],
    embedder: Callable[[], Embedder],
    settings: Settings,
    on_progress: Callable[[int, int], None] | None,
) -> int:
    """Replace `stale_ids` by the searchable new chunks; returns how many were embedded."""
    import numpy as np

    searchable = [chunk for chunk in new_chunks if chunk.section in SEARCHABLE_SECTIONS]
    # Ids are content hashes: a vector stored under the same id is the right one (e.g. a renamed file).
    reusable = store.embeddings([chunk.id for chunk in searchable]) if store.count() else {}
    store.delete(stale_ids)
    reused = [chunk for chunk in searchable if chunk.id in reusable]
    if reused:
        store.add(reused, np.stack([reusable[chunk.id] for chunk in reused]))
    to_embed = [chunk for chunk in searchable if chunk.id not in reusable]
    if to_embed:
        total = len(to_embed)
        vectors = embedder().encode(
            [chunk.text for chunk in to_embed],
            batch_size=settings.embed_batch_size,
            on_progress=(lambda done: on_progress(done, total)) if on_progress else None,
        )
        store.add(to_embed, vectors)
    return len(to_embed)


def _stage_progress(on_progress: ProgressCallback | None, stage: str) -> Callable[[int, int], None] | None:
    if on_progress is None:
        return None
    return lambda done, total: on_progress(stage, done, total)


def _write_tables(directory: Path, chunks: Sequence[Chunk]) -> None:
    """The chunk table and the BM25 index over its searchable chunks."""
    from rag.index.keyword import KeywordIndex

    write_chunks(directory / CHUNKS_FILE, chunks)
    KeywordIndex.build([chunk for chunk in chunks if chunk.section in SEARCHABLE_SECTIONS]).save(
        directory / BM25_DIR
    )


def _new_manifest(
    directory: Path,
    plan: Plan,
    new_entries: dict[str, FileEntry],
    settings: Settings,
    hashes: ModelHashes,
    fingerprint: str,
) -> Manifest:
    """The manifest of the version in `directory`, once its chunk table and BM25 index are written."""
    return Manifest(
        format_version=FORMAT_VERSION,
        fingerprint=fingerprint,
        embedding_model=settings.embedding_model,
        embedding_model_hash=hashes.embedding,
        multilingual_model_hash=hashes.multilingual,
        chunk_tokens=settings.chunk_tokens,
        chunk_overlap_tokens=settings.chunk_overlap_tokens,
        library_versions=library_versions(),
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        extractors=extractor_fingerprint(),
        embed_precision=settings.embed_precision,
        files=dict(sorted({**plan.keep, **new_entries}.items())),
        duplicates=dict(sorted(plan.duplicates.items())),
        data_files=data_files(directory),
        collections=plan.collections,
    )
