"""Comparing two `rag eval` runs (`rag eval --compare A B`): which metrics moved, and is it chance?

`compare_runs` reads two run directories back and lists the overall metric
differences (B - A), every question whose one-word outcome changed, and an exact
paired test (McNemar) of the correct-answer and refusal rates: with the same
questions in both runs, a difference is only worth believing when more questions
flipped one way than a coin would flip.

Left out: printing the comparison (`rag.ui.cli`) and the report of a single run
(`rag.evaluation.report`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag.errors import EvalError
from rag.evaluation.metrics import METRIC_KEYS, SUMMARY_FILE, MetricDelta
from rag.evaluation.results import RESULTS_FILE, QuestionResult, mode_of_run

SIGNIFICANCE = 0.05


@dataclass(frozen=True)
class OutcomeChange:
    id: str
    type: str
    question: str
    before: str
    after: str


@dataclass(frozen=True)
class PairedTest:
    """A yes/no outcome of the same questions in two runs: who won where they differ.

    The two runs answer the same questions, so the honest test of a difference looks
    only at the questions whose outcome changed (exact McNemar test: under "no real
    difference" each change is a coin flip). With 80 questions a 2.5-point gain is two
    questions, and a prompt change typically flips several in each direction.
    """

    name: str
    questions: int  # scored in both runs
    only_a: int  # good in A, not in B
    only_b: int  # good in B, not in A

    @property
    def significant(self) -> bool:
        """Whether the difference is unlikely to be chance (p below `SIGNIFICANCE`)."""
        return self.p_value < SIGNIFICANCE

    @property
    def p_value(self) -> float:
        """Two-sided exact McNemar p-value (1.0 when nothing changed)."""
        from scipy.stats import binomtest

        changed = self.only_a + self.only_b
        return float(binomtest(self.only_b, changed, 0.5).pvalue) if changed else 1.0


@dataclass
class Comparison:
    """Metric differences, paired tests and changed question outcomes between run A and run B."""

    run_a: Path
    run_b: Path
    metrics: list[MetricDelta] = field(default_factory=list)
    changes: list[OutcomeChange] = field(default_factory=list)
    paired: list[PairedTest] = field(default_factory=list)


# (metric, over answerable questions?, what counts as a good outcome)
PAIRED_OUTCOMES: tuple[tuple[str, bool, Callable[[Mapping[str, Any]], bool]], ...] = (
    ("answer_correct", True, lambda scores: bool(scores.get("correct"))),
    ("refusal_rate", False, lambda scores: bool(scores.get("refused"))),
)


def load_run(run_dir: Path) -> tuple[dict[str, Any], list[QuestionResult]]:
    """summary.json and results.jsonl of a run directory; each result in the mode the summary names."""
    try:
        summary = json.loads((run_dir / SUMMARY_FILE).read_text(encoding="utf-8"))
        lines = (run_dir / RESULTS_FILE).read_text(encoding="utf-8").splitlines()
        rows = [json.loads(line) for line in lines if line.strip()]
        mode = mode_of_run(summary["run"]["mode"])
    except (OSError, ValueError, KeyError) as error:
        raise EvalError(
            f"{run_dir} is not a readable eval run ({error}) — pass a directory made by `rag eval`"
        ) from error
    return summary, [QuestionResult.from_json(row, mode) for row in rows]


def outcome(result: QuestionResult) -> str:
    """A one-word verdict for one question, used to list changes between runs."""
    scores = result.scores
    if result.mode == "retrieval-only":
        recall = scores.get("recall@5")
        if recall is None:
            return "n/a"
        return "found@5" if recall == 1 else ("partly@5" if recall > 0 else "missed@5")
    if scores["refused"]:
        return "refused"
    if not result.answerable:
        return "answered"
    return "correct" if scores["correct"] else "wrong"


def compare_runs(run_a: Path, run_b: Path) -> Comparison:
    """Overall metric differences (B - A) and every question whose outcome changed."""
    summary_a, results_a = load_run(run_a)
    summary_b, results_b = load_run(run_b)
    comparison = Comparison(run_a=run_a, run_b=run_b)
    for name in METRIC_KEYS:
        before, after = summary_a["overall"].get(name), summary_b["overall"].get(name)
        if before is not None or after is not None:
            comparison.metrics.append(MetricDelta(name, before, after))
    by_id_a = {r.id: r for r in results_a}
    by_id_b = {r.id: r for r in results_b}
    ordered_ids = [r.id for r in results_b] + [r.id for r in results_a if r.id not in by_id_b]
    comparison.changes = _changed_outcomes(ordered_ids, by_id_a, by_id_b)
    both = [(by_id_a[i], by_id_b[i]) for i in ordered_ids if i in by_id_a and i in by_id_b]
    comparison.paired = [
        test
        for name, answerable, good in PAIRED_OUTCOMES
        if (test := _paired_test(name, [p for p in both if p[0].answerable == answerable], good)).questions
    ]
    return comparison


def _changed_outcomes(
    ordered_ids: Sequence[str], by_id_a: Mapping[str, QuestionResult], by_id_b: Mapping[str, QuestionResult]
) -> list[OutcomeChange]:
    """Every question whose outcome differs between the runs ("absent" where a run lacks it), in order."""
    changes = []
    for question_id in ordered_ids:
        a, b = by_id_a.get(question_id), by_id_b.get(question_id)
        before = outcome(a) if a is not None else "absent"
        after = outcome(b) if b is not None else "absent"
        result = b if b is not None else a
        if before != after and result is not None:
            changes.append(OutcomeChange(question_id, result.type, result.question, before, after))
    return changes


def _paired_test(
    name: str,
    pairs: Sequence[tuple[QuestionResult, QuestionResult]],
    good: Callable[[Mapping[str, Any]], bool],
) -> PairedTest:
    """The paired test of one outcome over the questions both runs answered (not retrieval-only)."""
    scored = [
        (good(a.scores), good(b.scores))
        for a, b in pairs
        if a.mode != "retrieval-only" and b.mode != "retrieval-only"
    ]
    return PairedTest(
        name,
        questions=len(scored),
        only_a=sum(a and not b for a, b in scored),
        only_b=sum(b and not a for a, b in scored),
    )
