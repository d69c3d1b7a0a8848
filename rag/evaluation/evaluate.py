"""`rag eval`: run the fixed question set through the real pipeline and score every stage.

- Loading validates each line of the question set against its JSON Schema and names
  the bad line.
- Running sends every question through `rag.answering.answer.ask` (follow-ups get the answers
  of the questions they follow as chat history), plus one cheap k=10 search with the
  same query for retrieval recall. Retrieval-only mode runs the search alone and
  never loads the language model.
- A question may name a `corpus`: a folder (relative to the questions file) that is
  indexed into an index of its own beside the given one (`<index_dir>-<folder name>`,
  incrementally) and searched for that question alone. When the folder is absent
  (a corpus kept outside the repository), its questions are skipped and the run
  records how many and why.
- Scoring is done by pure functions: evidence recall@k and MRR, required facts,
  ALCE-style citation validity/recall/precision (with `rag.answering.cite.is_supported`) plus
  grounding in the gold evidence, refusal rates, false premises and speed, each
  overall, by question type and by language.
- A run directory holds results.jsonl, summary.json (metrics and everything needed
  to repeat the run) and report.md with a plot (`rag.evaluation.report`).
- `compare_runs` diffs two run directories, with an exact paired test of the
  correct-answer and refusal rates (is a difference more than a few flipped
  questions?); `check_thresholds` enforces floors.

Left out: LLM-as-judge scoring and semantic entailment (no such model offline); the
checks are lexical and deliberately strict.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from rag.answering.cite import (
    article_context,
    is_refusal,
    is_supported,
    parse_markers,
    split_answer_sentences,
)
from rag.answering.conversation import Turn, as_read
from rag.errors import EvalError
from rag.evaluation.metrics import METRIC_KEYS, RECALL_KS, SUMMARY_FILE, MetricDelta
from rag.evaluation.report import PreviousRun, find_previous_summary, write_report
from rag.text.language import Language
from rag.types import Passage, SearchFilters

if TYPE_CHECKING:
    from rag.answering.answer import Answer
    from rag.answering.pipeline import Pipeline

QUESTION_TYPES = ("fact", "multi-doc", "english", "unanswerable", "false-premise", "follow-up", "comments")
LANGUAGES = ("de", "en")
RETRIEVAL_K = max(RECALL_KS)
# A passage finds an evidence span when it holds at least this share of the span.
EVIDENCE_OVERLAP = 0.5
DEFAULT_RUNS_DIR = Path("evals/runs")
RESULTS_FILE = "results.jsonl"
# Source files are read whole to check quotes; no indexed file is larger (see `max_file_mb`).
MAX_SOURCE_BYTES = 1 << 30
# Locations, not behaviour: the index and model they point to are recorded by hash.
UNHASHED_SETTINGS = ("index_dir", "model_dir")

ProgressCallback = Callable[[str, int, int], None]
Metrics = dict[str, float | int | None]

_HYPHENS = re.compile(r"[-\u2010-\u2015\u2212]")
_SOFT_HYPHEN = "\u00ad"
_THRESHOLD = re.compile(r"^\s*([\w@.-]+)\s*=\s*(\S+)\s*$")


class HasSpan(Protocol):
    """Anything with a source file and a character span (passages, evidence)."""

    @property
    def source(self) -> str: ...
    @property
    def start(self) -> int: ...
    @property
    def end(self) -> int: ...


@dataclass(frozen=True)
class Span:
    """A span read back from JSON (a passage of a results file)."""

    source: str
    start: int
    end: int
    text: str = ""
    context: str = ""  # the article's title and outlet, which back "according to <outlet>"


@dataclass(frozen=True)
class Question:
    """One validated line of the question set."""

    id: str
    question: str
    lang: Language  # the schema allows only the languages the tool answers in
    answerable: bool
    type: str
    sources: tuple[str, ...]
    evidence: tuple[Span, ...]
    required_facts: tuple[tuple[str, ...], ...]
    follows: str | None = None
    include_comments: bool = False
    notes: str | None = None
    corpus: str | None = None  # a folder relative to the questions file; None: the given index

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Question:
        return cls(
            id=data["id"],
            question=data["question"],
            lang=data["lang"],
            answerable=data["answerable"],
            type=data["type"],
            sources=tuple(data["sources"]),
            evidence=tuple(Span(e["source"], e["start"], e["end"], e["text"]) for e in data["evidence"]),
            required_facts=tuple(tuple(alternatives) for alternatives in data["required_facts"]),
            follows=data.get("follows"),
            include_comments=bool(data.get("include_comments", False)),
            notes=data.get("notes"),
            corpus=data.get("corpus"),
        )

    def gold_json(self) -> dict[str, Any]:
        """The gold fields as stored in results.jsonl."""
        return {
            "sources": list(self.sources),
            "evidence": [
                {"source": e.source, "start": e.start, "end": e.end, "text": e.text} for e in self.evidence
            ],
            "required_facts": [list(fact) for fact in self.required_facts],
            "follows": self.follows,
            "include_comments": self.include_comments,
            "notes": self.notes,
            "corpus": self.corpus,
        }


@dataclass(frozen=True)
class QuestionSet:
    """The validated questions of one file, with the file's hash for the run record."""

    path: Path
    sha256: str
    questions: tuple[Question, ...]


