"""Reading an OpenAI-compatible chat stream: server-sent events, their JSON, stop sequences.

`rag.answering.llm_client.ServerChatModel` reads `/chat/completions` with `stream: true`
through these: `sse_data` yields each event's payload, `event_json` parses it (or names
the server in a one-line `ServerError`), and `choice_text` takes the first choice's text
through a `StopScanner`, which cuts at the first stop sequence and holds back text that
may start one. Leaves out: the HTTP connection and its errors (`llm_client`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from rag.errors import ServerError


class StopScanner:
    """Cuts streamed text at the first stop sequence, holding back a possible start of one.

    Servers apply `stop` too, but some accept only four sequences; this keeps the cut exact.
    """

    def __init__(self, stop: list[str]) -> None:
        self._stop = [sequence for sequence in stop if sequence]
        self._pending = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        """The part of `text` that is safe to show now."""
        if self.stopped:
            return ""
        self._pending += text
        cuts = [index for sequence in self._stop if (index := self._pending.find(sequence)) >= 0]
        if cuts:
            self.stopped = True
            shown, self._pending = self._pending[: min(cuts)], ""
            return shown
        keep = max((_overlap(self._pending, sequence) for sequence in self._stop), default=0)
        shown = self._pending[: len(self._pending) - keep]
        self._pending = self._pending[len(shown) :]
        return shown

    def flush(self) -> str:
        """Whatever was held back, once the stream has ended."""
        shown, self._pending = self._pending, ""
        return shown


def _overlap(text: str, sequence: str) -> int:
    """Length of the longest end of `text` that is a proper start of `sequence`."""
    for size in range(min(len(text), len(sequence) - 1), 0, -1):
        if text.endswith(sequence[:size]):
            return size
    return 0


def sse_data(lines: Iterator[str]) -> Iterator[str]:
    """The `data:` payloads of a server-sent event stream (comments and pings skipped)."""
    for line in lines:
        if line.startswith("data:"):
            yield line[5:].strip()


def choice_text(chunk: Mapping[str, Any], held: StopScanner) -> tuple[str, str | None]:
    """The text an event's first choice adds, and its finish reason if it ends the answer.

    Text that may start a stop sequence is held back until it cannot, or the answer ends.
    """
    for choice in chunk.get("choices", [])[:1]:
        text = held.feed((choice.get("delta") or {}).get("content") or "")
        finished = choice.get("finish_reason") or None
        if finished:
            text += held.flush()
        return text, finished
    return "", None


def event_json(event: str, url: str) -> dict[str, Any]:
    """One event's payload as a JSON object; a ServerError naming the server otherwise."""
    try:
        chunk = json.loads(event)
    except ValueError:
        chunk = None
    if not isinstance(chunk, dict):
        raise ServerError(
            f"The model server at {url} sent an event that is not a JSON object — check --llm-url"
        )
    return chunk
