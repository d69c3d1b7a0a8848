"""Evaluation: `rag eval` runs the question set through the real pipeline and scores it.

`evaluate` loads and validates the question set, runs it, scores every stage, compares
runs and checks floors; `report` writes report.md and its plot against the previous
run; `metrics` names the metrics for both. Left out: answering itself
(rag.answering) and printing (rag.ui).

Each name below is imported from its module on first use (PEP 562 `__getattr__`), so
importing one module of the stage does not import the rest of it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rag.evaluation.evaluate import (
        Comparison,
        EvalRun,
        check_thresholds,
        compare_runs,
        load_questions,
        parse_thresholds,
        run_eval,
    )
    from rag.evaluation.metrics import METRIC_KEYS
    from rag.evaluation.report import write_report

__all__ = [
    "METRIC_KEYS",
    "Comparison",
    "EvalRun",
    "check_thresholds",
    "compare_runs",
    "load_questions",
    "parse_thresholds",
    "run_eval",
    "write_report",
]

# Public name -> the module it is imported from on first use.
_EXPORTS = {
    "Comparison": "rag.evaluation.evaluate",
    "EvalRun": "rag.evaluation.evaluate",
    "check_thresholds": "rag.evaluation.evaluate",
    "compare_runs": "rag.evaluation.evaluate",
    "load_questions": "rag.evaluation.evaluate",
    "parse_thresholds": "rag.evaluation.evaluate",
    "run_eval": "rag.evaluation.evaluate",
    "METRIC_KEYS": "rag.evaluation.metrics",
    "write_report": "rag.evaluation.report",
}


def __getattr__(name: str) -> Any:
    """Import the module of a public name on its first use (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
