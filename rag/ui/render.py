"""Rich rendering of answers, shared by `rag ask` (rag/ui/commands_ask.py) and `rag chat` (rag/ui/repl.py).

`stream_answer` runs `rag.answering.answer.ask` with live token display and `render_answer`
prints the verified result with its sources table. Text from documents, file
names, the model or the user reaches the screen only through `safe_text`: a rich
`Text` (never parsed as markup) without terminal escape sequences or raw control
characters (`rag.text.sanitize.for_terminal`); the CLI and the REPL use it too. Left
out: flag parsing (click lives only in the CLI) and any decision about answering.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from rag.text.sanitize import for_terminal

if TYPE_CHECKING:
    from rag.answering.pipeline import Pipeline
    from rag.answering.result import Answer

PAGE_LABELS = {"de": "S.", "en": "p."}
STATUS_LABELS = {"follow_up": "↳ read with: ", "translate": "⇄ "}
STATUS_STYLE = "dim italic"


def safe_text(text: str | None, style: str = "", single_line: bool = False) -> Text:
    """Untrusted text as rich `Text`: never markup, no escape sequence, controls shown escaped.

    `single_line` also escapes newlines and tabs (file names, error lines).
    """
    return Text(for_terminal(text or "", single_line), style=style)


def error_line(error: Exception | str) -> Text:
    """`Error: …` in red on one line, whatever file names or questions the message quotes."""
    return safe_text(f"Error: {error}", style="red", single_line=True)


def status_line(kind: str, text: str) -> Text:
    """A dimmed line for an intermediate step, e.g. `⇄ <German search question>` for a translation."""
    return safe_text(f"{STATUS_LABELS.get(kind, '')}{text}", style=STATUS_STYLE)


def span_label(start: int, end: int, page: int | None, language: str = "en") -> str:
    """A span as shown in tables: "120–340", or "S. 3 · 120–340" on page 3 of a PDF."""
    span = f"{start}–{end}"
    return span if page is None else f"{PAGE_LABELS.get(language, 'p.')} {page} · {span}"


def render_answer(result: Answer, show_passages: bool, target: Console) -> None:
    """The checked answer, notes on how sure it is, then the sources table with each quote."""
    target.print(safe_text(result.answer, style="bold" if not result.refused else "yellow"))
    if result.quoted and result.raw.strip():
        target.print(
            safe_text(f"  ↺ quoted: the model's wording did not hold up ({result.raw.strip()})", style="dim")
        )
    if result.close_call:
        target.print(
            Text(
                f"  (a close call: the best sentence was not clearly ahead of the others, confidence "
                f"{result.confidence:.2f})",
                style="dim",
            )
        )
    if result.citations:
        table = Table(title="Sources", title_justify="left")
        for column in ("#", "title", "outlet", "date", "source", "span", "quote"):
            table.add_column(column, overflow="fold")
        for citation in result.citations:
            passage = result.passages[citation.n - 1]
            table.add_row(
                str(citation.n),
                safe_text(citation.title),
                safe_text(passage.outlet),
                safe_text(passage.date),
                safe_text(citation.source, single_line=True),
                span_label(citation.start, citation.end, citation.page, result.language),
                safe_text(citation.quote),
            )
        target.print(table)
    if show_passages or (result.refused and result.passages):
        title = "Retrieved passages" if show_passages else "Closest passages"
        table = Table(title=title, title_justify="left", show_lines=True)
        for column in ("#", "source", "span", "passage"):
            table.add_column(column, overflow="fold")
        for n, passage in enumerate(result.passages, 1):
            table.add_row(
                str(n),
                safe_text(passage.source, single_line=True),
                span_label(passage.start, passage.end, passage.page, result.language),
                safe_text(passage.text),
            )
        target.print(table)


def stream_answer(pipeline: Pipeline, question: str, stream: bool, target: Console, **kwargs: Any) -> Answer:
    """Run `ask`, showing a spinner and then the tokens live; the verified answer replaces them.

    When streaming, status lines (the question a follow-up is read with, the search
    translation) are printed dimmed above the live area and stay on screen. `kwargs` go
    to `ask`.
    """
    from rich.live import Live

    from rag.answering.answer import ask

    if not stream:
        return ask(pipeline, question, **kwargs)

    def on_status(kind: str, text: str) -> None:
        target.print(status_line(kind, text))

    shown = Text(style="dim")
    waiting = Spinner("dots", text=Text("searching…", style="dim"))
    with Live(waiting, console=target, transient=True, refresh_per_second=12) as live:

        def on_token(delta: str) -> None:
            shown.append(for_terminal(delta))
            live.update(shown)

        return ask(pipeline, question, on_token=on_token, on_status=on_status, **kwargs)
