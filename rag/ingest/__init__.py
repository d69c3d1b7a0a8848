"""Ingest: from files on disk to Documents with canonical text, metadata, sections and chunks.

`discovery` finds the input files, `read` reads each into Documents (the one way to
the canonical text that every span points into), `formats` extracts web pages, PDFs and
CSV/JSONL collections, `metadata` finds author, date and outlet in the text,
`cleaning` labels body, comments and boilerplate, and `chunk` cuts sections into
sentence-aligned chunks. Left out: embedding, storing and the index on disk
(rag.index), and any model.

Each name below is imported from its module on first use (PEP 562 `__getattr__`), so
importing one module of the stage does not import the rest of it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rag.ingest.chunk import CHUNKER_VERSION, chunk_document, split_sentences
    from rag.ingest.cleaning import OUTLETS, RULES, label_sections
    from rag.ingest.discovery import discover
    from rag.ingest.formats import EXTRACTOR_VERSION, extractor_fingerprint
    from rag.ingest.formats.collection import CollectionOptions
    from rag.ingest.metadata import extract_metadata, metadata_fingerprint, parse_date
    from rag.ingest.read import READERS, decode_file, read_document, read_documents, read_source

__all__ = [
    "CHUNKER_VERSION",
    "EXTRACTOR_VERSION",
    "OUTLETS",
    "READERS",
    "RULES",
    "CollectionOptions",
    "chunk_document",
    "decode_file",
    "discover",
    "extract_metadata",
    "extractor_fingerprint",
    "label_sections",
    "metadata_fingerprint",
    "parse_date",
    "read_document",
    "read_documents",
    "read_source",
    "split_sentences",
]

# Public name -> the module it is imported from on first use.
_EXPORTS = {
    "CHUNKER_VERSION": "rag.ingest.chunk",
    "chunk_document": "rag.ingest.chunk",
    "split_sentences": "rag.ingest.chunk",
    "OUTLETS": "rag.ingest.cleaning",
    "RULES": "rag.ingest.cleaning",
    "label_sections": "rag.ingest.cleaning",
    "EXTRACTOR_VERSION": "rag.ingest.formats",
    "extractor_fingerprint": "rag.ingest.formats",
    "CollectionOptions": "rag.ingest.formats.collection",
    "discover": "rag.ingest.discovery",
    "extract_metadata": "rag.ingest.metadata",
    "metadata_fingerprint": "rag.ingest.metadata",
    "parse_date": "rag.ingest.metadata",
    "READERS": "rag.ingest.read",
    "decode_file": "rag.ingest.read",
    "read_document": "rag.ingest.read",
    "read_documents": "rag.ingest.read",
    "read_source": "rag.ingest.read",
}


def __getattr__(name: str) -> Any:
    """Import the module of a public name on its first use (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
