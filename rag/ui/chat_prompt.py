"""The interactive prompt of `rag chat`: prompt_toolkit line editing with a persistent history.

Enter sends a question (a trailing backslash continues it on a new line), Esc+Enter
adds a line, and Ctrl-C clears the line or, on an empty prompt, quits. Typed questions
are remembered in a history file between sessions. prompt_toolkit is imported only
when the prompt opens. Left out: what is done with a line (`rag.ui.repl`) and the
non-interactive mode, which reads stdin line by line without a prompt.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rag.errors import RagError

if TYPE_CHECKING:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.key_binding import KeyBindings

PROMPT = "rag› "
CONTINUATION = "   … "
MULTILINE_HINT = "Esc+Enter or a trailing \\ continues on a new line"


def default_history_file() -> Path:
    """Where typed questions are remembered between sessions."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("rag")) / "chat_history"


def prompt_session(history_file: Path) -> PromptSession[str]:
    """A multi-line prompt with the key bindings below, remembering questions in `history_file`."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
    from prompt_toolkit.history import FileHistory

    try:
        history_file.parent.mkdir(parents=True, exist_ok=True)
        history_file.touch(exist_ok=True)
    except OSError as error:
        raise RagError(
            f"cannot use the history file {history_file} ({error.strerror}) — pass --history-file"
        ) from None
    return PromptSession(
        history=FileHistory(str(history_file)),
        auto_suggest=AutoSuggestFromHistory(),
        multiline=True,
        key_bindings=_key_bindings(),
        prompt_continuation=CONTINUATION,
    )


def _key_bindings() -> KeyBindings:
    """Enter sends (a trailing backslash continues); Esc+Enter adds a line; Ctrl-C clears or quits."""
    from prompt_toolkit.enums import DEFAULT_BUFFER
    from prompt_toolkit.filters import has_focus
    from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent

    bindings = KeyBindings()
    editing = has_focus(DEFAULT_BUFFER)

    @bindings.add("enter", filter=editing)
    def _send(event: KeyPressEvent) -> None:
        buffer = event.current_buffer
        if buffer.document.is_cursor_at_the_end and buffer.text.endswith("\\"):
            buffer.delete_before_cursor(1)
            buffer.insert_text("\n")
        else:
            buffer.validate_and_handle()

    @bindings.add("escape", "enter", filter=editing)
    def _newline(event: KeyPressEvent) -> None:
        event.current_buffer.insert_text("\n")

    @bindings.add("c-c", filter=editing)
    def _clear_or_quit(event: KeyPressEvent) -> None:
        if event.current_buffer.text:
            event.current_buffer.reset()
        else:
            event.app.exit(exception=KeyboardInterrupt, style="class:aborting")

    return bindings
