"""Dense vector storage: the `VectorStore` protocol and its Chroma implementation.

`ChromaStore` keeps one cosine-space collection of chunk embeddings with the chunk's
metadata, so dense search can filter by source, outlet, date range and section; an
index holds two, one per encoder, on one client (`sibling`). Chunk texts are not stored
in Chroma: the chunk table holds them, and Chroma would index them for its own
full-text search, half the time of writing vectors (bench/README.md).
We always pass our own embeddings (the collection has no embedding function), and
Chroma telemetry is off. `ChromaStore.open` uses a local `PersistentClient`;
`ChromaStore.from_client` accepts any Chroma client, e.g. an `HttpClient`, so a
Chroma server can replace the local files without touching the callers.

`store_damage` checks the store's SQLite file without importing chromadb: its header
against its length (a truncated file), or a full `PRAGMA quick_check`.

Left out: choosing which chunks to store and keeping them in step with the chunk
table — that is `rag.index.build`'s job.
"""

from __future__ import annotations

import datetime as dt
import math
import sqlite3
from collections.abc import Collection, Container, Mapping, Sequence
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from rag.errors import IndexMissingError, InputError
from rag.types import Chunk, SearchFilters

if TYPE_CHECKING:
    import numpy as np

COLLECTION_NAME = "chunks"
# The same chunks embedded by the multilingual encoder (rag.index.embed), beside the first collection.
MULTILINGUAL_COLLECTION_NAME = "chunks_multilingual"
# Used when a client cannot tell its own limit (e.g. an old server).
FALLBACK_BATCH_SIZE = 1000
# Chroma's persistent client keeps everything but the HNSW segments in this SQLite file.
SQLITE_FILE = "chroma.sqlite3"
_SQLITE_MAGIC = b"SQLite format 3\x00"
_SQLITE_HEADER_BYTES = 100

Where = Mapping[str, Any]


class VectorStore(Protocol):
    """What the index and the retriever need from a vector database."""

    def sibling(self, collection_name: str, create: bool = False) -> VectorStore: ...

    def add(self, chunks: Sequence[Chunk], embeddings: np.ndarray) -> None: ...

    def delete(self, ids: Collection[str]) -> None: ...

    def query(
        self,
        embedding: np.ndarray,
        k: int,
        where: Where | None = None,
        allowed_ids: Collection[str] | None = None,
    ) -> list[tuple[str, float]]: ...

    def embeddings(self, ids: Collection[str]) -> dict[str, np.ndarray]: ...

    def metadata(self, ids: Collection[str]) -> dict[str, dict[str, Any]]: ...

    def count(self) -> int: ...

    def ids(self) -> set[str]: ...

    def close(self) -> None: ...


def date_number(iso_date: str) -> int:
    """20260220 for '2026-02-20': Chroma compares only numbers with $gte/$lte."""
    try:
        day = dt.date.fromisoformat(iso_date)
    except ValueError as error:
        raise InputError(f"Invalid date {iso_date!r} — use the form YYYY-MM-DD") from error
    return day.year * 10000 + day.month * 100 + day.day


def chunk_metadata(chunk: Chunk) -> dict[str, str | int]:
    """The metadata stored with a chunk's vector (Chroma cannot hold None: such keys are left out)."""
    metadata: dict[str, str | int] = {
        "source": chunk.source,
        "start": chunk.start,
        "end": chunk.end,
        "section": chunk.section,
        "ordinal": chunk.ordinal,
        "title": chunk.title,
        "doc_sha256": chunk.doc_sha256,
    }
    if chunk.author:
        metadata["author"] = chunk.author
    if chunk.outlet:
        metadata["outlet"] = chunk.outlet
        metadata["outlet_key"] = chunk.outlet.casefold()
    if chunk.date:
        metadata["date"] = chunk.date
        metadata["date_int"] = date_number(chunk.date)
    return metadata


