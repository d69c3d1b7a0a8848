"""The metric vocabulary of a `rag eval` run, shared by the scorer and the report.

`rag.evaluation.summary` computes these metrics, `rag.evaluation.run` writes them to a
run's summary file and `rag.evaluation.thresholds` checks them; `rag.evaluation.report`
and `rag.evaluation.compare` read summaries back and lay the metrics out. All of them
need the names, their order and which way is better, so those live here, below them
all: the imports point one way (run -> report -> metrics) instead of round in a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass

# A run directory's summary: the metrics and everything needed to repeat the run.
SUMMARY_FILE = "summary.json"
# Evidence recall is measured at these ranks.
RECALL_KS = (1, 3, 5, 10)

# Flat metric names of summary["overall"], in table order.
METRIC_KEYS = (
    *(f"retrieval_recall@{k}" for k in RECALL_KS),
    "retrieval_mrr",
    "context_recall",
    "answer_correct",
    "evidence_precision@1",
    "evidence_recall",
    "quote_exact",
    "refusal_rate",
    "false_refusal_rate",
    "false_premise_correct",
    "citation_validity",
    "citation_recall",
    "citation_precision",
    "evidence_grounding",
    "raw_citation_validity",
    "raw_citation_recall",
    "raw_citation_precision",
    "ttft_p50_ms",
    "ttft_p95_ms",
    "total_p50_ms",
    "total_p95_ms",
    "tokens_per_s",
)
LOWER_IS_BETTER = frozenset(
    {"false_refusal_rate", "ttft_p50_ms", "ttft_p95_ms", "total_p50_ms", "total_p95_ms"}
)


@dataclass(frozen=True)
class MetricDelta:
    name: str
    before: float | int | None
    after: float | int | None

    @property
    def delta(self) -> float | None:
        if self.before is None or self.after is None:
            return None
        return round(self.after - self.before, 4)

    @property
    def improved(self) -> bool | None:
        """Whether the change is for the better (None when unchanged or unmeasured)."""
        if not self.delta:
            return None
        return (self.delta < 0) if self.name in LOWER_IS_BETTER else (self.delta > 0)
