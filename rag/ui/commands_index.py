"""`rag index`, `rag search`, `rag show` and `rag docs`: build the index and look into it.

Each command parses its flags, makes one call into the library (`Pipeline.index`,
`Pipeline.search`, `rag.retrieval.show.show_span`, `Pipeline.documents`) and renders
the result with rich, or prints it as JSON. Text from documents is always rendered
through `rag.ui.render.safe_text`: plain `Text`, never rich markup, never a terminal
escape sequence. Left out: the click group and `main` (`rag.ui.cli`), and every
decision about what is indexed or retrieved.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import click
from rich.table import Table
from rich.text import Text

from rag.ingest.formats.collection import CollectionKind, CollectionOptions
from rag.text.sanitize import for_terminal
from rag.ui.options import filter_options, pipeline_for, search_filters, server_options, settings_from
from rag.ui.output import console, err_console, print_json, progress
from rag.ui.render import safe_text, span_label


@click.command("index")
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
    settings = settings_from(ctx, follow_symlinks=follow_symlinks)
    pipeline = pipeline_for(settings)
    kind = cast("CollectionKind | None", collection_format)  # click.Choice allows only these two
    collection = CollectionOptions(kind, text_column, title_column)
    with progress("Indexing", enabled=not as_json) as update:
        report = pipeline.index(
            list(paths) or [Path("seeds")], rebuild=rebuild, on_progress=update, collection=collection
        )
    if as_json:
        print_json(report.to_json(str(settings.index_dir)))
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


@click.command("search")
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
    settings = settings_from(ctx, include_comments=include_comments)
    filters = search_filters(settings, source, outlet, since, until)
    passages = pipeline_for(settings).search(query, k=k, filters=filters)
    if as_json:
        print_json({"query": query, "passages": [p.to_json(n) for n, p in enumerate(passages, 1)]})
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


def _highlighted(query: str, text: str) -> Text:
    """The passage as safe text with the words that matched QUERY in bold yellow."""
    from rag.index.keyword import matching_spans
    from rag.ingest.read import normalize_whitespace

    rendered = safe_text(normalize_whitespace(text))
    for start, end in matching_spans(query, rendered.plain):
        rendered.stylize("bold yellow", start, end)
    return rendered


@click.command("show")
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

    view = show_span(settings_from(ctx), source, start, end, context=context)
    if as_json:
        from dataclasses import asdict

        print_json(asdict(view))
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


@click.command("docs")
@server_options(uses_model=False)
@click.option("--json", "as_json", is_flag=True, help="Print the documents as JSON.")
@click.pass_context
def docs_cmd(ctx: click.Context, as_json: bool) -> None:
    """List the indexed documents with their metadata and chunk counts."""
    documents = pipeline_for(settings_from(ctx)).documents()
    if as_json:
        print_json(documents)
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
