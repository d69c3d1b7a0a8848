"""The local side of an index on a Chroma server: its versions cached here, and its garbage removed.

With `chroma_url` set, the vectors live on a Chroma server instead (rag.index.chroma_server):
versions are published by moving the server's pointer, the server lock keeps writers on
different machines apart, and `server-versions/<name>/` in the index directory caches each
version's manifest, chunk table and BM25 index (downloaded and built by any machine that
reads it). A published version never changes, so its name is its cache key; the cache
keeps the current and the previous version and drops the rest.

Left out: talking to the server (rag.index.chroma_server), opening a version for reads
(rag.index.reader) and writing one (rag.index.build).
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rag.index.layout import (
    BM25_DIR,
    CHUNKS_FILE,
    LOCK_FILE,
    LOCK_TIMEOUT_SECONDS,
    MANIFEST_FILE,
    SEARCHABLE_SECTIONS,
    SERVER_FILES,
    SERVER_VERSIONS_DIR,
    Version,
    read_chunks,
    read_manifest,
    sync_tree,
)

if TYPE_CHECKING:
    from rag.index.chroma_server import Pointer, ServerIndex

STALE_DOWNLOAD_SECONDS = 3600.0  # a half-downloaded version this old was left by a dead process


def server_version(root: Path, server: ServerIndex, name: str) -> Version:
    """A published server version, from the local cache, else downloaded and its BM25 index built.

    A version never changes once published, so its name is its cache key. The download
    goes to a temporary folder renamed into place, so concurrent readers never see half.
    """
    from rag.index.keyword import KeywordIndex

    directory = root / SERVER_VERSIONS_DIR / name
    if not (directory / MANIFEST_FILE).is_file():
        temporary = directory.with_name(f"{name}.tmp-{secrets.token_hex(4)}")
        temporary.mkdir(parents=True)
        try:
            server.download(name, temporary, SERVER_FILES)
            chunks = read_chunks(temporary / CHUNKS_FILE)
            KeywordIndex.build([chunk for chunk in chunks if chunk.section in SEARCHABLE_SECTIONS]).save(
                temporary / BM25_DIR
            )
            sync_tree(temporary)
            os.rename(temporary, directory)
        except OSError:
            if not (directory / MANIFEST_FILE).is_file():  # not merely another process that got there first
                raise
        finally:
            shutil.rmtree(temporary, ignore_errors=True)
    return Version(directory, read_manifest(directory, root))


def prune_server_cache(root: Path, pointer: Pointer | None, wait: bool) -> None:
    """Delete cached server versions that are neither current nor previous, and stale downloads.

    Under the index lock, so a version being written here is never removed; a reader
    (`wait` False) skips the clean-up while a writer holds the lock.
    """
    from filelock import FileLock, Timeout

    cache = root / SERVER_VERSIONS_DIR
    if not cache.is_dir():
        return
    live = set(pointer.versions()) if pointer else set()
    lock = FileLock(root / LOCK_FILE, timeout=LOCK_TIMEOUT_SECONDS if wait else 0)
    try:
        with lock:
            for entry in cache.iterdir():
                downloading = ".tmp-" in entry.name
                if downloading and time.time() - entry.stat().st_mtime < STALE_DOWNLOAD_SECONDS:
                    continue
                if entry.name not in live:
                    shutil.rmtree(entry, ignore_errors=True)
    except Timeout:
        return


def collect_server_garbage(root: Path, server: ServerIndex, pointer: Pointer | None) -> None:
    """Remove server vectors and files, and cached versions, that no published version uses."""
    kept: dict[str, set[str]] = {}
    if pointer is not None:
        for name, stem in pointer.versions().items():
            manifest = server_version(root, server, name).manifest
            kept.setdefault(stem, set()).update(
                chunk_id for entry in manifest.files.values() for chunk_id in entry.chunk_ids
            )
    server.collect_garbage(kept)
    prune_server_cache(root, pointer, wait=True)
