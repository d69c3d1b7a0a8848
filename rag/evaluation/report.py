"""report.md and its plot for one `rag eval` run directory.

The report shows the run's settings at a glance, the overall metrics next to the
previous run's (the most recent other run in the same parent directory, or the
summary this run is about to overwrite), the metrics by question type and by
language, and the worst failures with question, answer and gold evidence side by
side. The plot is a PNG written with matplotlib's Agg canvas (no display needed).
Left out: HTML output and plots over many runs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.evaluation.metrics import METRIC_KEYS, SUMMARY_FILE, MetricDelta
from rag.evaluation.results import QuestionResult

REPORT_FILE = "report.md"
PLOT_FILE = "metrics.png"
MAX_FAILURES = 10
MAX_CELL_CHARS = 600
# Share-type metrics (0..1) shown in the plot.
PLOT_METRICS = (
    "retrieval_recall@5",
    "retrieval_recall@10",
    "retrieval_mrr",
    "context_recall",
    "answer_correct",
    "refusal_rate",
    "false_refusal_rate",
    "false_premise_correct",
    "citation_recall",
    "citation_precision",
    "evidence_grounding",
)


@dataclass(frozen=True)
class PreviousRun:
    """The run this one is compared with in the report."""

    label: str
    summary: dict[str, Any]


def _read_summary(path: Path) -> dict[str, Any] | None:
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) and isinstance(summary.get("overall"), dict) else None


def find_previous_summary(out_dir: Path) -> PreviousRun | None:
    """The newest run summary among out_dir's siblings and out_dir's own (to be overwritten) one."""
    candidates: list[tuple[str, str, dict[str, Any]]] = []
    own = _read_summary(out_dir / SUMMARY_FILE)
    if own is not None:
        candidates.append((own.get("run", {}).get("timestamp", ""), f"{out_dir.name} (before this run)", own))
    if out_dir.parent.is_dir():
        for sibling in sorted(out_dir.parent.iterdir()):
            if not sibling.is_dir() or sibling.resolve() == out_dir.resolve():
                continue
            summary = _read_summary(sibling / SUMMARY_FILE)
            if summary is not None:
                candidates.append((summary.get("run", {}).get("timestamp", ""), sibling.name, summary))
    if not candidates:
        return None
    _, label, summary = max(candidates, key=lambda item: (item[0], item[1]))
    return PreviousRun(label=label, summary=summary)


def format_value(name: str, value: Any) -> str:
    """Shares with three decimals, milliseconds whole, counts as they are, unmeasured as a dash."""
    if value is None:
        return "—"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if name.endswith("_ms"):
        return f"{value:.0f}"
    if name == "tokens_per_s":
        return f"{value:.1f}"
    return f"{value:.3f}"


def _cell(text: str) -> str:
    """Text made safe for one Markdown table cell."""
    text = " ".join(text.split())
    if len(text) > MAX_CELL_CHARS:
        text = text[: MAX_CELL_CHARS - 1] + "…"
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;") or "—"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _overall_table(overall: Mapping[str, Any], previous: PreviousRun | None) -> list[str]:
    """This run's measured metrics, with the previous run's values and the change when there is one."""
    before = previous.summary["overall"] if previous else {}
    names = [n for n in METRIC_KEYS if overall.get(n) is not None or before.get(n) is not None]
    if previous is None:
        rows = [[name, format_value(name, overall.get(name))] for name in names]
        return _table(["metric", "this run"], rows)
    rows = []
    for name in names:
        delta = MetricDelta(name, before.get(name), overall.get(name))
        arrow = {True: " ▲", False: " ▼", None: ""}[delta.improved]
        change = "—" if delta.delta is None else f"{delta.delta:+.3f}{arrow}"
        rows.append([name, format_value(name, delta.after), format_value(name, delta.before), change])
    return _table(["metric", "this run", f"previous ({_cell(previous.label)})", "change"], rows)


def _group_table(groups: Mapping[str, Mapping[str, Any]]) -> list[str]:
    names = ["questions", *METRIC_KEYS]
    measured = [n for n in names if any(g.get(n) is not None for g in groups.values())]
    rows = [[n, *(format_value(n, g.get(n)) for g in groups.values())] for n in measured]
    return _table(["metric", *groups], rows)


def _failure_rank(result: QuestionResult) -> tuple[Any, ...] | None:
    """Sort key of a failed question (worst first), or None when it did not fail."""
    scores = result.scores
    if result.mode == "retrieval-only":  # evidence not in the top 5
        recall = scores.get("recall@5")
        if recall is None or recall == 1:
            return None
        return (scores.get("recall@10") or 0.0, recall, result.id)
    if not result.answerable:
        return None if scores["refused"] else (0, result.id)  # answered the unanswerable
    if scores["correct"]:
        return None
    return (2 if scores["refused"] else 1, result.id)  # wrong answer before false refusal


def _verdict(result: QuestionResult) -> str:
    scores = result.scores
    if result.mode == "retrieval-only":
        return f"evidence recall@5 {scores['recall@5']:.2f}, recall@10 {scores['recall@10']:.2f}"
    if not result.answerable:
        return "answered although the articles do not say"
    if scores["refused"]:
        return "refused although answerable"
    return "wrong: missing " + ", ".join(f"“{fact}”" for fact in result.missing_facts or [])


def _failure_block(result: QuestionResult) -> list[str]:
    question = result.question
    if result.previous_question:
        question += f" (read with: {result.previous_question})"
    if result.mode != "retrieval-only":
        answer = result.answer
        if result.quoted:
            answer += f" — quoted, the model's wording failed the check: {result.phrasing_failure}"
    else:
        top = result.retrieved[:3]
        answer = " / ".join(f"[{p['n']}] {Path(p['source']).name} {p['start']}–{p['end']}" for p in top)
    gold = result.gold
    evidence = " / ".join(f"{e['source']} {e['start']}–{e['end']}: {e['text']}" for e in gold["evidence"])
    if not evidence:
        evidence = "(not answerable from the articles)" + (f" {gold['notes']}" if gold.get("notes") else "")
    heading = f"### {result.id} · {result.type} · {result.lang} — {_verdict(result)}"
    answer_label = "answer" if result.mode != "retrieval-only" else "top retrieved"
    return [
        "",
        heading,
        "",
        *_table(
            ["question", answer_label, "gold evidence"], [[_cell(question), _cell(answer), _cell(evidence)]]
        ),
    ]


def worst_failures(results: Sequence[QuestionResult], limit: int = MAX_FAILURES) -> list[QuestionResult]:
    """The failed questions, worst first: see `_failure_rank`."""
    ranked = [(rank, r) for r in results if (rank := _failure_rank(r)) is not None]
    return [r for _, r in sorted(ranked, key=lambda pair: pair[0])][:limit]


def plot_metrics(path: Path, overall: Mapping[str, Any], previous: PreviousRun | None) -> bool:
    """Bar chart of the main share metrics, this run against the previous; False when nothing to plot."""
    from matplotlib.figure import Figure

    names = [n for n in PLOT_METRICS if overall.get(n) is not None]
    if not names:
        return False
    positions = list(range(len(names)))
    figure = Figure(figsize=(8, 0.45 * len(names) + 1.2), dpi=100)
    axes = figure.add_subplot()
    height = 0.4 if previous else 0.7
    current = [float(overall[n]) for n in names]
    axes.barh(
        [p - (height / 2 if previous else 0) for p in positions], current, height=height, label="this run"
    )
    if previous:
        before = [float(previous.summary["overall"].get(n) or 0.0) for n in names]
        axes.barh(
            [p + height / 2 for p in positions],
            before,
            height=height,
            label=f"previous ({previous.label})",
            alpha=0.6,
        )
    axes.set_yticks(positions, names)
    axes.invert_yaxis()
    axes.set_xlim(0, 1)
    axes.grid(axis="x", alpha=0.3)
    axes.legend(loc="lower right", fontsize="small")
    axes.set_title("Main metrics")
    figure.tight_layout()
    figure.savefig(path, format="png", metadata={"Software": None})
    return True


def write_report(
    out_dir: Path,
    summary: Mapping[str, Any],
    results: Sequence[QuestionResult],
    previous: PreviousRun | None,
) -> Path:
    """Write report.md (and metrics.png) into the run directory; returns the report's path."""
    run = summary["run"]
    model = run.get("model") or {}
    lines = [
        f"# Evaluation run {run['timestamp']}",
        "",
        f"- mode: {run['mode']}" + (f", first {run['limit']} questions" if run.get("limit") else ""),
        f"- questions: {summary['overall']['questions']} from `{run['questions_file']}` "
        f"(sha256 {run['questions_sha256'][:12]})",
        f"- model: `{model.get('path', 'not loaded')}`"
        + (f" (sha256 {model['sha256'][:12]})" if model else ""),
        f"- index: fingerprint {run['index']['fingerprint']}, {len(run['index']['files'])} files",
        *(
            f"- corpus `{corpus}`: {len(index['files'])} files in `{index['index_dir']}`"
            for corpus, index in run.get("corpora", {}).items()
        ),
        *(
            f"- skipped: {count} questions, corpus `{corpus}` not found"
            for corpus, count in run.get("skipped_corpora", {}).items()
        ),
        f"- settings hash {run['settings_hash'][:12]} · git commit {run['git_commit'][:12]}",
        "",
        "## Overall",
        "",
        *_overall_table(summary["overall"], previous),
    ]
    if plot_metrics(out_dir / PLOT_FILE, summary["overall"], previous):
        lines += ["", f"![Main metrics]({PLOT_FILE})"]
    lines += ["", "## By question type", "", *_group_table(summary["by_type"])]
    lines += ["", "## By language", "", *_group_table(summary["by_lang"])]
    failures = worst_failures(results)
    lines += ["", "## Worst failures", ""]
    if not failures:
        lines.append("None.")
    for result in failures:
        lines += _failure_block(result)
    path = out_dir / REPORT_FILE
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
