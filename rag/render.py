"""Rich rendering of answers, shared by `rag ask` (rag/cli.py) and `rag chat` (rag/repl.py).

`stream_answer` runs `rag.answer.ask` with live token display and `render_answer`
prints the verified result with its sources table. Document and model text is
always wrapped in `Text`, never parsed as rich markup. Left out: flag parsing
(click lives only in the CLI) and any decision about answering.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from rag.answer import Answer
    from rag.pipeline import Pipeline

PAGE_LABELS = {"de": "S.", "en": "p."}
STATUS_LABELS = {"rewrite": "↳ ", "translate": "⇄ ", "second_look": "⟳ no verified answer; looking again at "}
STATUS_STYLE = "dim italic"


def status_line(kind: str, text: str) -> Text:
    """A dimmed line for an intermediate step, e.g. `↳ <standalone question>` for a rewrite."""
    return Text(f"{STATUS_LABELS.get(kind, '')}{text}", style=STATUS_STYLE)


def span_label(start: int, end: int, page: int | None, language: str = "en") -> str:
    """A span as shown in tables: "120–340", or "S. 3 · 120–340" on page 3 of a PDF."""
    span = f"{start}–{end}"
    return span if page is None else f"{PAGE_LABELS.get(language, 'p.')} {page} · {span}"


def render_answer(result: Answer, show_passages: bool, target: Console) -> None:
    """The verified answer, unverified sentences marked, then the sources table."""
    target.print(Text(result.answer, style="bold" if not result.refused else "yellow"))
    for sentence in result.unverified:
        target.print(Text(f"  ✗ unverified, removed: {sentence}", style="dim strike"))
    for sentence in result.replaced:
        target.print(Text(f"  ↺ replaced by the source's own words: {sentence}", style="dim"))
    if result.dropped_passages:
        target.print(
            Text(
                f"({result.dropped_passages} lower-ranked passage(s) dropped to fit the context)", style="dim"
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
                Text(citation.title),
                Text(passage.outlet or ""),
                Text(passage.date or ""),
                Text(citation.source),
                span_label(citation.start, citation.end, citation.page, result.language),
                Text(citation.quote),
            )
        target.print(table)
    if show_passages or (result.refused and result.passages):
        title = "Retrieved passages" if show_passages else "Closest passages"
        table = Table(title=title, title_justify="left", show_lines=True)
        for column in ("#", "source", "span", "passage"):
            table.add_column(column, overflow="fold")
        for n, passage in enumerate(result.passages, 1):
            span = span_label(passage.start, passage.end, passage.page, result.language)
            table.add_row(str(n), Text(passage.source), span, Text(passage.text))
        target.print(table)
        if show_passages and result.off_topic_passages:
            target.print(
                Text(
                    f"({result.off_topic_passages} more retrieved passage(s) left out: they share too little "
                    "of the question's key terms; `rag search` lists them)",
                    style="dim",
                )
            )


def stream_answer(pipeline: Pipeline, question: str, stream: bool, target: Console, **kwargs: Any) -> Answer:
    """Run `ask`, showing a spinner and then the tokens live; the verified answer replaces them.

    When streaming, status lines (the rewritten follow-up, the search translation, a
    second look at one passage) are printed dimmed above the live area and stay on
    screen. `kwargs` go to `ask`.
    """
    from rich.live import Live

    from rag.answer import ask

    if not stream:
        return ask(pipeline, question, **kwargs)

    def on_status(kind: str, text: str) -> None:
        target.print(status_line(kind, text))
        if kind == "second_look":
            shown.plain = ""  # the first attempt's tokens give way to the second's

    shown = Text(style="dim")
    waiting = Spinner("dots", text=Text("searching…", style="dim"))
    with Live(waiting, console=target, transient=True, refresh_per_second=12) as live:

        def on_token(delta: str) -> None:
            shown.append(delta)
            live.update(shown)

        return ask(pipeline, question, on_token=on_token, on_status=on_status, **kwargs)
