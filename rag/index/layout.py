"""The index folder on disk: its versions, the links that publish them, the lock, damage checks.

Every write is copy-on-write: the new index is built in `versions/<name>/` and
published by atomically replacing the `current` symlink, so `kill -9` at any point
leaves the previous index fully usable (POSIX symlinks and rename); leftovers are
removed by the next run.
The replaced version stays on disk as `previous` for one more update, so a process
that still has it open (a chat session) keeps working. Writers hold `index/.lock`
(filelock); a second writer gets IndexLockedError within seconds instead of
waiting. Readers take no lock: they read the published version while a writer
builds the next one.

The manifest records the size and sha256 of every file written once (chunks.jsonl,
bm25/*). Opening an index compares sizes and checks Chroma's SQLite header (cheap);
`update_index` compares hashes and runs SQLite's quick_check before it trusts a
version as a base, so a damaged index is reported as DamagedIndexError ("run `rag
index --rebuild`"), never kept as "unchanged".

    index/
      .lock
      current -> versions/<name>      the index in use
      previous -> versions/<name>     the one before, kept for open readers
      versions/<name>/
        manifest.json                 settings fingerprint, model hash, versions, per-file hashes
        chunks.jsonl                  every chunk, all sections (the canonical chunk table)
        bm25/                         keyword index over body and comments chunks
        chroma/                       vectors of body and comments chunks, one collection per encoder
      server-versions/<name>/         with chroma_url: the same minus chroma/, for the server's versions

Left out: what the manifest records (rag.index.manifest), the cache of a Chroma
server's versions (rag.index.server_cache), and building a version (rag.index.build).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from rag.errors import DamagedIndexError, IndexLockedError, StaleIndexError
from rag.index.manifest import DataFile, Manifest
from rag.types import Chunk

FORMAT_VERSION = 2  # 2: a second Chroma collection of multilingual vectors
CURRENT_LINK = "current"
PREVIOUS_LINK = "previous"
VERSIONS_DIR = "versions"
LOCK_FILE = ".lock"
MANIFEST_FILE = "manifest.json"
CHUNKS_FILE = "chunks.jsonl"
BM25_DIR = "bm25"
CHROMA_DIR = "chroma"
SERVER_VERSIONS_DIR = "server-versions"
SERVER_FILES = (MANIFEST_FILE, CHUNKS_FILE)  # what a version stores on the Chroma server besides vectors
LOCK_TIMEOUT_SECONDS = 3.0
# Boilerplate chunks stay in the chunk table only; these sections are searchable.
SEARCHABLE_SECTIONS = ("body", "comments")
# Files every version has, whatever its manifest records.
_REQUIRED_FILES = (CHUNKS_FILE, f"{BM25_DIR}/chunk_ids.json")
_HASH_BLOCK_BYTES = 1 << 20


@dataclass
class Version:
    """One version of the index: its folder and its manifest."""

    directory: Path
    manifest: Manifest


# ---------------------------------------------------------------------------
# Locking and the links that publish a version


@contextmanager
def locked(root: Path) -> Iterator[None]:
    """Hold the index lock, or raise IndexLockedError after a few seconds."""
    from filelock import FileLock, Timeout

    lock = FileLock(root / LOCK_FILE, timeout=LOCK_TIMEOUT_SECONDS)
    try:
        lock.acquire()
    except Timeout as error:
        raise IndexLockedError(
            f"{root}/ is being written by another `rag index` — wait for it to finish, then try again"
        ) from error
    try:
        yield
    finally:
        lock.release()


def link_target_name(link: Path) -> str | None:
    return Path(os.readlink(link)).name if link.is_symlink() else None


def point_link(root: Path, link_name: str, target_name: str) -> None:
    """Atomically (re)point `root/link_name` at `versions/target_name`."""
    temporary = root / f"{link_name}.tmp-{secrets.token_hex(4)}"
    temporary.symlink_to(Path(VERSIONS_DIR) / target_name)
    os.replace(temporary, root / link_name)
    _fsync(root)


def remove_leftovers(root: Path) -> None:
    """Delete half-written versions and links of interrupted runs; keep current and previous."""
    for stray in root.glob("*.tmp-*"):
        if stray.is_symlink():
            stray.unlink()
    live = {link_target_name(root / CURRENT_LINK), link_target_name(root / PREVIOUS_LINK)}
    versions = root / VERSIONS_DIR
    if versions.is_dir():
        for version in versions.iterdir():
            if version.name not in live:
                shutil.rmtree(version, ignore_errors=True)


def _fsync(path: str | Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def sync_tree(directory: Path) -> None:
    """Flush every file and folder of a new version to disk before it is published."""
    for folder, _, files in os.walk(directory):
        for name in [*files, "."]:
            _fsync(os.path.join(folder, name))


def new_version_name() -> str:
    return f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(4)}"


# ---------------------------------------------------------------------------
# Reading a version


def read_manifest(directory: Path, root: Path) -> Manifest:
    try:
        data = json.loads((directory / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise StaleIndexError(
            f"{root}/ is damaged (unreadable {MANIFEST_FILE}) — run `rag index --rebuild`"
        ) from error
    if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
        found = data.get("format_version") if isinstance(data, dict) else None
        raise StaleIndexError(
            f"{root}/ has index format {found}, this rag reads format {FORMAT_VERSION}"
            " — run `rag index --rebuild`"
        )
    try:
        return Manifest.from_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise StaleIndexError(
            f"{root}/ is damaged (malformed {MANIFEST_FILE}) — run `rag index --rebuild`"
        ) from error


def current_version(root: Path) -> Version | None:
    """The published version, or None when there is none yet."""
    link = root / CURRENT_LINK
    if not link.is_dir():
        return None
    directory = link.resolve()
    return Version(directory, read_manifest(directory, root))


def read_chunks(path: Path) -> list[Chunk]:
    with path.open(encoding="utf-8") as handle:
        return [Chunk(**json.loads(line)) for line in handle if line.strip()]


def write_chunks(path: Path, chunks: Sequence[Chunk]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for chunk in chunks:
            handle.write(json.dumps(asdict(chunk), ensure_ascii=False) + "\n")


# ---------------------------------------------------------------------------
# Hashes and damage


def file_sha256(path: Path, reading: str = "") -> str:
    """Hash of the raw bytes, plus how the file is read (a collection's options) when that matters."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_HASH_BLOCK_BYTES):
            digest.update(block)
    if reading:
        digest.update(b"\0" + reading.encode())
    return digest.hexdigest()


def data_files(directory: Path) -> dict[str, DataFile]:
    """Size and hash of the chunk table and of every keyword-index file, as just written."""
    paths = [
        directory / CHUNKS_FILE,
        *sorted(path for path in (directory / BM25_DIR).rglob("*") if path.is_file()),
    ]
    return {
        path.relative_to(directory).as_posix(): DataFile(path.stat().st_size, file_sha256(path))
        for path in paths
    }


def _damage(directory: Path, manifest: Manifest, thorough: bool) -> str | None:
    """What is wrong with the files of a version, or None: missing or resized files, and the
    SQLite store's header; `thorough` also compares hashes and runs SQLite's quick_check."""
    from rag.index.store import store_damage

    for name in sorted({*_REQUIRED_FILES, *manifest.data_files}):
        path = directory / name
        if not path.is_file():
            return f"{name} is missing"
        recorded = manifest.data_files.get(name)
        if recorded is None:
            continue
        size = path.stat().st_size
        if size != recorded.size:
            return f"{name} has {size} of {recorded.size} bytes"
        if thorough and file_sha256(path) != recorded.sha256:
            return f"{name} has changed since it was written"
    return store_damage(directory / CHROMA_DIR, thorough)


def damaged(root: Path, detail: str) -> DamagedIndexError:
    return DamagedIndexError(f"index {root}/ is damaged ({detail}) — run `rag index --rebuild`")


def check_intact(version: Version, root: Path, thorough: bool) -> None:
    """Raise DamagedIndexError when a file of the version is missing, truncated or corrupt."""
    detail = _damage(version.directory, version.manifest, thorough)
    if detail is not None:
        raise damaged(root, detail)
