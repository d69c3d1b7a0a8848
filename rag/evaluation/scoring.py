"""Scoring one question of a `rag eval` run: pure functions over spans, texts and results.

- Retrieval: evidence recall@k and the reciprocal rank of the first passage that holds
  an evidence span (by file name and character overlap).
- Answers: required facts (lexical, after normalising case, hyphens and spacing),
  ALCE-style citation validity/recall/precision (with `rag.answering.cite.is_supported`)
  plus grounding in the gold evidence, refusals, exact quotes and speed.

Left out: LLM-as-judge scoring and semantic entailment (no such model offline); the
checks are lexical and deliberately strict. Metrics over many questions are
`rag.evaluation.summary`'s.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from rag.answering.cite import (
    article_context,
    is_refusal,
    is_supported,
    parse_markers,
    split_answer_sentences,
)
from rag.evaluation.metrics import RECALL_KS
from rag.evaluation.questions import Question, Span
from rag.evaluation.results import QuestionResult

RETRIEVAL_K = max(RECALL_KS)
# A passage finds an evidence span when it holds at least this share of the span.
EVIDENCE_OVERLAP = 0.5

_HYPHENS = re.compile(r"[-\u2010-\u2015\u2212]")
_SOFT_HYPHEN = "\u00ad"


class HasSpan(Protocol):
    """Anything with a source file and a character span (passages, evidence)."""

    @property
    def source(self) -> str: ...
    @property
    def start(self) -> int: ...
    @property
    def end(self) -> int: ...


def same_file(passage_source: str, evidence_source: str) -> bool:
    """Evidence names a file; a passage carries the path it was indexed under."""
    return Path(passage_source).name == evidence_source


def overlap_chars(a: HasSpan, b: HasSpan) -> int:
    """Characters the two spans share (0 for different files)."""
    if not same_file(a.source, Path(b.source).name):
        return 0
    return max(0, min(a.end, b.end) - max(a.start, b.start))


def finds_evidence(passage: HasSpan, evidence: HasSpan) -> bool:
    """Whether the passage holds at least EVIDENCE_OVERLAP of the evidence span."""
    return overlap_chars(passage, evidence) >= EVIDENCE_OVERLAP * max(1, evidence.end - evidence.start)


def retrieval_scores(retrieved: Sequence[HasSpan], evidence: Sequence[HasSpan]) -> dict[str, float | None]:
    """recall@k (share of evidence items found in the top k) and the reciprocal rank of the first hit."""
    if not evidence:
        return {**{f"recall@{k}": None for k in RECALL_KS}, "reciprocal_rank": None}
    first_ranks = [
        next((rank for rank, p in enumerate(retrieved, 1) if finds_evidence(p, item)), None)
        for item in evidence
    ]
    found = [rank for rank in first_ranks if rank is not None]
    scores: dict[str, float | None] = {
        f"recall@{k}": sum(rank <= k for rank in found) / len(evidence) for k in RECALL_KS
    }
    scores["reciprocal_rank"] = 1 / min(found) if found else 0.0
    return scores


def normalize_text(text: str) -> str:
    """Casefolded NFKC text with hyphens as spaces and whitespace runs collapsed."""
    text = unicodedata.normalize("NFKC", text.replace(_SOFT_HYPHEN, "")).casefold()
    return " ".join(_HYPHENS.sub(" ", text).split())


def missing_facts(answer: str, required_facts: Sequence[Sequence[str]]) -> list[str]:
    """The first alternative of every required fact none of whose alternatives the answer states."""
    clean = normalize_text(" ".join(parse_markers(s)[0] for s in split_answer_sentences(answer)))
    return [
        alternatives[0]
        for alternatives in required_facts
        if not any(normalize_text(alternative) in clean for alternative in alternatives)
    ]


def answer_claims(text: str) -> list[tuple[str, list[int]]]:
    """(sentence, cited numbers) for every claim, skipping refusal sentences as `verify_answer` does."""
    claims: list[tuple[str, list[int]]] = []
    for position, raw in enumerate(split_answer_sentences(text)):
        sentence, numbers = parse_markers(raw)
        if not sentence:
            continue
        if is_refusal(sentence):
            if position == 0:
                break
            continue
        claims.append((sentence, numbers))
    return claims


def mean(values: Iterable[float | bool]) -> float | None:
    """The arithmetic mean, booleans counting 0 or 1; None for no values (nothing was measured)."""
    items = [float(v) for v in values]
    return sum(items) / len(items) if items else None


def citation_scores(
    text: str, passages: Sequence[Span], evidence: Sequence[HasSpan]
) -> dict[str, float | None]:
    """ALCE-style citation quality of one answer against the numbered passages it was shown.

    validity: share of markers that point to a shown passage; recall: share of
    sentences the union of their cited passages supports; precision: share of
    (sentence, passage) citations where that passage alone supports the sentence;
    grounding: share of citations whose passage overlaps a gold evidence span.
    """
    claims = answer_claims(text)
    markers = [n for _, numbers in claims for n in numbers]
    valid = range(1, len(passages) + 1)
    pairs = [(sentence, n) for sentence, numbers in claims for n in numbers if n in valid]
    recall_hits = []
    for sentence, numbers in claims:
        cited = [passages[n - 1] for n in numbers if n in valid]
        recall_hits.append(
            bool(cited)
            and is_supported(sentence, " ".join(p.text for p in cited), " ".join(p.context for p in cited))
        )
    return {
        "validity": mean(n in valid for n in markers),
        "recall": mean(recall_hits),
        "precision": mean(
            is_supported(sentence, passages[n - 1].text, passages[n - 1].context) for sentence, n in pairs
        ),
        "grounding": (
            mean(any(overlap_chars(passages[n - 1], e) > 0 for e in evidence) for _, n in pairs)
            if evidence
            else None
        ),
    }


def score_result(question: Question, result: QuestionResult) -> dict[str, Any]:
    """Per-question scores: retrieval in every mode, plus the answer's and speed in the answering modes."""
    retrieved = [_span(p) for p in result.retrieved]
    scores: dict[str, Any] = retrieval_scores(retrieved, question.evidence)
    if result.mode == "retrieval-only":
        return scores
    scores.update(_answer_scores(question, result))
    scores.update(_speed_scores(result))
    return scores


