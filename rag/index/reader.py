"""Opening the published index for reads: cheap, lock-free, and checked before it is trusted.

`open_index` reads the manifest and the chunk table of the published version and
checks that it was built with these settings and models and that no file is missing
or truncated; it loads neither the embedding model nor Chroma. `IndexReader` opens the
vector stores and the BM25 index on first use. Readers take no lock: a writer builds
its version beside the published one, and a reader whose version is replaced while it
reads tries the new one. With `chroma_url` set, the published version is the Chroma
server's, its files cached locally (rag.index.server_cache).

Left out: writing versions (rag.index.update) and ranking (rag.retrieval.retrieve).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.errors import DamagedIndexError, IndexMissingError, RagError
from rag.index.layout import (
    BM25_DIR,
    CHROMA_DIR,
    CHUNKS_FILE,
    CURRENT_LINK,
    SEARCHABLE_SECTIONS,
    Version,
    check_intact,
    current_version,
    damaged,
    read_chunks,
)
from rag.index.manifest import Manifest, ModelHashes, check_compatible
from rag.index.server_cache import prune_server_cache, server_version
from rag.settings import Settings
from rag.types import Chunk

if TYPE_CHECKING:
    from rag.index.keyword import KeywordIndex
    from rag.index.store import VectorStore

OPEN_ATTEMPTS = 3  # a reader whose version is replaced while it reads tries the new one


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
            raise damaged(self.root, f"the vector store does not open: {_first_line(error)}") from error
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
            raise damaged(self.root, f"the keyword index does not load: {_first_line(error)}") from error

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
        check_intact(Version(self.directory, self.manifest), self.root, thorough=True)
        searchable = sum(chunk.section in SEARCHABLE_SECTIONS for chunk in self.chunks.values())
        for name, count in (
            ("vector store", self.store.count()),
            ("multilingual vector store", self.multilingual_store.count()),
            ("keyword index", len(self.keyword.chunk_ids)),
        ):
            if count != searchable:
                raise damaged(self.root, f"the {name} holds {count} of {searchable} searchable chunks")

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
    version = current_version(Path(settings.index_dir))
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
    hashes: ModelHashes | None = None
    attempts_left = OPEN_ATTEMPTS
    while True:
        version = current_version(root)
        if version is None:
            raise IndexMissingError(f"No index in {root}/ — run `rag index seeds/` first")
        hashes = hashes or ModelHashes.of(settings)
        check_compatible(version.manifest, settings, hashes, f"{root}/")
        try:
            check_intact(version, root, thorough=False)
            chunks = read_chunks(version.directory / CHUNKS_FILE)
        except (DamagedIndexError, OSError, ValueError, TypeError) as error:
            attempts_left -= 1
            if attempts_left and (root / CURRENT_LINK).resolve() != version.directory:
                continue  # published over while we read it: read the new version
            if isinstance(error, DamagedIndexError):
                raise
            raise damaged(root, f"{CHUNKS_FILE} does not read: {_first_line(error)}") from error
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
    hashes = ModelHashes.of(settings)
    version = server_version(root, server, pointer.current)
    prune_server_cache(root, pointer, wait=False)
    check_compatible(version.manifest, settings, hashes, server.describe())
    chunks = read_chunks(version.directory / CHUNKS_FILE)
    searchable = frozenset(chunk.id for chunk in chunks if chunk.section in SEARCHABLE_SECTIONS)
    return IndexReader(
        root,
        version.directory,
        version.manifest,
        chunks,
        open_store=lambda: server.vectors(pointer.current_vectors, visible=searchable),
    )
