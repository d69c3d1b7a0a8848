"""`rag chat`: an interactive question loop over the same core as `rag ask`.

Every question goes through `rag.answering.answer.ask` with the conversation so far as
`history`; `ask` rewrites follow-ups into standalone questions and keeps the
history within its token budget (`rag.answering.conversation`). This module holds the
conversation (`ChatSession`), runs its slash commands, and loops over input: the
prompt of `rag.ui.chat_prompt` on a terminal, or one question per line when stdin is
not one. It renders with rich through `rag.ui.render`, exactly as `rag ask` does. Text
from documents, the model and the user is always printed through
`rag.ui.render.safe_text`: plain `Text`, never rich markup, never a terminal escape
sequence. Left out: flag parsing (rag/ui/commands_ask.py), the syntax of the slash
commands (rag/ui/slash_commands.py), line editing (rag/ui/chat_prompt.py) and any
retrieval or answering logic.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO, get_args

from rich.console import Console
from rich.table import Table
from rich.text import Text

from rag.answering.conversation import Turn, as_read
from rag.errors import InputError, RagError
from rag.text.language import Language
from rag.text.sanitize import json_line
from rag.types import SearchFilters
from rag.ui.chat_prompt import MULTILINE_HINT, PROMPT, default_history_file, prompt_session
from rag.ui.render import error_line, render_answer, safe_text, status_line, stream_answer
from rag.ui.slash_commands import (
    COMMANDS,
    MAX_K,
    Command,
    conversation_markdown,
    describe_filters,
    int_argument,
    parse_command,
    parse_filter,
)

if TYPE_CHECKING:
    from rag.answering.pipeline import Pipeline
    from rag.answering.result import Answer


@dataclass
class ChatSession:
    """The state of one conversation: history, retrieval settings and the last answer.

    Human-readable output goes to `console`; with `json_out` each answer is written
    there as one `Answer.to_json()` line instead of being rendered.
    """

    pipeline: Pipeline
    console: Console
    json_out: TextIO | None = None
    k: int | None = None
    filters: SearchFilters = field(default_factory=SearchFilters)
    history: list[Turn] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)
    last: Answer | None = None

    def run_line(self, line: str, stream: bool) -> bool:
        """Answer a question or run a command; False when the session should end."""
        command = parse_command(line)
        if command is None:
            self.answer(line, stream)
            return True
        return self.run_command(command)

    # Questions -------------------------------------------------------------
    def answer(self, question: str, stream: bool) -> Answer:
        """Answer with the conversation as history, render it, and remember the turn."""
        result = stream_answer(
            self.pipeline,
            question,
            stream,
            self.console,
            k=self.k,
            filters=self.filters,
            history=self.history,
        )
        self.last = result
        if result.interrupted:
            if result.raw:
                self.console.print(safe_text(result.raw, style="dim"))
            self.console.print(Text("(interrupted)", style="yellow"))
            return result
        self.history.append(
            Turn(question=as_read(result.question, result.previous_question), answer=result.answer)
        )
        self.answers.append(result)
        if self.json_out is not None:
            self.json_out.write(json_line(result.to_json()) + "\n")
            self.json_out.flush()
            return result
        if not stream and result.previous_question:
            self.console.print(status_line("follow_up", result.previous_question))
        render_answer(result, False, self.console)
        return result

    # Commands --------------------------------------------------------------
    def run_command(self, command: Command) -> bool:
        if command.name == "exit":
            return False
        handlers: dict[str, Callable[[tuple[str, ...]], None]] = {
            "help": self.show_help,
            "sources": self.show_sources,
            "k": self.set_k,
            "comments": self.set_comments,
            "filter": self.set_filter,
            "model": self.show_model,
            "reset": self.reset,
            "save": self.save,
        }
        handler = handlers.get(command.name)
        if handler is None:
            self.console.print(
                safe_text(f"Unknown command /{command.name} — type /help for the list.", style="yellow")
            )
        else:
            handler(command.args)
        return True

    def show_help(self, args: tuple[str, ...]) -> None:
        table = Table(show_header=False, box=None, padding=(0, 2, 0, 0))
        for usage, meaning in COMMANDS.values():
            table.add_row(Text(usage, style="bold"), Text(meaning))
        self.console.print(table)
        self.console.print(
            Text(
                f"Anything else is a question. {MULTILINE_HINT}. Ctrl-C stops an answer. "
                "Follow-ups may refer to earlier turns; citations refer to the current answer.",
                style="dim",
            )
        )

    def show_sources(self, args: tuple[str, ...]) -> None:
        if self.last is None:
            self.console.print(Text("No answer yet — ask a question first."))
            return
        if not self.last.passages:
            self.console.print(Text("The last question found no passages — check /filter."))
            return
        passages = self.last.passages
        if not args:
            cited = {c.n for c in self.last.citations}
            table = Table(title="Passages of the last answer (/sources n shows one)", title_justify="left")
            for column in ("#", "cited", "title", "source", "span", "score"):
                table.add_column(column, overflow="fold")
            for n, passage in enumerate(passages, 1):
                table.add_row(
                    str(n),
                    "✓" if n in cited else "",
                    safe_text(passage.title),
                    safe_text(passage.source, single_line=True),
                    f"{passage.start}–{passage.end}",
                    f"{passage.score:.4f}",
                )
            self.console.print(table)
            return
        n = int_argument(args, "/sources n", 1, len(passages))
        passage = passages[n - 1]
        about = " · ".join(part for part in (passage.outlet, passage.date, passage.section) if part)
        self.console.print(safe_text(f"[{n}] {passage.title}", style="bold"))
        self.console.print(
            safe_text(
                f"{passage.source} · characters {passage.start}–{passage.end} · {about}",
                style="dim",
                single_line=True,
            )
        )
        self.console.print(safe_text(passage.text))

    def set_k(self, args: tuple[str, ...]) -> None:
        if args:
            self.k = int_argument(args, "/k N", 1, MAX_K)
        self.console.print(Text(f"k = {self.k or self.pipeline.settings.top_k} passages"))

    def set_comments(self, args: tuple[str, ...]) -> None:
        if args:
            choice = args[0].lower()
            if len(args) != 1 or choice not in ("on", "off"):
                raise InputError("write /comments on or /comments off")
            self.filters = replace(self.filters, include_comments=choice == "on")
        self.console.print(Text(f"reader comments: {'on' if self.filters.include_comments else 'off'}"))

    def set_filter(self, args: tuple[str, ...]) -> None:
        if args:
            filters = parse_filter(args, self.filters)
            self._check_filter_values(filters)
            self.filters = filters
        self.console.print(safe_text(f"filters: {describe_filters(self.filters)}"))

    def _check_filter_values(self, filters: SearchFilters) -> None:
        """Refuse a source or outlet that no indexed document has (it would find nothing)."""
        documents = self.pipeline.documents()
        for source in filters.sources:
            if not any(d["source"] == source or d["source"].endswith("/" + source) for d in documents):
                raise InputError(f"no indexed document is {source!r} — `rag docs` lists the sources")
        outlets = {(d.get("outlet") or "").casefold() for d in documents}
        if filters.outlet and filters.outlet.casefold() not in outlets:
            known = ", ".join(sorted(o for o in outlets if o)) or "none recorded"
            raise InputError(f"no indexed document is from outlet {filters.outlet!r} (known: {known})")

    def show_model(self, args: tuple[str, ...]) -> None:
        settings = self.pipeline.settings
        llm = self.pipeline.llm
        self.console.print(Text(f"model: {settings.model}", style="bold"))
        self.console.print(safe_text(f"file: {llm.model_path}"))
        self.console.print(
            Text(
                f"sha256 {llm.sha256[:12]}… · context {settings.n_ctx} tokens · "
                f"{settings.n_threads} threads · temperature {settings.temperature}"
            )
        )

    def reset(self, args: tuple[str, ...]) -> None:
        self.history.clear()
        self.answers.clear()
        self.last = None
        self.console.print(Text("Conversation forgotten; the next question starts fresh."))

    def save(self, args: tuple[str, ...]) -> None:
        if len(args) != 1:
            raise InputError("write /save FILE, e.g. /save chat.md")
        if not self.answers:
            self.console.print(Text("Nothing to save yet — ask a question first."))
            return
        path = Path(args[0]).expanduser()
        title = f"rag chat, {datetime.now().strftime('%Y-%m-%d %H:%M')}"
        try:
            path.write_text(conversation_markdown(self.answers, title) + "\n", encoding="utf-8")
        except OSError as error:
            raise InputError(f"cannot write {path} ({error.strerror}) — choose another file") from None
        self.console.print(safe_text(f"Saved {len(self.answers)} turn(s) to {path}"))


# ---------------------------------------------------------------------------
def run_chat(
    pipeline: Pipeline,
    *,
    k: int | None = None,
    as_json: bool = False,
    history_file: Path | None = None,
    stdin: TextIO | None = None,
) -> int:
    """Run `rag chat`; returns the exit code (1 if a non-interactive question failed).

    Interactive when stdin is a terminal, else one question (or /command) per line.
    """
    stdin = stdin or sys.stdin
    console = Console(highlight=False)
    err_console = Console(stderr=True, highlight=False)
    interactive = stdin.isatty()
    chat = ChatSession(
        pipeline,
        console=err_console if as_json else console,
        json_out=sys.stdout if as_json else None,
        k=k,
        filters=SearchFilters(include_comments=pipeline.settings.include_comments),
    )
    with err_console.status("Loading index and model…", spinner="dots"):
        documents = pipeline.documents()  # fails fast on a missing or stale index
        pipeline.prepare(get_args(Language))  # once for the whole session, not on the first question
    if not interactive:
        return _run_lines(chat, stdin, err_console)
    _print_banner(console, pipeline, len(documents))
    _run_interactive(chat, history_file or default_history_file())
    return 0


def _print_banner(console: Console, pipeline: Pipeline, document_count: int) -> None:
    settings = pipeline.settings
    console.print(Text("rag chat", style="bold"))
    console.print(safe_text(f"index: {settings.index_dir.resolve()} · {document_count} documents"))
    console.print(safe_text(f"model: {settings.model} ({pipeline.llm.model_path})"))
    console.print(
        Text(
            f"Ask a question and press Enter. {MULTILINE_HINT}. /help lists commands; /exit or Ctrl-D quits."
        )
    )


def _run_lines(chat: ChatSession, stdin: TextIO, err_console: Console) -> int:
    """Answer one question per input line, in order, with history; errors are reported and skipped."""
    failures = 0
    for line in stdin:
        if not line.strip():
            continue
        if chat.json_out is None and parse_command(line) is None:
            chat.console.rule(safe_text(line.strip(), single_line=True))
        try:
            if not chat.run_line(line, stream=False):
                break
        except RagError as error:
            failures += 1
            err_console.print(error_line(error))
    return 1 if failures else 0


def _run_interactive(chat: ChatSession, history_file: Path) -> None:
    """The prompt loop: Ctrl-C stops the current answer; Ctrl-C on an empty prompt or Ctrl-D quits."""
    session = prompt_session(history_file)
    while True:
        try:
            line = session.prompt(PROMPT)
        except (KeyboardInterrupt, EOFError):
            return
        if not line.strip():
            continue
        try:
            if not chat.run_line(line, stream=True):
                return
        except KeyboardInterrupt:
            chat.console.print(Text("(interrupted)", style="yellow"))
        except RagError as error:
            chat.console.print(error_line(error))
