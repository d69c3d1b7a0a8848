"""The index on a Chroma server: published versions, their files, and the vectors each reader sees.

With `chroma_url` set, the vectors live on a Chroma server (chromadb's `HttpClient`,
telemetry off, our own embeddings only), so that several machines share one index.
Everything on the server carries the `chroma_prefix` (P below):

    P-catalog        its collection metadata is the pointer: the current and the previous
                     version and the collections holding their vectors; its records hold
                     each version's manifest.json and chunks.jsonl (gzip, base64, in parts,
                     in metadata strings: documents would be full-text indexed)
    P-lock           exists while a writer works; names the holder, with a heartbeat
    P-<fp>-<v>-chunks, P-<fp>-<v>-chunks_multilingual
                     vectors of settings fingerprint fp, created by the full build of
                     version v and shared by the incremental versions after it

A vector record's id is the chunk's content hash, so versions share records: a
writer only adds the vectors of new chunks and never deletes while readers may use
them; each reader sees the ids of its own version only (`VisibleStore`). The pointer
moves in one metadata update after a version is complete, so readers never see half
of one, and the next writer removes what neither the current nor the previous
version uses.

Left out: connecting and one-line errors (rag.index.server_connection), the writers'
lock (rag.index.server_lock), what goes into a version (rag.index.build builds it and
rag.index.server_cache keeps its files, including the BM25 index, in the local index
directory) and authentication.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import re
from collections.abc import Collection, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.errors import ServerError
from rag.index.server_connection import connect_client, server_errors
from rag.index.server_lock import writer_lock
from rag.index.store import ChromaStore, nearest_kept

if TYPE_CHECKING:
    import numpy as np

    from rag.index.store import Where
    from rag.types import Chunk

BLOB_PART_CHARS = 2_000_000
POINTER_FORMAT = 1
# P-<fingerprint>-<version>-<collection>; rag.index.layout names versions like 20260220T101500-1a2b3c4d.
_VECTORS_NAME = re.compile(
    r"(?P<prefix>.+)-[0-9a-f]{16}-\d{8}T\d{6}-[0-9a-f]{8}-(?P<collection>chunks|chunks_multilingual)"
)


def vectors_stem(prefix: str, fingerprint: str, version: str) -> str:
    """The name stem of the collections a full build of `version` creates for settings `fingerprint`."""
    return f"{prefix}-{fingerprint}-{version}"


@dataclass(frozen=True)
class Pointer:
    """The published state: the current and the previous version, and the vectors each reads."""

    current: str
    current_vectors: str
    previous: str | None = None
    previous_vectors: str | None = None

    def to_metadata(self) -> dict[str, str | int]:
        return {
            "pointer_format": POINTER_FORMAT,
            "current": self.current,
            "current_vectors": self.current_vectors,
            "previous": self.previous or "",
            "previous_vectors": self.previous_vectors or "",
        }

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any] | None) -> Pointer | None:
        if not metadata or not metadata.get("current"):
            return None
        return cls(
            str(metadata["current"]),
            str(metadata["current_vectors"]),
            str(metadata.get("previous") or "") or None,
            str(metadata.get("previous_vectors") or "") or None,
        )

    def versions(self) -> dict[str, str]:
        """Version name -> vectors of the versions readers may still use."""
        kept = {self.current: self.current_vectors}
        if self.previous and self.previous_vectors:
            kept[self.previous] = self.previous_vectors
        return kept


class ServerIndex:
    """One index (one prefix) on a Chroma server, reached through chromadb's HttpClient."""

    def __init__(self, client: Any, url: str, prefix: str) -> None:
        self._client = client
        self.url = url
        self.prefix = prefix

    @classmethod
    def connect(cls, url: str, prefix: str) -> ServerIndex:
        """Connect, failing within seconds with one line when no Chroma server answers at `url`."""
        return cls(connect_client(url), url, prefix)

    def describe(self) -> str:
        return f"The index {self.prefix!r} on the Chroma server at {self.url}"

    # The pointer and the versions' files --------------------------------
    def _catalog(self) -> Any:
        return self._client.get_or_create_collection(f"{self.prefix}-catalog", embedding_function=None)

    def pointer(self) -> Pointer | None:
        """The published versions, or None when nothing was published under this prefix yet."""
        with server_errors(self.url):
            return Pointer.from_metadata(self._catalog().metadata)

    def publish(self, pointer: Pointer) -> None:
        """Make `pointer.current` the version every reader opens (one metadata update)."""
        with server_errors(self.url):
            self._catalog().modify(metadata=pointer.to_metadata())

    def upload(self, version: str, directory: Path, names: Sequence[str]) -> None:
        """Store the files `names` of `directory` as `version`'s files on the server."""
        with server_errors(self.url):
            catalog = self._catalog()
            for name in names:
                raw = (directory / name).read_bytes()
                sha256 = hashlib.sha256(raw).hexdigest()
                encoded = base64.b64encode(gzip.compress(raw, compresslevel=6)).decode("ascii")
                parts = [
                    encoded[offset : offset + BLOB_PART_CHARS]
                    for offset in range(0, max(1, len(encoded)), BLOB_PART_CHARS)
                ]
                for number, part in enumerate(parts):
                    catalog.upsert(
                        ids=[f"{version}/{name}/{number:05d}"],
                        embeddings=[[0.0]],
                        metadatas=[
                            {
                                "version": version,
                                "file": name,
                                "part": number,
                                "parts": len(parts),
                                "sha256": sha256,
                                "data": part,
                            }
                        ],
                    )

    def download(self, version: str, directory: Path, names: Sequence[str]) -> None:
        """Write `version`'s files `names` into `directory`, checking each against its hash."""
        with server_errors(self.url):
            catalog = self._catalog()
            for name in names:
                found = catalog.get(
                    where={"$and": [{"version": version}, {"file": name}]}, include=["metadatas"]
                )["metadatas"]
                parts = sorted(found, key=lambda meta: int(meta["part"]))
                if not parts or len(parts) != int(parts[0]["parts"]):
                    raise ServerError(
                        f"{self.describe()} lacks {name} of version {version} — it was replaced meanwhile; "
                        "start the command again"
                    )
                raw = gzip.decompress(base64.b64decode("".join(str(meta["data"]) for meta in parts)))
                if hashlib.sha256(raw).hexdigest() != parts[0]["sha256"]:
                    raise ServerError(
                        f"{self.describe()} holds a damaged {name} of version {version} "
                        "— run `rag index --rebuild`"
                    )
                (directory / name).write_bytes(raw)

    # Vectors -------------------------------------------------------------
    def vectors(
        self, stem: str, visible: Collection[str] | None = None, create: bool = False
    ) -> VisibleStore:
        """The first encoder's vectors in the collections `stem`-*; `visible` limits what queries see."""
        from rag.index.store import COLLECTION_NAME

        return VisibleStore(self, stem, COLLECTION_NAME, visible, create)

    def _store(self, name: str, create: bool) -> ChromaStore:
        with server_errors(self.url):
            return ChromaStore.from_client(self._client, name, create)

    def collect_garbage(self, kept: dict[str, set[str]]) -> None:
        """Remove every version's files and vectors except those of `kept` (vectors stem -> chunk ids).

        Called by a writer under the lock, so no version is being built meanwhile.
        """
        pointer = self.pointer()
        live_versions = list(pointer.versions()) if pointer else []
        with server_errors(self.url):
            if live_versions:
                self._catalog().delete(where={"version": {"$nin": live_versions}})
            else:
                self._catalog().delete(where={"version": {"$ne": ""}})
            for name in self._collection_names():
                match = _VECTORS_NAME.fullmatch(name)
                if match is None or match["prefix"] != self.prefix:
                    continue
                stem = name.removesuffix("-" + match["collection"])
                if stem not in kept:
                    self._client.delete_collection(name)
                    continue
                store = ChromaStore.from_client(self._client, name, create=False)
                store.delete(store.ids() - kept[stem])

    def _collection_names(self) -> list[str]:
        names: list[str] = []
        page = 100
        while batch := self._client.list_collections(limit=page, offset=len(names)):
            names.extend(collection.name for collection in batch)
            if len(batch) < page:
                break
        return names

    # The writers' lock ---------------------------------------------------
    def lock(self) -> AbstractContextManager[None]:
        """Hold the server-wide writer lock, or raise IndexLockedError within a few seconds."""
        return writer_lock(self._client, f"{self.prefix}-lock", self.url, self.describe())


