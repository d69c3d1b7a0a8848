"""The index: chunks embedded and stored, kept in step with the files, opened cheaply for reads.

`update` brings the index in line with the given files: `plan` decides what changed,
`build` writes and publishes a new version, `layout` is the index folder (versions,
links, lock, damage checks) and `manifest` what a version was built with; `reader`
opens the published version. `embed` loads the embedding models, `store` keeps the
vectors in Chroma, `chroma_server` shares an index through a Chroma server (with
`server_connection`, `server_lock`, and `server_cache` for its versions' local files),
and `keyword` is the BM25 index with its German analysis. Left out: reading and
chunking files (rag.ingest) and ranking chunks for a question (rag.retrieval).

Each name below is imported from its module on first use (PEP 562 `__getattr__`), so
importing one module of the stage does not import the rest of it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rag.index.chroma_server import ServerIndex, VisibleStore
    from rag.index.embed import Embedder, load_embedder, load_multilingual_encoder, load_token_counter
    from rag.index.keyword import KeywordIndex, analyze
    from rag.index.manifest import Manifest
    from rag.index.reader import IndexReader, open_index, published_manifest
    from rag.index.store import ChromaStore, VectorStore
    from rag.index.update import update_index

__all__ = [
    "ChromaStore",
    "Embedder",
    "IndexReader",
    "KeywordIndex",
    "Manifest",
    "ServerIndex",
    "VectorStore",
    "VisibleStore",
    "analyze",
    "load_embedder",
    "load_multilingual_encoder",
    "load_token_counter",
    "open_index",
    "published_manifest",
    "update_index",
]

# Public name -> the module it is imported from on first use.
_EXPORTS = {
    "ServerIndex": "rag.index.chroma_server",
    "VisibleStore": "rag.index.chroma_server",
    "Embedder": "rag.index.embed",
    "load_embedder": "rag.index.embed",
    "load_multilingual_encoder": "rag.index.embed",
    "load_token_counter": "rag.index.embed",
    "KeywordIndex": "rag.index.keyword",
    "analyze": "rag.index.keyword",
    "ChromaStore": "rag.index.store",
    "VectorStore": "rag.index.store",
    "Manifest": "rag.index.manifest",
    "IndexReader": "rag.index.reader",
    "open_index": "rag.index.reader",
    "published_manifest": "rag.index.reader",
    "update_index": "rag.index.update",
}


def __getattr__(name: str) -> Any:
    """Import the module of a public name on its first use (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
