"""`rag eval`: score the system on the fixed question set, or compare two runs.

The command parses its flags and calls `rag.evaluation` (load the questions,
run them, check the --min/--max thresholds, or compare two run directories); this
module only prints the finished run's metrics and a comparison's tables with rich.
Left out: the click group and `main` (`rag.ui.cli`), and how anything is scored
(`rag.evaluation`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.table import Table
from rich.text import Text

from rag.ui.options import pipeline_for, server_options, settings_from
from rag.ui.output import console, progress
from rag.ui.render import safe_text

if TYPE_CHECKING:
    from rag.evaluation.compare import Comparison
    from rag.evaluation.run import EvalRun


@click.command("eval")
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
    pipeline = pipeline_for(settings_from(ctx, top_k=k))
    with progress("Evaluating") as update:
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
