"""The slash commands of `rag chat` as text: their list, parsing, and what `/save` writes.

`parse_command` tells a question from a command (`/filter outlet=taz`), `parse_filter`
applies `/filter` arguments to the current `SearchFilters`, `describe_filters` names
them on one line, and `conversation_markdown` is the file `/save` writes. These are
pure functions over strings and frozen values, with an `InputError` for what cannot
be read. Left out: running the commands against a conversation (`rag.ui.repl.ChatSession`)
and reading input (`rag.ui.chat_prompt`).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, replace
from datetime import date
from typing import TYPE_CHECKING

from rag.errors import InputError
from rag.types import SearchFilters

if TYPE_CHECKING:
    from rag.answering.result import Answer

MAX_K = 20

COMMANDS: dict[str, tuple[str, str]] = {
    "help": ("/help", "show this list"),
    "sources": ("/sources [n]", "list the last answer's passages, or show passage n in full"),
    "k": ("/k N", f"give the model N passages (1–{MAX_K})"),
    "comments": ("/comments on|off", "also search reader comments, or not"),
    "filter": (
        "/filter source=… outlet=… since=… until=… | clear",
        "restrict retrieval; no argument shows it",
    ),
    "model": ("/model", "show the loaded model"),
    "reset": ("/reset", "forget the conversation (follow-ups start fresh)"),
    "save": ("/save FILE", "write the conversation as Markdown with citations and sources"),
    "exit": ("/exit", "quit (also /quit, Ctrl-D, or Ctrl-C at an empty prompt)"),
}
ALIASES = {"quit": "exit", "q": "exit", "?": "help"}
FILTER_KEYS = ("source", "outlet", "since", "until")


@dataclass(frozen=True)
class Command:
    """A parsed slash command: `/filter outlet=taz` is Command("filter", ("outlet=taz",))."""

    name: str
    args: tuple[str, ...] = ()


def parse_command(line: str) -> Command | None:
    """The slash command on `line`, or None when the line is a question.

    Arguments are split shell-style, so `/save "my chat.md"` keeps the space.
    """
    text = line.strip()
    if not text.startswith("/"):
        return None
    try:
        words = shlex.split(text[1:])
    except ValueError as error:
        raise InputError(f"cannot read {text!r} ({error}) — close the quote") from None
    if not words:
        return Command("")
    name = words[0].lower()
    return Command(ALIASES.get(name, name), tuple(words[1:]))


def parse_filter(args: tuple[str, ...], current: SearchFilters) -> SearchFilters:
    """Apply `/filter` arguments (key=value pairs, or `clear`) to the current filters."""
    if args == ("clear",):
        return SearchFilters(include_comments=current.include_comments)
    changes: dict[str, object] = {}
    sources: list[str] = []
    for arg in args:
        key, sep, value = arg.partition("=")
        key = key.strip().lower()
        if not sep or key not in FILTER_KEYS or not value.strip():
            raise InputError(
                f"cannot use {arg!r} — write /filter {' | '.join(f'{k}=…' for k in FILTER_KEYS)} | clear"
            )
        value = value.strip()
        if key == "source":
            sources.append(value)
        elif key == "outlet":
            changes["outlet"] = value
        else:
            try:
                date.fromisoformat(value)
            except ValueError:
                raise InputError(f"{key}={value} is not a date — write {key}=YYYY-MM-DD") from None
            changes["date_from" if key == "since" else "date_to"] = value
    if sources:
        changes["sources"] = tuple(sources)
    return replace(current, **changes)  # type: ignore[arg-type]


def describe_filters(filters: SearchFilters) -> str:
    """One line naming the active filters."""
    parts = [f"source={s}" for s in filters.sources]
    if filters.outlet:
        parts.append(f"outlet={filters.outlet}")
    if filters.date_from:
        parts.append(f"since={filters.date_from}")
    if filters.date_to:
        parts.append(f"until={filters.date_to}")
    parts.append(f"comments={'on' if filters.include_comments else 'off'}")
    return " ".join(parts)


def int_argument(args: tuple[str, ...], usage: str, low: int, high: int) -> int:
    """The single integer argument within [low, high], or a one-line InputError."""
    if len(args) == 1 and args[0].isdigit() and low <= int(args[0]) <= high:
        return int(args[0])
    raise InputError(f"write {usage} with a number from {low} to {high}")


def conversation_markdown(answers: list[Answer], title: str) -> str:
    """The conversation as Markdown: each question, its answer with [n] markers, and its sources."""
    lines = [f"# {title}", ""]
    for number, result in enumerate(answers, 1):
        lines += [f"## {number}. {result.question}", ""]
        if result.previous_question:
            lines += [f"*Read with:* {result.previous_question}", ""]
        lines += [result.answer, ""]
        if result.citations:
            lines += ["Sources:", ""]
            for citation in result.citations:
                lines.append(
                    f"- [{citation.n}] {citation.title} — `{citation.source}`, "
                    f"characters {citation.start}–{citation.end}: “{citation.quote}”"
                )
            lines.append("")
    return "\n".join(lines)
