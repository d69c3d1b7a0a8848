"""The user interface: the `rag` command line, the `rag chat` loop and `rag doctor`.

`cli` holds the click group and the `rag` entry point; the commands live by what users
do with them (`commands_index`, `commands_ask`, `commands_eval`, `commands_setup`),
sharing their flags (`options`) and their consoles (`output`). Each parses flags, calls
one core function and renders with rich (`render`). `repl` is the interactive chat,
with its slash commands in `slash_commands` and its line editing in `chat_prompt`;
`supervise` runs commands that load llama.cpp in a forked child so a native crash
becomes one line; `doctor` checks the installation, with llama.cpp only in a child
process (`python -m rag.ui.doctor`). Left out: every decision about retrieval and
answering, which lives in the stages below.

Each name below is imported from its module on first use (PEP 562 `__getattr__`), so
importing one module of the stage does not import the rest of it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rag.ui.cli import main
    from rag.ui.doctor import Check, run_checks
    from rag.ui.render import render_answer, safe_text, stream_answer
    from rag.ui.repl import run_chat
    from rag.ui.supervise import enable_crash_log, run_supervised

__all__ = [
    "Check",
    "enable_crash_log",
    "main",
    "render_answer",
    "run_chat",
    "run_checks",
    "run_supervised",
    "safe_text",
    "stream_answer",
]

# Public name -> the module it is imported from on first use.
_EXPORTS = {
    "main": "rag.ui.cli",
    "Check": "rag.ui.doctor",
    "run_checks": "rag.ui.doctor",
    "render_answer": "rag.ui.render",
    "safe_text": "rag.ui.render",
    "stream_answer": "rag.ui.render",
    "run_chat": "rag.ui.repl",
    "enable_crash_log": "rag.ui.supervise",
    "run_supervised": "rag.ui.supervise",
}


def __getattr__(name: str) -> Any:
    """Import the module of a public name on its first use (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