def _answer_scores(question: Question, result: QuestionResult) -> dict[str, Any]:
    """Context recall, refusal, correctness, evidence and citation quality of one answer."""
    refused = result.refused
    shown = [_span(p) for p in result.shown]
    scores: dict[str, Any] = {
        "context_recall": retrieval_scores(shown, question.evidence)[f"recall@{RETRIEVAL_K}"],
        "refused": refused,
        "correct": (
            not refused and not missing_facts(result.answer, question.required_facts)
            if question.answerable
            else None
        ),
    }
    evidence = [_span(e) for e in result.evidence]
    if question.evidence and evidence:
        hits = [any(overlap_chars(e, gold) > 0 for gold in question.evidence) for e in evidence]
        scores["evidence_precision@1"], scores["evidence_recall"] = hits[0], any(hits)
    scores["quote_exact"] = result.quotes_exact
    final = citation_scores(result.answer, shown, question.evidence) if not refused else {}
    raw = citation_scores(result.raw, shown, question.evidence)
    for name in ("validity", "recall", "precision"):
        scores[f"citation_{name}"] = final.get(name)
        scores[f"raw_citation_{name}"] = raw[name]
    scores["evidence_grounding"] = final.get("grounding")
    return scores


def _speed_scores(result: QuestionResult) -> dict[str, Any]:
    """Time to first token, total time and generation (None where no token was generated)."""
    timings = result.timings_ms
    first_token = float(timings.get("first_token", 0.0))
    total = float(timings.get("total", 0.0))
    generated = first_token > 0 and total > first_token
    return {
        "first_token_ms": first_token if generated else None,
        "total_ms": total,
        "generation_ms": total - first_token if generated else None,
        "completion_tokens": result.completion_tokens if generated else None,
    }


def _span(passage: Mapping[str, Any]) -> Span:
    context = article_context(passage.get("title"), passage.get("outlet"))
    return Span(passage["source"], passage["start"], passage["end"], passage.get("text", ""), context)
