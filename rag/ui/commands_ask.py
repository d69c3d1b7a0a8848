"""`rag ask` and `rag chat`: answer questions from the index, with a citation for every sentence.

`rag ask` answers one QUESTION, or every line of a --batch file; each line is checked
as `ask` will check it (JSON, length, language) before any model loads, and a bad line
is reported with its number without losing the others. `rag chat` hands over to the
question loop of `rag.ui.repl`. Answering itself is `rag.answering.answer.ask`, run and
rendered through `rag.ui.render`, as the chat does. Left out: the click group and
`main` (`rag.ui.cli`), and every decision about retrieval and answering.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from rag.errors import InputError, RagError
from rag.text.language import detect_language
from rag.ui.options import filter_options, pipeline_for, search_filters, server_options, settings_from
from rag.ui.output import console, err_console, print_json
from rag.ui.render import error_line, render_answer, safe_text, stream_answer

if TYPE_CHECKING:
    from rag.answering.pipeline import Pipeline
    from rag.answering.result import Answer


@dataclass(frozen=True)
class _BatchLine:
    """One non-empty line of a batch file: its question, or why it cannot be one."""

    number: int
    question: str | None  # None when the line is not valid JSON
    error: str | None = None


def _batch_line(number: int, text: str) -> _BatchLine:
    """The question on one line, checked as `ask` will check it (length, language)."""
    from rag.retrieval.retrieve import check_query  # numpy comes with it: keep it off the `--help` path
    from rag.text.language import question_language

    question = text
    if text.startswith("{"):
        try:
            record = json.loads(text)
        except json.JSONDecodeError as error:
            return _BatchLine(number, None, f"invalid JSON ({error.msg}) — fix the line")
        field = record.get("question") if isinstance(record, dict) else None
        if not isinstance(field, str):
            return _BatchLine(number, None, "a JSON line needs a string field 'question' — fix the line")
        question = field
    try:
        question = check_query(question)
        question_language(question)
    except InputError as error:
        return _BatchLine(number, question, str(error))
    return _BatchLine(number, question)


def _read_batch(path: Path) -> list[_BatchLine]:
    """Questions from FILE: one per line, or JSONL objects with a `question` field.

    A malformed line does not stop the others: it comes back with its error, found
    before any model is loaded.
    """
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(
            f"Cannot read {path}: {error} — pass a UTF-8 text file with one question per line"
        ) from error
    batch = [_batch_line(number, line.strip()) for number, line in enumerate(lines, 1) if line.strip()]
    if not batch:
        raise InputError(f"{path} holds no question — write one question per line")
    return batch


@click.command("ask")
@click.argument("question", required=False)
@click.option(
    "--batch", type=click.Path(path_type=Path, dir_okay=False), help="Answer every question in FILE."
)
@click.option("-k", "k", type=click.IntRange(1, 20), help="Passages given to the model (default: top_k).")
@filter_options
@click.option("--show-passages", is_flag=True, help="Print every retrieved passage.")
@server_options(uses_model=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per question (JSONL with --batch).")
@click.pass_context
def ask_cmd(
    ctx: click.Context,
    question: str | None,
    batch: Path | None,
    k: int | None,
    source: tuple[str, ...],
    outlet: str | None,
    since: str | None,
    until: str | None,
    include_comments: bool | None,
    show_passages: bool,
    as_json: bool,
) -> None:
    """Answer QUESTION from the indexed articles, citing a passage for every sentence.

    \b
    Examples:
      rag ask "Wann erkannte Kasachstan Israel an?"
      rag ask --json "When did Kazakhstan recognize Israel?"
      rag ask --json --batch questions.txt > answers.jsonl
    """
    if (question is None) == (batch is None):
        raise click.UsageError("Give either a QUESTION or --batch FILE.")
    settings = settings_from(ctx, include_comments=include_comments)
    pipeline = pipeline_for(settings)
    filters = search_filters(settings, source, outlet, since, until)
    lines = _read_batch(batch) if batch is not None else [_single_question(question or "")]
    if questions := [line.question for line in lines if line.error is None]:
        with err_console.status("Loading model…", spinner="dots"):
            pipeline.prepare({detect_language(question) for question in questions})  # once for every question
    stream = not as_json and console.is_terminal
    failed = 0
    for line in lines:
        result, error = _answer_line(pipeline, line, stream, in_batch=batch is not None, filters=filters, k=k)
        if result is None:
            failed += 1
            if as_json:
                print_json({"line": line.number, "question": line.question, "error": error})
            err_console.print(error_line(f"{batch}:{line.number}: {error}"))
            continue
        if as_json:
            print_json(result.to_json())
        else:
            if len(lines) > 1:
                console.rule(safe_text(result.question, single_line=True))
            render_answer(result, show_passages, console)
    if failed:
        raise RagError(f"{failed} of {len(lines)} questions could not be answered — see the errors above")


def _single_question(question: str) -> _BatchLine:
    """The question given on the command line: if bad, the command's one-line error, before any model loads.

    Unlike a bad line of a batch, there is nothing else to answer.
    """
    line = _batch_line(0, question)
    if line.error is not None:
        raise InputError(line.error)
    return line


def _answer_line(
    pipeline: Pipeline, line: _BatchLine, stream: bool, *, in_batch: bool, **ask_options: Any
) -> tuple[Answer | None, str | None]:
    """The answer to one line, or why there is none: one bad line of a batch must not lose the others."""
    if line.question is None or line.error is not None:
        return None, line.error
    try:
        return stream_answer(pipeline, line.question, stream, console, **ask_options), None
    except InputError as failure:
        if not in_batch:
            raise
        return None, str(failure)


@click.command("chat")
@click.option("-k", "k", type=click.IntRange(1, 20), help="Passages given to the model (default: top_k).")
@click.option("--include-comments", is_flag=True, default=None, help="Also use reader comments.")
@click.option("--json", "as_json", is_flag=True, help="One JSON line per answer, as `rag ask --json`.")
@click.option(
    "--history-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Where typed questions are remembered (default: the user data dir's rag/chat_history).",
)
@server_options(uses_model=True)
@click.pass_context
def chat_cmd(
    ctx: click.Context, k: int | None, include_comments: bool | None, as_json: bool, history_file: Path | None
) -> None:
    """Ask one question after another; follow-ups may refer to earlier answers.

    \b
    Type /help inside for the commands (/sources, /k, /filter, /save, ...).
    Without a terminal, reads one question per line from stdin:
      printf 'Wer ist Tokajew?\\nWann war er in Moskau?\\n' | rag chat --json
    """
    from rag.ui.repl import run_chat

    settings = settings_from(ctx, include_comments=include_comments)
    code = run_chat(pipeline_for(settings), k=k, as_json=as_json, history_file=history_file)
    if code:
        sys.exit(code)
