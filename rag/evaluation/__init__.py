"""Evaluation: `rag eval` runs the question set through the real pipeline and scores it.

`questions` loads and validates the question set; `run` runs it (each question by
`one_question`, a corpus's questions on its own index by `corpora`) and writes the
run directory; `results` is one question's typed result, `scoring` scores it and
`summary` sums the scores up, overall and by group; `compare` diffs two runs with a
paired test and `thresholds` checks floors; `report` writes report.md and its plot
against the previous run; `metrics` names the metrics for all of them. Left out:
answering itself (rag.answering) and printing (rag.ui).

Each name below is imported from its module on first use (PEP 562 `__getattr__`), so
importing one module of the stage does not import the rest of it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rag.evaluation.compare import Comparison, compare_runs
    from rag.evaluation.metrics import METRIC_KEYS
    from rag.evaluation.questions import load_questions
    from rag.evaluation.report import write_report
    from rag.evaluation.results import QuestionResult
    from rag.evaluation.run import EvalRun, run_eval
    from rag.evaluation.thresholds import check_thresholds, parse_thresholds

__all__ = [
    "METRIC_KEYS",
    "Comparison",
    "EvalRun",
    "QuestionResult",
    "check_thresholds",
    "compare_runs",
    "load_questions",
    "parse_thresholds",
    "run_eval",
    "write_report",
]

# Public name -> the module it is imported from on first use.
_EXPORTS = {
    "Comparison": "rag.evaluation.compare",
    "EvalRun": "rag.evaluation.run",
    "QuestionResult": "rag.evaluation.results",
    "check_thresholds": "rag.evaluation.thresholds",
    "compare_runs": "rag.evaluation.compare",
    "load_questions": "rag.evaluation.questions",
    "parse_thresholds": "rag.evaluation.thresholds",
    "run_eval": "rag.evaluation.run",
    "METRIC_KEYS": "rag.evaluation.metrics",
    "write_report": "rag.evaluation.report",
}


def __getattr__(name: str) -> Any:
    """Import the module of a public name on its first use (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