@dataclass
class EvalRun:
    """A finished run: where its files are and what they hold."""

    out_dir: Path
    summary: dict[str, Any]
    results: list[dict[str, Any]]
    report_path: Path


@dataclass(frozen=True)
class OutcomeChange:
    id: str
    type: str
    question: str
    before: str
    after: str


SIGNIFICANCE = 0.05


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


# ---------------------------------------------------------------------------
# Loading


def schema_path() -> Path:
    """The packaged `rag/data/questions.schema.json` in a wheel, else the repo's `evals/` copy."""
    import rag

    package_dir = Path(rag.__file__).parent
    packaged = package_dir / "data" / "questions.schema.json"
    return packaged if packaged.is_file() else package_dir.parent / "evals" / "questions.schema.json"


def load_questions(path: Path) -> QuestionSet:
    """Read and validate a question set; any bad line is an EvalError naming file and line."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    try:
        raw = path.read_bytes()
        lines = raw.decode("utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise EvalError(
            f"Cannot read {path}: {error} — pass --questions FILE with one JSON object per line"
        ) from error
    validator = Draft202012Validator(json.loads(schema_path().read_text(encoding="utf-8")))
    questions: list[Question] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            data = json.loads(line)
        except json.JSONDecodeError as error:
            raise EvalError(f"{where}: invalid JSON ({error.msg}) — fix that line") from error
        problem = best_match(validator.iter_errors(data))
        if problem is not None:
            location = "" if problem.json_path == "$" else f"{problem.json_path}: "
            raise EvalError(f"{where}: {location}{problem.message} — fix that line")
        question = Question.from_json(data)
        if question.id in seen:
            raise EvalError(f"{where}: duplicate id {question.id!r} — give every question its own id")
        if question.follows is not None and question.follows not in seen:
            raise EvalError(
                f"{where}: follows {question.follows!r}, which is not an earlier question — reorder"
            )
        seen.add(question.id)
        questions.append(question)
    if not questions:
        raise EvalError(f"{path} holds no questions — add one JSON object per line")
    return QuestionSet(path=path, sha256=hashlib.sha256(raw).hexdigest(), questions=tuple(questions))


# ---------------------------------------------------------------------------
# Metrics: pure functions over spans, texts and result records


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


def _mean(values: Iterable[float | bool]) -> float | None:
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
        "validity": _mean(n in valid for n in markers),
        "recall": _mean(recall_hits),
        "precision": _mean(
            is_supported(sentence, passages[n - 1].text, passages[n - 1].context) for sentence, n in pairs
        ),
        "grounding": (
            _mean(any(overlap_chars(passages[n - 1], e) > 0 for e in evidence) for _, n in pairs)
            if evidence
            else None
        ),
    }


def score_result(question: Question, record: Mapping[str, Any]) -> dict[str, Any]:
    """Per-question scores from a results record (`retrieved`, plus the ask fields in full mode)."""
    retrieved = [_span(p) for p in record.get("retrieved", [])]
    scores: dict[str, Any] = retrieval_scores(retrieved, question.evidence)
    if "refused" not in record:  # retrieval-only
        return scores
    refused = bool(record["refused"])
    shown = [_span(p) for p in record.get("passages", [])]
    scores["context_recall"] = retrieval_scores(shown, question.evidence)[f"recall@{RETRIEVAL_K}"]
    scores["refused"] = refused
    scores["correct"] = (
        not refused and not missing_facts(record["answer"], question.required_facts)
        if question.answerable
        else None
    )
    evidence = [_span(e) for e in record.get("evidence", [])]
    if question.evidence and evidence:
        hits = [any(overlap_chars(e, gold) > 0 for gold in question.evidence) for e in evidence]
        scores["evidence_precision@1"], scores["evidence_recall"] = hits[0], any(hits)
    scores["quote_exact"] = record.get("quotes_exact")
    final = citation_scores(record["answer"], shown, question.evidence) if not refused else {}
    raw = citation_scores(record.get("raw", ""), shown, question.evidence)
    for name in ("validity", "recall", "precision"):
        scores[f"citation_{name}"] = final.get(name)
        scores[f"raw_citation_{name}"] = raw[name]
    scores["evidence_grounding"] = final.get("grounding")
    timings = record.get("timings_ms", {})
    first_token = float(timings.get("first_token", 0.0))
    total = float(timings.get("total", 0.0))
    generated = first_token > 0 and total > first_token
    scores["first_token_ms"] = first_token if generated else None
    scores["total_ms"] = total
    scores["generation_ms"] = total - first_token if generated else None
    scores["completion_tokens"] = int(record.get("tokens", {}).get("completion", 0)) if generated else None
    return scores


def _span(passage: Mapping[str, Any]) -> Span:
    context = article_context(passage.get("title"), passage.get("outlet"))
    return Span(passage["source"], passage["start"], passage["end"], passage.get("text", ""), context)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (None for no values)."""
    import numpy as np

    return float(np.percentile(values, q)) if values else None


