"""Text rules shared by several stages: a question's language, and untrusted text made safe.

`language` tells German from English questions and refuses one plainly in another
language; `sanitize` removes what could act on the terminal (escape sequences) or on
the model (invisible characters, chat-template tokens) from text that is only data.
Left out: reading files (rag.ingest) and anything that needs a model.

Each name below is imported from its module on first use (PEP 562 `__getattr__`), so
importing one module of the stage does not import the rest of it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rag.text.language import Language, detect_language, question_language
    from rag.text.sanitize import for_prompt, for_terminal, json_line

__all__ = [
    "Language",
    "detect_language",
    "for_prompt",
    "for_terminal",
    "json_line",
    "question_language",
]

# Public name -> the module it is imported from on first use.
_EXPORTS = {
    "Language": "rag.text.language",
    "detect_language": "rag.text.language",
    "question_language": "rag.text.language",
    "for_prompt": "rag.text.sanitize",
    "for_terminal": "rag.text.sanitize",
    "json_line": "rag.text.sanitize",
}


def __getattr__(name: str) -> Any:
    """Import the module of a public name on its first use (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
