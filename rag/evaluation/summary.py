"""The metrics of a `rag eval` run: the scores of many questions summed up, overall and by group.

Each metric (`rag.evaluation.metrics.METRIC_KEYS`) is the mean of one per-question
score over the questions that measured it, or a percentile of the timings; it is None
where no question measured it (retrieval-only runs measure no answer). The groups are
the question types and the languages of the question set, in fixed order.

Left out: scoring a single question (`rag.evaluation.scoring`) and writing the numbers
(`rag.evaluation.run`, `rag.evaluation.report`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rag.evaluation.metrics import RECALL_KS
from rag.evaluation.questions import LANGUAGES, QUESTION_TYPES
from rag.evaluation.results import QuestionResult
from rag.evaluation.scoring import mean

Metrics = dict[str, float | int | None]


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (None for no values)."""
    import numpy as np

    return float(np.percentile(values, q)) if values else None


def _rounded(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def summarize(results: Sequence[QuestionResult]) -> Metrics:
    """The flat metrics (METRIC_KEYS) of a group of scored results; None where nothing was measured."""

    def values(key: str, where: Callable[[QuestionResult], bool] = lambda r: True) -> list[Any]:
        return [r.scores[key] for r in results if where(r) and r.scores.get(key) is not None]

    def answered(result: QuestionResult) -> bool:
        return result.mode != "retrieval-only" and result.scores["refused"] is False

    metrics: Metrics = {"questions": len(results)}
    for k in RECALL_KS:
        metrics[f"retrieval_recall@{k}"] = _rounded(mean(values(f"recall@{k}")))
    metrics["retrieval_mrr"] = _rounded(mean(values("reciprocal_rank")))
    metrics["context_recall"] = _rounded(mean(values("context_recall")))
    metrics["answer_correct"] = _rounded(mean(values("correct")))
    metrics["evidence_precision@1"] = _rounded(mean(values("evidence_precision@1")))
    metrics["evidence_recall"] = _rounded(mean(values("evidence_recall")))
    metrics["quote_exact"] = _rounded(mean(values("quote_exact", answered)))
    metrics["refusal_rate"] = _rounded(mean(values("refused", lambda r: not r.answerable)))
    metrics["false_refusal_rate"] = _rounded(mean(values("refused", lambda r: r.answerable)))
    metrics["false_premise_correct"] = _rounded(mean(values("correct", lambda r: r.type == "false-premise")))
    for name in ("citation_validity", "citation_recall", "citation_precision", "evidence_grounding"):
        metrics[name] = _rounded(mean(values(name, answered)))
    for name in ("raw_citation_validity", "raw_citation_recall", "raw_citation_precision"):
        metrics[name] = _rounded(mean(values(name)))
    first_tokens = values("first_token_ms")
    totals = values("total_ms")
    metrics["ttft_p50_ms"] = _rounded(percentile(first_tokens, 50), 1)
    metrics["ttft_p95_ms"] = _rounded(percentile(first_tokens, 95), 1)
    metrics["total_p50_ms"] = _rounded(percentile(totals, 50), 1)
    metrics["total_p95_ms"] = _rounded(percentile(totals, 95), 1)
    generation_ms = sum(values("generation_ms"))
    completion = sum(values("completion_tokens"))
    metrics["tokens_per_s"] = _rounded(completion / generation_ms * 1000, 2) if generation_ms > 0 else None
    return metrics


def summarize_groups(results: Sequence[QuestionResult]) -> dict[str, Any]:
    """Metrics overall, by question type and by language (groups in fixed order, empty ones left out)."""
    return {
        "overall": summarize(results),
        "by_type": {
            kind: summarize(group)
            for kind in QUESTION_TYPES
            if (group := [r for r in results if r.type == kind])
        },
        "by_lang": {
            lang: summarize(group) for lang in LANGUAGES if (group := [r for r in results if r.lang == lang])
        },
    }
