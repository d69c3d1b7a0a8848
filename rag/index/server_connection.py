"""Reaching a Chroma server: the URL, a heartbeat probe, the HTTP client, and one-line errors.

`connect_client` checks that `--chroma-url` names a server's root, asks its heartbeat
within seconds (so a wrong URL or a stopped server fails at once, in one line), and
returns chromadb's `HttpClient` with telemetry off and a request timeout (chromadb's
own session waits forever). `server_errors` turns a request that fails later into a
one-line ServerError.

Left out: what is stored on the server (rag.index.chroma_server) and authentication.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from rag.errors import ServerError

CONNECT_TIMEOUT_SECONDS = 3.0
REQUEST_TIMEOUT_SECONDS = 300.0  # one batch of thousands of vectors may take a while on a busy server


def connect_client(url: str) -> Any:
    """chromadb's HttpClient for `url`, failing within seconds with one line when no server answers."""
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
    return client


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