def where_clause(filters: SearchFilters) -> dict[str, Any]:
    """A Chroma `where` filter for `filters`: sources exactly, outlet ignoring case, inclusive dates."""
    sections = ["body", "comments"] if filters.include_comments else ["body"]
    conditions: list[dict[str, Any]] = [{"section": {"$in": sections}}]
    if filters.sources:
        conditions.append({"source": {"$in": list(filters.sources)}})
    if filters.outlet:
        conditions.append({"outlet_key": filters.outlet.casefold()})
    if filters.date_from:
        conditions.append({"date_int": {"$gte": date_number(filters.date_from)}})
    if filters.date_to:
        conditions.append({"date_int": {"$lte": date_number(filters.date_to)}})
    return conditions[0] if len(conditions) == 1 else {"$and": conditions}


def nearest_kept(
    store: VectorStore,
    embedding: np.ndarray,
    k: int,
    keep: Container[str],
    where: Where | None = None,
    kept_share: float = 1.0,
) -> list[tuple[str, float]]:
    """Up to k nearest chunks among those in `keep`: an oversampled search, filtered in code.

    Chroma answers a `where` filter by reading every row's metadata, so a filtered search
    grows with the collection (31 ms at 10k chunks, 117 ms at 50k: docs/scaling.md),
    while the nearest-neighbour search itself takes about 2 ms. When most chunks may be
    returned, asking for more neighbours and dropping the others costs far less.
    `kept_share` (the share of stored chunks in `keep`, if known) sizes the first
    request; it grows fourfold until k are kept or the store has no more to give.
    """
    asked = math.ceil(k / max(kept_share, 1e-9)) if k > 0 else 0
    while True:
        hits = store.query(embedding, asked, where)
        kept = [(chunk_id, score) for chunk_id, score in hits if chunk_id in keep]
        if len(kept) >= k or len(hits) < asked:
            return kept[:k]
        asked *= 4


def store_damage(path: Path, thorough: bool = False) -> str | None:
    """What is wrong with the SQLite file of the store in directory `path`, or None.

    The cheap check reads the 100-byte header: the magic, and the page count times
    the page size against the file's length (a truncated copy is shorter). `thorough`
    adds SQLite's own `PRAGMA quick_check` over every page, read-only.
    """
    database = path / SQLITE_FILE
    try:
        with database.open("rb") as handle:
            header = handle.read(_SQLITE_HEADER_BYTES)
        size = database.stat().st_size
    except OSError as error:
        return f"{SQLITE_FILE}: {error.strerror or error}"
    if len(header) < _SQLITE_HEADER_BYTES or not header.startswith(_SQLITE_MAGIC):
        return f"{SQLITE_FILE} is not a SQLite database"
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    # The page count is valid when the change counter (24) equals the version-valid-for number (92).
    if header[24:28] == header[92:96] and size < pages * page_size:
        return f"{SQLITE_FILE} has {size} of {pages * page_size} bytes"
    if not thorough:
        return None
    try:
        with closing(sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True)) as connection:
            result = connection.execute("PRAGMA quick_check").fetchone()
    except sqlite3.Error as error:
        return f"{SQLITE_FILE}: {error}"
    return None if result and result[0] == "ok" else f"{SQLITE_FILE}: {result[0] if result else 'no answer'}"


def _chroma_settings() -> Any:
    from chromadb.config import Settings as ChromaSettings

    return ChromaSettings(anonymized_telemetry=False, allow_reset=False)