class VisibleStore:
    """A `VectorStore` over shared server collections, showing queries only the ids in `visible`.

    `visible` None (a writer) shows everything. Queries ask for k hits and, when some
    belong to other versions, ask again for more until k visible ones are found or
    the collection is exhausted.
    """

    def __init__(
        self, server: ServerIndex, stem: str, name: str, visible: Collection[str] | None, create: bool
    ) -> None:
        self._server = server
        self._stem = stem
        self._visible = frozenset(visible) if visible is not None else None
        self._store = server._store(f"{stem}-{name}", create)

    def sibling(self, collection_name: str, create: bool = False) -> VisibleStore:
        return VisibleStore(self._server, self._stem, collection_name, self._visible, create)

    def add(self, chunks: Sequence[Chunk], embeddings: np.ndarray) -> None:
        with server_errors(self._server.url):
            self._store.add(chunks, embeddings)

    def delete(self, ids: Collection[str]) -> None:
        with server_errors(self._server.url):
            self._store.delete(ids)

    def query(
        self,
        embedding: np.ndarray,
        k: int,
        where: Where | None = None,
        allowed_ids: Collection[str] | None = None,
    ) -> list[tuple[str, float]]:
        visible = self._visible
        if visible is None or allowed_ids is not None:
            allowed = allowed_ids if visible is None else visible.intersection(allowed_ids or ())
            with server_errors(self._server.url):
                return self._store.query(embedding, k, where, allowed)
        with server_errors(self._server.url):
            return nearest_kept(self._store, embedding, k, visible, where)

    def embeddings(self, ids: Collection[str]) -> dict[str, np.ndarray]:
        with server_errors(self._server.url):
            return self._store.embeddings(ids)

    def metadata(self, ids: Collection[str]) -> dict[str, dict[str, Any]]:
        with server_errors(self._server.url):
            return self._store.metadata(ids)

    def count(self) -> int:
        if self._visible is None:
            with server_errors(self._server.url):
                return self._store.count()
        return len(self.ids())

    def ids(self) -> set[str]:
        with server_errors(self._server.url):
            stored = self._store.ids()
        return stored if self._visible is None else stored & self._visible

    def close(self) -> None:
        """Nothing to release: the HTTP client belongs to the ServerIndex."""
