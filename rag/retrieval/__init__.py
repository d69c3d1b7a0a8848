"""Retrieval: text out of the index, as passages for a question or as the span a citation names.

`retrieve` fuses BM25 and two dense scores into ranked passages for a query; `show`
reads a cited span back from its source the way the index read it. Left out: building
the index (rag.index), and choosing or phrasing an answer (rag.answering).

Each name below is imported from its module on first use (PEP 562 `__getattr__`), so
importing one module of the stage does not import the rest of it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rag.retrieval.retrieve import Retriever, check_query
    from rag.retrieval.show import SpanView, show_span

__all__ = [
    "Retriever",
    "SpanView",
    "check_query",
    "show_span",
]

# Public name -> the module it is imported from on first use.
_EXPORTS = {
    "Retriever": "rag.retrieval.retrieve",
    "check_query": "rag.retrieval.retrieve",
    "SpanView": "rag.retrieval.show",
    "show_span": "rag.retrieval.show",
}


def __getattr__(name: str) -> Any:
    """Import the module of a public name on its first use (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
