"""rag: offline question answering over a folder of news articles, with verified citations.

The package is a pipeline of stages, one subpackage each (see docs/architecture.md):
rag.text and rag.ingest, rag.index, rag.retrieval, rag.answering, rag.evaluation and
rag.ui, over the shared rag.errors, rag.types and rag.settings; imports between the
stages point one way. This module is the public facade: `Settings`, `Pipeline`, `ask`
and `RagError`. Importing it is cheap: heavy libraries load only when a stage first
needs them.
"""

import importlib
import os
from typing import TYPE_CHECKING, Any

# No model hub, no telemetry: set before any Hugging Face or Chroma import.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

__version__ = "0.1.0"

if TYPE_CHECKING:
    from rag.answering.answer import ask
    from rag.answering.pipeline import Pipeline
    from rag.errors import RagError
    from rag.settings import Settings

__all__ = ["Pipeline", "RagError", "Settings", "__version__", "ask"]

# The facade's names are imported on first access (PEP 562), not here. Every `import rag.x`
# runs this file first, and stage modules read `rag.__version__` and `rag.__file__` from it:
# importing Pipeline and ask here would run rag.answering (and through it rag.retrieval,
# rag.index, numpy and pydantic) inside every import of any module, `rag --help` and the
# doctor's child process included, and would close a cycle rag -> rag.answering -> rag.
_EXPORTS = {
    "Pipeline": "rag.answering.pipeline",
    "RagError": "rag.errors",
    "Settings": "rag.settings",
    "ask": "rag.answering.answer",
}


def __getattr__(name: str) -> Any:
    """Import the module of a public name on its first use (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