def _rounded(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def summarize(records: Sequence[Mapping[str, Any]]) -> Metrics:
    """The flat metrics (METRIC_KEYS) of a group of scored records; None where nothing was measured."""

    def values(key: str, where: Callable[[Mapping[str, Any]], bool] = lambda r: True) -> list[Any]:
        return [r["scores"][key] for r in records if where(r) and r["scores"].get(key) is not None]

    def answered(record: Mapping[str, Any]) -> bool:
        return record["scores"].get("refused") is False

    metrics: Metrics = {"questions": len(records)}
    for k in RECALL_KS:
        metrics[f"retrieval_recall@{k}"] = _rounded(_mean(values(f"recall@{k}")))
    metrics["retrieval_mrr"] = _rounded(_mean(values("reciprocal_rank")))
    metrics["context_recall"] = _rounded(_mean(values("context_recall")))
    metrics["answer_correct"] = _rounded(_mean(values("correct")))
    metrics["evidence_precision@1"] = _rounded(_mean(values("evidence_precision@1")))
    metrics["evidence_recall"] = _rounded(_mean(values("evidence_recall")))
    metrics["quote_exact"] = _rounded(_mean(values("quote_exact", answered)))
    metrics["refusal_rate"] = _rounded(_mean(values("refused", lambda r: not r["answerable"])))
    metrics["false_refusal_rate"] = _rounded(_mean(values("refused", lambda r: r["answerable"])))
    metrics["false_premise_correct"] = _rounded(
        _mean(values("correct", lambda r: r["type"] == "false-premise"))
    )
    for name in ("citation_validity", "citation_recall", "citation_precision", "evidence_grounding"):
        metrics[name] = _rounded(_mean(values(name, answered)))
    for name in ("raw_citation_validity", "raw_citation_recall", "raw_citation_precision"):
        metrics[name] = _rounded(_mean(values(name)))
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


def summarize_groups(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Metrics overall, by question type and by language (groups in fixed order, empty ones left out)."""
    return {
        "overall": summarize(records),
        "by_type": {
            kind: summarize(group)
            for kind in QUESTION_TYPES
            if (group := [r for r in records if r["type"] == kind])
        },
        "by_lang": {
            lang: summarize(group)
            for lang in LANGUAGES
            if (group := [r for r in records if r["lang"] == lang])
        },
    }


def outcome(record: Mapping[str, Any]) -> str:
    """A one-word verdict for one question, used to list changes between runs."""
    scores = record["scores"]
    if "refused" not in scores:
        recall = scores.get("recall@5")
        if recall is None:
            return "n/a"
        return "found@5" if recall == 1 else ("partly@5" if recall > 0 else "missed@5")
    if scores["refused"]:
        return "refused"
    if not record["answerable"]:
        return "answered"
    return "correct" if scores["correct"] else "wrong"


# ---------------------------------------------------------------------------
# Thresholds


def parse_thresholds(items: Sequence[str]) -> dict[str, float]:
    """`metric=value` strings -> {metric: value}; unknown metrics or bad values are an EvalError."""
    thresholds: dict[str, float] = {}
    for item in items:
        match = _THRESHOLD.match(item)
        if not match:
            raise EvalError(f"bad threshold {item!r} — write METRIC=VALUE, e.g. answer_correct=0.6")
        name, value = match.groups()
        if name not in METRIC_KEYS:
            raise EvalError(f"unknown metric {name!r} in {item!r} — use one of: {', '.join(METRIC_KEYS)}")
        try:
            thresholds[name] = float(value)
        except ValueError as error:
            raise EvalError(f"bad value {value!r} in {item!r} — use a number, e.g. {name}=0.5") from error
    return thresholds


def check_thresholds(
    overall: Mapping[str, Any], minimums: Mapping[str, float], maximums: Mapping[str, float] | None = None
) -> None:
    """Raise one EvalError listing every metric below its floor or above its ceiling (or unmeasured)."""
    missed: list[str] = []
    for name, floor in minimums.items():
        value = overall.get(name)
        if value is None:
            missed.append(f"{name} not measured (floor {floor:g})")
        elif value < floor:
            missed.append(f"{name}={value:g} < {floor:g}")
    for name, ceiling in (maximums or {}).items():
        value = overall.get(name)
        if value is None:
            missed.append(f"{name} not measured (ceiling {ceiling:g})")
        elif value > ceiling:
            missed.append(f"{name}={value:g} > {ceiling:g}")
    if missed:
        raise EvalError(f"evaluation thresholds missed: {'; '.join(missed)} — see report.md for the failures")


# ---------------------------------------------------------------------------
# Running


def default_run_dir(base: Path = DEFAULT_RUNS_DIR) -> Path:
    """evals/runs/<UTC timestamp>, the default --out."""
    return base / datetime.now(UTC).strftime("%Y%m%d-%H%M%S")


def _history(question: Question, answers: Mapping[str, tuple[Question, Answer]]) -> list[Turn]:
    """The chain of turns a follow-up continues: its parent's history, then the parent itself."""
    if question.follows is None:
        return []
    parent, parent_answer = answers[question.follows]
    return [
        *_history(parent, answers),
        Turn(as_read(parent.question, parent_answer.previous_question), parent_answer.answer),
    ]


def run_eval(
    pipeline: Pipeline,
    questions: QuestionSet,
    out_dir: Path,
    *,
    retrieval_only: bool = False,
    oracle: bool = False,
    limit: int | None = None,
    on_progress: ProgressCallback | None = None,
) -> EvalRun:
    """Run the first `limit` questions (all by default), score them and write the run files.

    `oracle` answers each answerable question from its gold evidence alone, without
    retrieval: the ceiling that perfect retrieval would give this model, prompt and
    verifier. Unanswerable questions have no evidence and are left out.
    """
    if retrieval_only and oracle:
        raise EvalError("--oracle answers questions and --retrieval-only does not — choose one")
    selected = list(questions.questions[:limit] if limit else questions.questions)
    if oracle:
        selected = [question for question in selected if question.answerable]
    previous = find_previous_summary(out_dir)
    indexed = pipeline.reader.documents()  # also fails on a missing or stale index before any work
    selected, skipped_corpora = without_absent_corpora(selected, questions.path)
    if not retrieval_only:
        for language in sorted({question.lang for question in selected}):
            pipeline.answer_llm(language)  # load up front, so no question's timings include loading
        pipeline.aux_llm  # noqa: B018
    corpora = open_corpora(pipeline, {q.corpus for q in selected if q.corpus}, questions.path, on_progress)
    pipelines: dict[str | None, Pipeline] = {None: pipeline}
    pipelines.update(corpora)
    documents: dict[str | None, list[dict[str, Any]]] = {None: indexed}
    documents.update({corpus: other.documents() for corpus, other in corpora.items()})
    stage = "retrieving" if retrieval_only else "answering"
    answers: dict[str, tuple[Question, Answer]] = {}
    results: list[dict[str, Any]] = []
    for done, question in enumerate(selected):
        if on_progress:
            on_progress(stage, done, len(selected))
        gold = gold_passages(question, documents[question.corpus]) if oracle else None
        target = pipelines[question.corpus]
        record = _question_record(question, target, answers, retrieval_only=retrieval_only, gold=gold)
        results.append(record)
    if on_progress:
        on_progress(stage, len(selected), len(selected))
    for other in corpora.values():
        other.close()
    run = run_metadata(pipeline, questions, retrieval_only=retrieval_only, oracle=oracle, limit=limit)
    run["corpora"] = {corpus: _index_record(other) for corpus, other in corpora.items()}
    run["skipped_corpora"] = skipped_corpora
    summary = {"run": run, **summarize_groups(results)}
    report_path = _write_run_files(out_dir, summary, results, previous)
    return EvalRun(out_dir=out_dir, summary=summary, results=results, report_path=report_path)


def _question_record(
    question: Question,
    target: Pipeline,
    answers: dict[str, tuple[Question, Answer]],
    *,
    retrieval_only: bool,
    gold: list[Passage] | None,
) -> dict[str, Any]:
    """Run and score one question: its results.jsonl record.

    `target` is the pipeline of the question's corpus; `gold` (oracle runs) replaces
    retrieval. The answer is added to `answers`, for the follow-ups that continue it.
    """
    from rag.answering.answer import ask

    filters = SearchFilters(include_comments=question.include_comments)
    record: dict[str, Any] = {
        "id": question.id,
        "type": question.type,
        "lang": question.lang,
        "answerable": question.answerable,
    }
    if retrieval_only:
        record["question"] = question.question
        retrieved = target.search(question.question, k=RETRIEVAL_K, filters=filters)
    else:
        answer = ask(
            target,
            question.question,
            filters=filters,
            history=_history(question, answers),
            passages=gold,
        )
        if answer.interrupted:  # ask turns Ctrl-C into a refusal; a run must stop instead
            raise KeyboardInterrupt
        answers[question.id] = (question, answer)
        record.update(answer.to_json())
        record["quotes_exact"] = quotes_exact(answer, target) if answer.citations else None
        retrieved = gold or target.search(
            answer.question,
            k=RETRIEVAL_K,
            filters=filters,
            expansions=[q for q in (answer.search_query, answer.previous_question) if q],
        )
    record["retrieved"] = [p.to_json(n) for n, p in enumerate(retrieved, 1)]
    record["gold"] = question.gold_json()
    record["scores"] = score_result(question, record)
    if not retrieval_only:
        record["missing_facts"] = missing_facts(record["answer"], question.required_facts)
    return record


def _write_run_files(
    out_dir: Path, summary: dict[str, Any], results: Sequence[Mapping[str, Any]], previous: PreviousRun | None
) -> Path:
    """Write results.jsonl, summary.json and the report into `out_dir`; returns the report's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / RESULTS_FILE).open("w", encoding="utf-8") as handle:
        for record in results:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    (out_dir / SUMMARY_FILE).write_text(
        json.dumps(summary, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    return write_report(out_dir, summary, results, previous)


def quotes_exact(answer: Answer, pipeline: Pipeline) -> bool:
    """Whether every citation quotes its source's canonical text character for character at its span."""
    from rag.ingest.read import read_source

    manifest = pipeline.reader.manifest
    texts: dict[str, str] = {}
    for citation in answer.citations:
        if citation.source not in texts:
            options = manifest.collection_options(citation.source)
            texts[citation.source] = read_source(
                citation.source, pipeline.cwd, MAX_SOURCE_BYTES, options
            ).text
        if texts[citation.source][citation.start : citation.end] != citation.quote:
            return False
    return True


def without_absent_corpora(
    questions: Sequence[Question], questions_path: Path
) -> tuple[list[Question], dict[str, int]]:
    """The questions whose corpus folder exists (or that need none), and how many each absent one cost."""
    absent = {q.corpus for q in questions if q.corpus and not (questions_path.parent / q.corpus).is_dir()}
    skipped = Counter(q.corpus for q in questions if q.corpus in absent)
    kept = [question for question in questions if question.corpus not in absent]
    if questions and not kept:
        names = ", ".join(sorted(f"{questions_path.parent / corpus}" for corpus in absent))
        raise EvalError(
            f"Every selected question needs an absent corpus ({names}) — add it or change --limit"
        )
    return kept, {str(corpus): count for corpus, count in sorted(skipped.items())}


def corpus_index_dir(index_dir: Path, folder: Path) -> Path:
    """Where a question corpus is indexed: beside the main index, e.g. `index-html-news/`."""
    return index_dir.with_name(f"{index_dir.name}-{folder.resolve().name}")


def open_corpora(
    pipeline: Pipeline, corpora: set[str], questions_path: Path, on_progress: ProgressCallback | None
) -> dict[str, Pipeline]:
    """A pipeline per corpus folder on the shared models, its index brought up to date first."""
    opened: dict[str, Pipeline] = {}
    for corpus in sorted(corpora):
        folder = questions_path.parent / corpus
        index_dir = corpus_index_dir(Path(pipeline.settings.index_dir), folder)
        other = pipeline.sharing_models(pipeline.settings.with_overrides(index_dir=index_dir))
        other.index([folder], on_progress=on_progress)
        opened[corpus] = other
    return opened


def _index_record(pipeline: Pipeline) -> dict[str, Any]:
    manifest = pipeline.reader.manifest
    return {
        "index_dir": str(pipeline.settings.index_dir),
        "fingerprint": manifest.fingerprint,
        "files": {source: entry.sha256 for source, entry in sorted(manifest.files.items())},
    }


def gold_passages(question: Question, documents: Sequence[Mapping[str, Any]]) -> list[Passage]:
    """The question's evidence spans as passages, as if retrieval had found exactly them.

    `documents` are the index's (`IndexReader.documents`), which know each file by its
    path as indexed; evidence names it by its file name.
    """
    passages = []
    for span in question.evidence:
        document = next((d for d in documents if same_file(d["source"], span.source)), None)
        if document is None:
            raise EvalError(
                f"{question.id}: its evidence file {span.source} is not indexed — run `rag index`"
            )
        passages.append(
            Passage(
                source=document["source"],
                start=span.start,
                end=span.end,
                text=span.text,
                score=1.0,
                title=document["title"],
                outlet=document["outlet"],
                date=document["date"],
                author=document["author"],
            )
        )
    return passages


def settings_hash(settings: Mapping[str, Any]) -> str:
    """sha256 of the sorted settings JSON, leaving out locations (UNHASHED_SETTINGS)."""
    relevant = {key: value for key, value in settings.items() if key not in UNHASHED_SETTINGS}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()


def git_commit(directory: Path) -> str:
    """The checked-out commit of the code being evaluated, or "unknown"."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else "unknown"


def run_metadata(
    pipeline: Pipeline,
    questions: QuestionSet,
    *,
    retrieval_only: bool,
    oracle: bool = False,
    limit: int | None,
) -> dict:
    """Everything that decides a run's numbers: settings, model, index, code and question set."""
    import rag

    settings = pipeline.settings.model_dump(mode="json")
    manifest = pipeline.reader.manifest
    llm = pipeline.llm if pipeline.llm_loaded else None
    return {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "retrieval-only" if retrieval_only else ("oracle" if oracle else "full"),
        "limit": limit,
        "questions_file": str(questions.path),
        "questions_sha256": questions.sha256,
        "settings": settings,
        "settings_hash": settings_hash(settings),
        "model": {"path": str(llm.model_path), "sha256": llm.sha256} if llm is not None else None,
        "index": {
            "fingerprint": manifest.fingerprint,
            "embedding_model": manifest.embedding_model,
            "embedding_model_hash": manifest.embedding_model_hash,
            "files": {source: entry.sha256 for source, entry in sorted(manifest.files.items())},
        },
        "git_commit": git_commit(Path(rag.__file__).parent),
    }


# ---------------------------------------------------------------------------
# Reading runs back and comparing them


def load_run(run_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """summary.json and results.jsonl of a run directory."""
    try:
        summary = json.loads((run_dir / SUMMARY_FILE).read_text(encoding="utf-8"))
        lines = (run_dir / RESULTS_FILE).read_text(encoding="utf-8").splitlines()
        results = [json.loads(line) for line in lines if line.strip()]
    except (OSError, ValueError) as error:
        raise EvalError(
            f"{run_dir} is not a readable eval run ({error}) — pass a directory made by `rag eval`"
        ) from error
    return summary, results


def compare_runs(run_a: Path, run_b: Path) -> Comparison:
    """Overall metric differences (B - A) and every question whose outcome changed."""
    summary_a, results_a = load_run(run_a)
    summary_b, results_b = load_run(run_b)
    comparison = Comparison(run_a=run_a, run_b=run_b)
    for name in METRIC_KEYS:
        before, after = summary_a["overall"].get(name), summary_b["overall"].get(name)
        if before is not None or after is not None:
            comparison.metrics.append(MetricDelta(name, before, after))
    by_id_a = {r["id"]: r for r in results_a}
    by_id_b = {r["id"]: r for r in results_b}
    ordered_ids = [r["id"] for r in results_b] + [r["id"] for r in results_a if r["id"] not in by_id_b]
    for question_id in ordered_ids:
        a, b = by_id_a.get(question_id), by_id_b.get(question_id)
        before = outcome(a) if a else "absent"
        after = outcome(b) if b else "absent"
        record = b or a
        if before != after and record is not None:
            change = OutcomeChange(question_id, record["type"], record.get("question", ""), before, after)
            comparison.changes.append(change)
    both = [(by_id_a[i], by_id_b[i]) for i in ordered_ids if i in by_id_a and i in by_id_b]
    comparison.paired = [
        test
        for name, answerable, good in PAIRED_OUTCOMES
        if (test := _paired_test(name, [p for p in both if p[0]["answerable"] == answerable], good)).questions
    ]
    return comparison


# (metric, over answerable questions?, what counts as a good outcome)
PAIRED_OUTCOMES: tuple[tuple[str, bool, Callable[[Mapping[str, Any]], bool]], ...] = (
    ("answer_correct", True, lambda scores: bool(scores.get("correct"))),
    ("refusal_rate", False, lambda scores: bool(scores.get("refused"))),
)


def _paired_test(
    name: str,
    pairs: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]],
    good: Callable[[Mapping[str, Any]], bool],
) -> PairedTest:
    scored = [
        (good(a["scores"]), good(b["scores"]))
        for a, b in pairs
        if "refused" in a["scores"] and "refused" in b["scores"]
    ]
    return PairedTest(
        name,
        questions=len(scored),
        only_a=sum(a and not b for a, b in scored),
        only_b=sum(b and not a for a, b in scored),
    )