class ChromaStore:
    """One Chroma collection of chunk vectors in cosine space."""

    def __init__(self, client: Any, collection: Any, owns_client: bool) -> None:
        self._client = client
        self._collection = collection
        self._owns_client = owns_client
        max_batch = getattr(client, "get_max_batch_size", None)
        self._batch_size = max(1, max_batch()) if callable(max_batch) else FALLBACK_BATCH_SIZE
        self._id_cache: set[str] | None = None

    @classmethod
    def from_client(
        cls, client: Any, collection_name: str = COLLECTION_NAME, create: bool = True
    ) -> ChromaStore:
        """Wrap any Chroma client (persistent or HTTP); the caller keeps ownership of it."""
        return cls(client, _collection(client, collection_name, create), owns_client=False)

    @classmethod
    def open(cls, path: Path, create: bool = False) -> ChromaStore:
        """The store in directory `path`, created there only when `create` is set."""
        if not create and not path.is_dir():
            raise IndexMissingError(f"No vector store in {path} — run `rag index --rebuild`")
        import chromadb

        client: Any = chromadb.PersistentClient(path=str(path), settings=_chroma_settings())
        try:
            collection = _collection(client, COLLECTION_NAME, create)
        except Exception:
            client.close()
            raise
        return cls(client, collection, owns_client=True)

    def sibling(self, collection_name: str, create: bool = False) -> ChromaStore:
        """Another collection on this store's client; closing this store closes both."""
        return ChromaStore.from_client(self._client, collection_name, create)

    def add(self, chunks: Sequence[Chunk], embeddings: np.ndarray) -> None:
        """Store chunks with their vectors (an existing id is overwritten), in client-sized batches."""
        if len(chunks) != len(embeddings):
            raise ValueError(f"{len(chunks)} chunks but {len(embeddings)} embeddings")
        self._id_cache = None
        for offset in range(0, len(chunks), self._batch_size):
            batch = chunks[offset : offset + self._batch_size]
            self._collection.upsert(
                ids=[chunk.id for chunk in batch],
                embeddings=embeddings[offset : offset + self._batch_size],
                metadatas=[chunk_metadata(chunk) for chunk in batch],
            )

    def delete(self, ids: Collection[str]) -> None:
        self._id_cache = None
        id_list = list(ids)
        for offset in range(0, len(id_list), self._batch_size):
            self._collection.delete(ids=id_list[offset : offset + self._batch_size])

    def query(
        self,
        embedding: np.ndarray,
        k: int,
        where: Where | None = None,
        allowed_ids: Collection[str] | None = None,
    ) -> list[tuple[str, float]]:
        """Up to k (chunk id, cosine similarity) pairs, most similar first.

        `where` is a Chroma filter (see `where_clause`); `allowed_ids` further limits
        the result to those chunk ids.
        """
        # Chroma fails on ids it does not hold, so unknown ones are dropped first.
        known_allowed = None if allowed_ids is None else self._known_ids().intersection(allowed_ids)
        if k <= 0 or known_allowed == set() or self.count() == 0:
            return []
        result = self._collection.query(
            query_embeddings=[embedding],
            n_results=k,
            where=dict(where) if where else None,
            ids=sorted(known_allowed) if known_allowed is not None else None,
            include=["distances"],
        )
        return [
            (chunk_id, 1.0 - float(distance))
            for chunk_id, distance in zip(result["ids"][0], result["distances"][0], strict=True)
        ]

    def embeddings(self, ids: Collection[str]) -> dict[str, np.ndarray]:
        """The stored vectors of those `ids` that exist."""
        found: dict[str, np.ndarray] = {}
        for batch in self._get_batches(ids, "embeddings"):
            found.update(zip(batch["ids"], batch["embeddings"], strict=True))
        return found

    def metadata(self, ids: Collection[str]) -> dict[str, dict[str, Any]]:
        """The stored metadata of those `ids` that exist."""
        found: dict[str, dict[str, Any]] = {}
        for batch in self._get_batches(ids, "metadatas"):
            found.update(
                (chunk_id, dict(meta))
                for chunk_id, meta in zip(batch["ids"], batch["metadatas"], strict=True)
            )
        return found

    def count(self) -> int:
        return int(self._collection.count())

    def ids(self) -> set[str]:
        found: set[str] = set()
        total = self.count()
        for offset in range(0, total, self._batch_size):
            found.update(self._collection.get(limit=self._batch_size, offset=offset, include=[])["ids"])
        return found

    def _known_ids(self) -> set[str]:
        if self._id_cache is None:
            self._id_cache = self.ids()
        return self._id_cache

    def close(self) -> None:
        """Release the database files if this store opened the client."""
        if self._owns_client:
            self._client.close()

    def _get_batches(self, ids: Collection[str], field: str) -> list[dict[str, Any]]:
        id_list = list(ids)
        return [
            self._collection.get(ids=id_list[offset : offset + self._batch_size], include=[field])
            for offset in range(0, len(id_list), self._batch_size)
        ]


def _collection(client: Any, name: str, create: bool) -> Any:
    if create:
        return client.get_or_create_collection(
            name, configuration={"hnsw": {"space": "cosine"}}, embedding_function=None
        )
    from chromadb.errors import NotFoundError

    try:
        return client.get_collection(name, embedding_function=None)
    except NotFoundError as error:
        raise IndexMissingError(
            f"The vector store has no collection {name!r} — run `rag index --rebuild`"
        ) from error
