"""The index on a Chroma server: connection, published versions, the writers' lock, visible vectors.

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
version uses. The lock is a collection, because creating one that exists fails on
the server: one writer at a time across machines. A writer that died leaves a lock
whose heartbeat stops (or whose process is gone, on the same host); the next writer
takes it over.

Left out: what goes into a version (rag.index.update builds it and keeps its files,
including the BM25 index, in the local index directory) and authentication.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import os
import re
import socket
import threading
import time
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from rag.errors import IndexLockedError, ServerError
from rag.index.store import ChromaStore

if TYPE_CHECKING:
    import numpy as np

    from rag.index.store import Where
    from rag.types import Chunk

CONNECT_TIMEOUT_SECONDS = 3.0
REQUEST_TIMEOUT_SECONDS = 300.0  # one batch of thousands of vectors may take a while on a busy server
LOCK_WAIT_SECONDS = 3.0
HEARTBEAT_SECONDS = 10.0
LOCK_STALE_SECONDS = 60.0  # a lock whose heartbeat is older than this belongs to a dead writer
BLOB_PART_CHARS = 2_000_000
POINTER_FORMAT = 1
# P-<fingerprint>-<version>-<collection>; rag.index.update names versions like 20260220T101500-1a2b3c4d.
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


def _server_root(url: str) -> tuple[str, int, bool]:
    parts = urlsplit(url)
    if parts.path not in ("", "/"):
        raise ServerError(
            f"--chroma-url {url} has a path — give the server's root, e.g. http://localhost:8000"
        )
    ssl = parts.scheme == "https"
    return parts.hostname or "localhost", parts.port or (443 if ssl else 8000), ssl


def _probe(url: str) -> None:
    """Fail within seconds, in one line, unless a Chroma server answers its heartbeat at `url`."""
    import httpx

    fix = "start it with `chroma run --path DIR --port PORT`, or fix --chroma-url"
    try:
        response = httpx.get(f"{url}/api/v2/heartbeat", timeout=CONNECT_TIMEOUT_SECONDS)
    except httpx.ConnectError as error:
        raise ServerError(f"Cannot reach the Chroma server at {url} ({_one_line(error)}) — {fix}") from None
    except httpx.TimeoutException:
        raise ServerError(
            f"The Chroma server at {url} did not answer within {CONNECT_TIMEOUT_SECONDS:.0f} s — {fix}"
        ) from None
    except httpx.HTTPError as error:
        raise ServerError(f"Cannot talk to the Chroma server at {url} ({_one_line(error)}) — {fix}") from None
    try:
        alive = response.status_code == 200 and "nanosecond heartbeat" in response.json()
    except ValueError:
        alive = False
    if not alive:
        raise ServerError(
            f"No Chroma server answers at {url} (HTTP {response.status_code} on /api/v2/heartbeat) "
            "— check --chroma-url (it needs a Chroma 1.x server)"
        )


@contextmanager
def server_errors(url: str) -> Iterator[None]:
    """Turn a failing request to the Chroma server into a one-line ServerError."""
    import httpx
    from chromadb.errors import ChromaError

    try:
        yield
    except httpx.TimeoutException:
        raise ServerError(
            f"The Chroma server at {url} did not answer for {REQUEST_TIMEOUT_SECONDS:.0f} s "
            "— check that it is running and not overloaded"
        ) from None
    except httpx.HTTPError as error:
        raise ServerError(
            f"Lost the connection to the Chroma server at {url} ({_one_line(error)}) — is it running?"
        ) from None
    except ChromaError as error:
        raise ServerError(
            f"The Chroma server at {url} refused a request ({_one_line(error)}) — check its log"
        ) from None


def _one_line(value: object) -> str:
    return " ".join(str(value).split())[:200]


class ServerIndex:
    """One index (one prefix) on a Chroma server, reached through chromadb's HttpClient."""

    def __init__(self, client: Any, url: str, prefix: str) -> None:
        self._client = client
        self.url = url
        self.prefix = prefix

    @classmethod
    def connect(cls, url: str, prefix: str) -> ServerIndex:
        """Connect, failing within seconds with one line when no Chroma server answers at `url`."""
        import chromadb
        import httpx
        from chromadb.config import Settings as ChromaSettings

        host, port, ssl = _server_root(url)
        _probe(url)
        with server_errors(url):
            client = chromadb.HttpClient(
                host=host, port=port, ssl=ssl, settings=ChromaSettings(anonymized_telemetry=False)
            )
        # chromadb's HTTP session waits forever (timeout=None) and offers no setting for it.
        session = getattr(getattr(client, "_server", None), "_session", None)
        if isinstance(session, httpx.Client):
            session.timeout = httpx.Timeout(REQUEST_TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS)
        return cls(client, url, prefix)

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
    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the server-wide writer lock, or raise IndexLockedError within a few seconds."""
        from chromadb.errors import ChromaError

        name = f"{self.prefix}-lock"
        holder = {"host": socket.gethostname(), "pid": os.getpid()}
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        with server_errors(self.url):
            while True:
                try:
                    self._client.create_collection(
                        name, metadata={**holder, "heartbeat": self._server_time()}, embedding_function=None
                    )
                    break
                except ChromaError:  # it exists: another writer holds it, or a dead one left it
                    owner = self._lock_owner(name)
                    if owner is not None and self._is_stale(owner):
                        self._client.delete_collection(name)
                        continue
                    if time.monotonic() >= deadline:
                        who = f" (pid {owner.get('pid')} on {owner.get('host')})" if owner else ""
                        raise IndexLockedError(
                            f"{self.describe()} is being written by another `rag index`{who} "
                            "— wait for it to finish, then try again"
                        ) from None
                    time.sleep(0.25)
        stop = threading.Event()
        beat = threading.Thread(target=self._beat, args=(name, holder, stop), daemon=True)
        beat.start()
        try:
            yield
        finally:
            stop.set()
            beat.join()
            with server_errors(self.url):
                self._client.delete_collection(name)

    def _lock_owner(self, name: str) -> dict[str, Any] | None:
        from chromadb.errors import NotFoundError

        try:
            return dict(self._client.get_collection(name).metadata or {})
        except NotFoundError:
            return None  # released meanwhile: try again

    def _is_stale(self, owner: dict[str, Any]) -> bool:
        import psutil

        if owner.get("host") == socket.gethostname() and not psutil.pid_exists(int(owner.get("pid", 0))):
            return True
        heartbeat = float(owner.get("heartbeat", 0))
        return self._server_time() - heartbeat > LOCK_STALE_SECONDS

    def _server_time(self) -> float:
        """Seconds on the server's clock, so that hosts with skewed clocks agree on staleness."""
        return int(self._client.heartbeat()) / 1e9

    def _beat(self, name: str, holder: dict[str, Any], stop: threading.Event) -> None:
        while not stop.wait(HEARTBEAT_SECONDS):
            try:
                self._client.get_collection(name).modify(
                    metadata={**holder, "heartbeat": self._server_time()}
                )
            except (
                Exception
            ):  # a missed beat only matters after LOCK_STALE_SECONDS; the writer reports errors
                continue


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
        asked = k
        while True:
            with server_errors(self._server.url):
                hits = self._store.query(embedding, asked, where)
            shown = [(chunk_id, score) for chunk_id, score in hits if chunk_id in visible]
            if len(shown) >= k or len(hits) < asked:
                return shown[:k]
            asked *= 4

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
