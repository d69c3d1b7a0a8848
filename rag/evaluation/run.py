"""`rag eval`: run the question set through the real pipeline, score it and write the run directory.

- `run_eval` runs the selected questions one after another in one mode
  (`rag.evaluation.one_question`): retrieval-only never loads the language model; the
  answering modes load every model they need before the first question, so no
  question's timings include loading. Questions of a corpus are searched in its own
  index (`rag.evaluation.corpora`).
- A run directory holds results.jsonl (one `QuestionResult` a line), summary.json
  (the metrics overall and by group, and everything needed to repeat the run: mode,
  settings and their hash, model, index and question set by hash, the prompts by
  label and hash, the answer path's named thresholds, git commit) and report.md with
  a plot (`rag.evaluation.report`).

Left out: loading the questions (`rag.evaluation.questions`), comparing runs
(`rag.evaluation.compare`) and checking floors (`rag.evaluation.thresholds`).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.answering import cite, conversation, evidence, question_kinds, select
from rag.answering.prompts import available_versions, load_prompt, prompts_dir
from rag.answering.result import CLOSE_CALL
from rag.errors import EvalError
from rag.evaluation.corpora import ProgressCallback, open_corpora, without_absent_corpora
from rag.evaluation.metrics import SUMMARY_FILE
from rag.evaluation.one_question import Answers, run_question
from rag.evaluation.questions import Question, QuestionSet
from rag.evaluation.report import PreviousRun, find_previous_summary, write_report
from rag.evaluation.results import RESULTS_FILE, RUN_MODE_NAMES, QuestionResult, ResultMode
from rag.evaluation.summary import summarize_groups

if TYPE_CHECKING:
    from rag.answering.pipeline import Pipeline

DEFAULT_RUNS_DIR = Path("evals/runs")
# Locations, not behaviour: the index and model they point to are recorded by hash.
UNHASHED_SETTINGS = ("index_dir", "model_dir")


@dataclass
class EvalRun:
    """A finished run: where its files are and what they hold."""

    out_dir: Path
    summary: dict[str, Any]
    results: list[QuestionResult]
    report_path: Path


def default_run_dir(base: Path = DEFAULT_RUNS_DIR) -> Path:
    """evals/runs/<UTC timestamp>, the default --out."""
    return base / datetime.now(UTC).strftime("%Y%m%d-%H%M%S")


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
    mode: ResultMode = "retrieval-only" if retrieval_only else ("oracle" if oracle else "answer")
    selected = list(questions.questions[:limit] if limit else questions.questions)
    if mode == "oracle":
        selected = [question for question in selected if question.answerable]
    previous = find_previous_summary(out_dir)
    indexed = pipeline.reader.documents()  # also fails on a missing or stale index before any work
    selected, skipped_corpora = without_absent_corpora(selected, questions.path)
    if mode != "retrieval-only":  # every model up front, so no question's timings include loading
        pipeline.prepare({question.lang for question in selected})
    corpora = open_corpora(pipeline, {q.corpus for q in selected if q.corpus}, questions.path, on_progress)
    pipelines: dict[str | None, Pipeline] = {None: pipeline}
    pipelines.update(corpora)
    documents: dict[str | None, list[dict[str, Any]]] = {None: indexed}
    documents.update({corpus: other.documents() for corpus, other in corpora.items()})
    results = _run_questions(selected, pipelines, documents, mode, on_progress)
    for other in corpora.values():
        other.close()
    run = run_metadata(pipeline, questions, mode=mode, limit=limit)
    run["corpora"] = {corpus: _index_record(other) for corpus, other in corpora.items()}
    run["skipped_corpora"] = skipped_corpora
    summary = {"run": run, **summarize_groups(results)}
    report_path = _write_run_files(out_dir, summary, results, previous)
    return EvalRun(out_dir=out_dir, summary=summary, results=results, report_path=report_path)


def _run_questions(
    selected: Sequence[Question],
    pipelines: Mapping[str | None, Pipeline],
    documents: Mapping[str | None, Sequence[Mapping[str, Any]]],
    mode: ResultMode,
    on_progress: ProgressCallback | None,
) -> list[QuestionResult]:
    """Every selected question run in `mode` on its corpus's pipeline (None: the given index), in order."""
    stage = "retrieving" if mode == "retrieval-only" else "answering"
    answers: Answers = {}
    results: list[QuestionResult] = []
    for done, question in enumerate(selected):
        if on_progress:
            on_progress(stage, done, len(selected))
        target, indexed = pipelines[question.corpus], documents[question.corpus]
        results.append(run_question(question, target, indexed, answers, mode=mode))
    if on_progress:
        on_progress(stage, len(selected), len(selected))
    return results


