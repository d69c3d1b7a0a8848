"""The writers' lock on a Chroma server: one `rag index` at a time across machines.

The lock is a collection (P-lock, P the index's prefix), because creating one that
exists fails on the server. Its metadata names the holder (host and pid) with a
heartbeat on the server's clock, renewed by a thread while the writer works. A writer
that died leaves a lock whose heartbeat stops (or whose process is gone, on the same
host); the next writer takes it over. A live holder makes the next writer fail with
IndexLockedError within seconds instead of waiting.

Left out: the local index lock (rag.index.layout) and what the writer does meanwhile.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rag.errors import IndexLockedError
from rag.index.server_connection import server_errors

LOCK_WAIT_SECONDS = 3.0
HEARTBEAT_SECONDS = 10.0
LOCK_STALE_SECONDS = 60.0  # a lock whose heartbeat is older than this belongs to a dead writer


@contextmanager
def writer_lock(client: Any, name: str, url: str, place: str) -> Iterator[None]:
    """Hold the lock collection `name` on the server at `url`, or raise IndexLockedError within seconds.

    `place` names the index in that error (ServerIndex.describe()).
    """
    holder = {"host": socket.gethostname(), "pid": os.getpid()}
    with server_errors(url):
        _take(client, name, holder, place)
    stop = threading.Event()
    beat = threading.Thread(target=_beat, args=(client, name, holder, stop), daemon=True)
    beat.start()
    try:
        yield
    finally:
        stop.set()
        beat.join()
        with server_errors(url):
            client.delete_collection(name)


def _take(client: Any, name: str, holder: dict[str, Any], place: str) -> None:
    """Create the lock collection, taking over a stale one; give up after LOCK_WAIT_SECONDS."""
    from chromadb.errors import ChromaError

    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while True:
        try:
            client.create_collection(
                name, metadata={**holder, "heartbeat": _server_time(client)}, embedding_function=None
            )
            return
        except ChromaError:  # it exists: another writer holds it, or a dead one left it
            owner = _lock_owner(client, name)
            if owner is not None and _is_stale(client, owner):
                client.delete_collection(name)
                continue
            if time.monotonic() >= deadline:
                who = f" (pid {owner.get('pid')} on {owner.get('host')})" if owner else ""
                raise IndexLockedError(
                    f"{place} is being written by another `rag index`{who} "
                    "— wait for it to finish, then try again"
                ) from None
            time.sleep(0.25)


def _lock_owner(client: Any, name: str) -> dict[str, Any] | None:
    from chromadb.errors import NotFoundError

    try:
        return dict(client.get_collection(name).metadata or {})
    except NotFoundError:
        return None  # released meanwhile: try again


def _is_stale(client: Any, owner: dict[str, Any]) -> bool:
    import psutil

    if owner.get("host") == socket.gethostname() and not psutil.pid_exists(int(owner.get("pid", 0))):
        return True
    heartbeat = float(owner.get("heartbeat", 0))
    return _server_time(client) - heartbeat > LOCK_STALE_SECONDS


def _server_time(client: Any) -> float:
    """Seconds on the server's clock, so that hosts with skewed clocks agree on staleness."""
    return int(client.heartbeat()) / 1e9


def _beat(client: Any, name: str, holder: dict[str, Any], stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT_SECONDS):
        try:
            client.get_collection(name).modify(metadata={**holder, "heartbeat": _server_time(client)})
        except Exception:  # a missed beat only matters after LOCK_STALE_SECONDS; the writer reports errors
            continue