def _write_run_files(
    out_dir: Path, summary: dict[str, Any], results: Sequence[QuestionResult], previous: PreviousRun | None
) -> Path:
    """Write results.jsonl, summary.json and the report into `out_dir`; returns the report's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / RESULTS_FILE).open("w", encoding="utf-8") as handle:
        for result in results:
            handle.write(json.dumps(result.to_json(), ensure_ascii=False) + "\n")
    (out_dir / SUMMARY_FILE).write_text(
        json.dumps(summary, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    return write_report(out_dir, summary, results, previous)


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


def run_metadata(pipeline: Pipeline, questions: QuestionSet, *, mode: ResultMode, limit: int | None) -> dict:
    """Everything that decides a run's numbers: settings, model, index, code and question set."""
    import rag

    settings = pipeline.settings.model_dump(mode="json")
    manifest = pipeline.reader.manifest
    llm = pipeline.llm if pipeline.llm_loaded else None
    return {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": RUN_MODE_NAMES[mode],
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
        "prompts": prompt_versions(),
        "thresholds": answer_thresholds(),
        "git_commit": git_commit(Path(rag.__file__).parent),
    }


def prompt_versions() -> dict[str, str]:
    """The prompt each name resolves to (its highest version), by label, with its file's sha256."""
    directory = prompts_dir()
    names = sorted({path.name.split(".v")[0] for path in directory.glob("*.v*.txt")})
    prompts = [load_prompt(name) for name in names if available_versions(name, directory)]
    return {prompt.label: hashlib.sha256(prompt.path.read_bytes()).hexdigest() for prompt in prompts}


def answer_thresholds() -> dict[str, float]:
    """The answer path's named thresholds and weights (the settings hold the rest, e.g. refusal_threshold)."""
    return {
        "select.DENSE_WEIGHT": select.DENSE_WEIGHT,
        "select.RANK_WEIGHT": select.RANK_WEIGHT,
        "select.MIN_TYPED_COVERAGE_SHARE": select.MIN_TYPED_COVERAGE_SHARE,
        "select.MIN_OPEN_SHARE": select.MIN_OPEN_SHARE,
        "select.MIN_COMPLEMENT": select.MIN_COMPLEMENT,
        "select.MIN_PART_COVERAGE_SHARE": select.MIN_PART_COVERAGE_SHARE,
        "question_kinds.MIN_PART_WORDS": question_kinds.MIN_PART_WORDS,
        "evidence.EVIDENCE_SHOWN": evidence.EVIDENCE_SHOWN,
        "cite.MIN_CONTENT_OVERLAP": cite.MIN_CONTENT_OVERLAP,
        "cite.MIN_DENIAL_OVERLAP": cite.MIN_DENIAL_OVERLAP,
        "cite.NAME_MISSES_PER_WORD": cite.NAME_MISSES_PER_WORD,
        "conversation.MIN_STANDALONE_WORDS": conversation.MIN_STANDALONE_WORDS,
        "result.CLOSE_CALL": CLOSE_CALL,
    }


def _index_record(pipeline: Pipeline) -> dict[str, Any]:
    """A question corpus's index in the run record: where it is, its fingerprint and files by hash."""
    manifest = pipeline.reader.manifest
    return {
        "index_dir": str(pipeline.settings.index_dir),
        "fingerprint": manifest.fingerprint,
        "files": {source: entry.sha256 for source, entry in sorted(manifest.files.items())},
    }
