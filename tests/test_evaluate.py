"""Tests for `rag eval`: metric functions on hand-made results, question-set validation, and real runs.

The metric tests use small hand-built results (pure logic). The run tests build a real index of the
seed articles with the real MiniLM in a temporary directory and run the real question set through
retrieval; one slow test runs the full pipeline with the default model on three questions.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from rag.answering import select
from rag.answering.pipeline import Pipeline
from rag.errors import EvalError
from rag.evaluation.compare import PairedTest, compare_runs, outcome
from rag.evaluation.corpora import corpus_index_dir, open_corpora, without_absent_corpora
from rag.evaluation.metrics import METRIC_KEYS
from rag.evaluation.questions import Question, Span, load_questions
from rag.evaluation.report import find_previous_summary
from rag.evaluation.results import QuestionResult
from rag.evaluation.run import EvalRun, run_eval
from rag.evaluation.scoring import citation_scores, missing_facts, retrieval_scores, score_result
from rag.evaluation.summary import percentile, summarize, summarize_groups
from rag.evaluation.thresholds import check_thresholds, parse_thresholds
from rag.index.reader import open_index
from rag.settings import Settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = ROOT / "evals" / "questions.jsonl"
SEEDS = ROOT / "seeds"
HTML_NEWS = "../../shared/corpora/html-news"  # the corpus of the saved-page questions, from evals/
HTML_NEWS_PRESENT = (QUESTIONS.parent / HTML_NEWS).is_dir()


def question(**fields: Any) -> Question:
    """A question with answerable-fact defaults; override any field."""
    data: dict[str, Any] = {
        "id": "q001",
        "question": "Seit wann unterhält Kasachstan Beziehungen zu Israel?",
        "lang": "de",
        "answerable": True,
        "type": "fact",
        "sources": ["001.txt"],
        "evidence": [{"source": "001.txt", "start": 100, "end": 200, "text": "seit 1992"}],
        "required_facts": [["1992"]],
    }
    data.update(fields)
    return Question.from_json(data)


UNANSWERABLE = {
    "answerable": False,
    "type": "unanswerable",
    "sources": [],
    "evidence": [],
    "required_facts": [],
}
PASSAGE_TEXT = "Im Gegensatz zu anderen unterhält Kasachstan seit 1992 formelle Beziehungen zu Israel."


def answer_result(q: Question, answer: str, refused: bool = False, **extra: Any) -> QuestionResult:
    """A scored answer-mode result as run_eval makes it, from a hand-written answer (`extra`: ask fields)."""
    passage = {"n": 1, "source": "seeds/001.txt", "start": 90, "end": 210, "text": PASSAGE_TEXT}
    asked: dict[str, Any] = {
        "question": q.question,
        "answer": answer,
        "refused": refused,
        "raw": answer,
        "passages": [passage],
        "timings_ms": {"first_token": 1000.0, "total": 3000.0},
        "tokens": {"prompt": 500, "completion": 40},
        **extra,
    }
    result = QuestionResult(
        mode="answer",
        id=q.id,
        type=q.type,
        lang=q.lang,
        answerable=q.answerable,
        question=q.question,
        retrieved=[passage],
        gold=q.gold_json(),
        asked=asked,
        missing_facts=missing_facts(answer, q.required_facts),
    )
    return replace(result, scores=score_result(q, result))


# ---------------------------------------------------------------------------
# Retrieval metrics


def test_retrieval_recall_and_mrr_count_evidence_by_file_name_and_overlap() -> None:
    evidence = [Span("000.txt", 100, 200), Span("001.txt", 0, 100)]
    retrieved = [
        Span("seeds/002.txt", 0, 500),  # other file
        Span("seeds/000.txt", 160, 400),  # holds 40% of the first evidence span: no hit
        Span("/abs/seeds/001.txt", 40, 300),  # holds 60% of the second: hit at rank 3
        Span("seeds/000.txt", 90, 210),  # whole first span: hit at rank 4
    ]
    scores = retrieval_scores(retrieved, evidence)
    assert scores["recall@1"] == 0.0
    assert scores["recall@3"] == 0.5
    assert scores["recall@5"] == 1.0
    assert scores["recall@10"] == 1.0
    assert scores["reciprocal_rank"] == pytest.approx(1 / 3)


def test_retrieval_scores_are_zero_on_a_miss_and_none_without_evidence() -> None:
    assert retrieval_scores([Span("seeds/000.txt", 0, 50)], [Span("000.txt", 100, 200)]) == {
        "recall@1": 0.0,
        "recall@3": 0.0,
        "recall@5": 0.0,
        "recall@10": 0.0,
        "reciprocal_rank": 0.0,
    }
    assert set(retrieval_scores([Span("seeds/000.txt", 0, 50)], []).values()) == {None}


# ---------------------------------------------------------------------------
# Answer and citation metrics


def test_missing_facts_ignores_case_hyphens_spacing_and_markers() -> None:
    answer = "Kassym Jomart TOKAJEW schlug am 20.\u00a0Februar 2026 [1] einen Preis vor."
    facts = [["kassym-jomart"], ["20. Februar 2026", "20.02.2026"], ["Friedenspreis", "peace prize"]]
    assert missing_facts(answer, facts) == ["Friedenspreis"]
    assert missing_facts("Er schlug einen peace-prize vor.", [["Friedenspreis", "peace prize"]]) == []


def test_citation_scores_follow_alce_definitions() -> None:
    passages = [
        Span("seeds/001.txt", 100, 190, PASSAGE_TEXT),
        Span(
            "seeds/000.txt", 0, 70, "Tokajew schlug in der Sitzung einen Friedenspreis zu Trumps Ehren vor."
        ),
    ]
    answer = (
        "Kasachstan unterhält seit 1992 formelle Beziehungen zu Israel [1][2]. "
        "Tokajew schlug einen Friedenspreis für Trump vor [2]. "
        "Das Wetter in Astana war schön [7]."
    )
    scores = citation_scores(answer, passages, [Span("001.txt", 120, 160)])
    # markers 1, 2, 2 valid, 7 invalid; sentences 1 and 2 supported, 3 not;
    # citations (s1,1) and (s2,2) support, (s1,2) does not; only passage 1 overlaps the evidence.
    assert scores == {
        "validity": 0.75,
        "recall": pytest.approx(2 / 3),
        "precision": pytest.approx(2 / 3),
        "grounding": pytest.approx(1 / 3),
    }


def test_citation_scores_count_the_outlet_as_the_verifier_does() -> None:
    text = "Katar wurde im vergangenen Jahr zweimal bombardiert."
    sentence = "Laut Novastan wurde Katar im vergangenen Jahr zweimal bombardiert [1]."
    with_outlet = [Span("seeds/001.txt", 0, len(text), text, "Titel Novastan")]
    without = [Span("seeds/001.txt", 0, len(text), text)]
    assert citation_scores(sentence, with_outlet, [])["precision"] == 1.0
    assert citation_scores(sentence, without, [])["precision"] == 0.0


def test_citation_scores_skip_a_refusal_and_what_follows_it() -> None:
    passages = [Span("seeds/001.txt", 0, 90, PASSAGE_TEXT)]
    answer = "Die Quellen enthalten dazu keine Angabe. Kasachstan [1]."
    assert set(citation_scores(answer, passages, []).values()) == {None}


def test_score_result_and_summary_of_a_full_run() -> None:
    results = [
        answer_result(question(id="q001"), "Seit 1992 unterhält Kasachstan Beziehungen zu Israel [1]."),
        answer_result(question(id="q002"), "Kasachstan unterhält Beziehungen zu Israel [1]."),  # fact missing
        answer_result(question(id="q003", lang="en", type="english"), "No.", refused=True),
        answer_result(question(id="q004", type="false-premise"), "Kasachstan hat seit 1992 Beziehungen [1]."),
        answer_result(question(id="q005", **UNANSWERABLE), "Keine Angabe.", refused=True),
        answer_result(question(id="q006", lang="en", **UNANSWERABLE), "Israel [1].", refused=False),
    ]
    assert [outcome(r) for r in results] == ["correct", "wrong", "refused", "correct", "refused", "answered"]
    overall = summarize(results)
    assert overall["questions"] == 6
    assert overall["answer_correct"] == 0.5  # 2 of the 4 answerable
    assert overall["false_refusal_rate"] == 0.25
    assert overall["refusal_rate"] == 0.5
    assert overall["false_premise_correct"] == 1.0
    assert overall["retrieval_recall@1"] == 1.0  # the evidence lies inside the one passage
    assert overall["context_recall"] == 1.0
    assert overall["citation_validity"] == 1.0
    assert overall["ttft_p50_ms"] == 1000.0
    assert overall["total_p95_ms"] == 3000.0
    assert overall["tokens_per_s"] == 20.0  # 40 tokens in the 2 s after the first one
    assert set(METRIC_KEYS) <= set(overall)

    groups = summarize_groups(results)
    assert list(groups["by_type"]) == ["fact", "english", "unanswerable", "false-premise"]
    assert groups["by_type"]["fact"]["answer_correct"] == 0.5
    assert groups["by_lang"]["en"]["questions"] == 2
    assert groups["by_lang"]["en"]["refusal_rate"] == 0.0


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([], 50) is None
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 95) == pytest.approx(4.8)


# ---------------------------------------------------------------------------
# Thresholds


def test_thresholds_list_every_missed_floor_in_one_line() -> None:
    overall = {"answer_correct": 0.5, "refusal_rate": 0.9, "false_refusal_rate": 0.4, "context_recall": None}
    floors = parse_thresholds(["answer_correct=0.6", "refusal_rate=0.8", "context_recall=0.5"])
    with pytest.raises(EvalError) as caught:
        check_thresholds(overall, floors, parse_thresholds(["false_refusal_rate=0.3"]))
    message = str(caught.value)
    assert "\n" not in message
    assert "answer_correct=0.5 < 0.6" in message
    assert "context_recall not measured" in message
    assert "false_refusal_rate=0.4 > 0.3" in message
    assert "refusal_rate=0.9" not in message
    check_thresholds(overall, {"answer_correct": 0.5, "refusal_rate": 0.8})


def test_unknown_metric_or_bad_threshold_is_an_eval_error() -> None:
    with pytest.raises(EvalError, match=r"unknown metric 'recall'.*retrieval_recall@5"):
        parse_thresholds(["recall=0.5"])
    with pytest.raises(EvalError, match="METRIC=VALUE"):
        parse_thresholds(["answer_correct"])
    with pytest.raises(EvalError, match="use a number"):
        parse_thresholds(["answer_correct=high"])


# ---------------------------------------------------------------------------
# Question loading


def test_the_real_question_set_loads() -> None:
    questions = load_questions(QUESTIONS)
    assert len(questions.questions) >= 50
    assert len(questions.sha256) == 64
    assert {q.type for q in questions.questions} >= {"fact", "unanswerable", "follow-up"}


def test_a_bad_line_is_an_eval_error_naming_the_line(tmp_path: Path) -> None:
    good = QUESTIONS.read_text(encoding="utf-8").splitlines()[0]
    bad = json.loads(good)
    del bad["lang"]
    path = tmp_path / "questions.jsonl"
    path.write_text(f"{good}\n\n{json.dumps(bad)}\n", encoding="utf-8")
    with pytest.raises(EvalError, match=rf"^{path}:3: 'lang' is a required property"):
        load_questions(path)

    path.write_text(f"{good}\n{{not json\n", encoding="utf-8")
    with pytest.raises(EvalError, match=rf"^{path}:2: invalid JSON"):
        load_questions(path)

    orphan = {**json.loads(good), "id": "q002", "type": "follow-up", "follows": "q099"}
    path.write_text(f"{good}\n{json.dumps(orphan)}\n", encoding="utf-8")
    with pytest.raises(EvalError, match=rf"^{path}:2: follows 'q099'"):
        load_questions(path)


# ---------------------------------------------------------------------------
# Comparing runs


def write_run(directory: Path, results: list[QuestionResult]) -> Path:
    directory.mkdir(parents=True)
    summary = {"run": {"timestamp": directory.name, "mode": "full"}, **summarize_groups(results)}
    (directory / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    lines = "".join(json.dumps(r.to_json()) + "\n" for r in results)
    (directory / "results.jsonl").write_text(lines, encoding="utf-8")
    return directory


def test_compare_lists_metric_changes_and_changed_outcomes(tmp_path: Path) -> None:
    q1, q2 = question(id="q001"), question(id="q002", **UNANSWERABLE)
    run_a = write_run(
        tmp_path / "a",
        [answer_result(q1, "Kasachstan [1].", refused=True), answer_result(q2, "Israel [1].")],
    )
    correct = "Seit 1992 unterhält Kasachstan Beziehungen zu Israel [1]."
    run_b = write_run(tmp_path / "b", [answer_result(q1, correct), answer_result(q2, "—", refused=True)])
    comparison = compare_runs(run_a, run_b)
    deltas = {m.name: m for m in comparison.metrics}
    assert deltas["answer_correct"].delta == 1.0
    assert deltas["answer_correct"].improved is True
    assert deltas["false_refusal_rate"].delta == -1.0
    assert deltas["false_refusal_rate"].improved is True
    assert deltas["refusal_rate"].delta == 1.0
    assert [(c.id, c.before, c.after) for c in comparison.changes] == [
        ("q001", "refused", "correct"),
        ("q002", "answered", "refused"),
    ]
    assert compare_runs(run_b, run_b).changes == []
    assert [(t.name, t.questions, t.only_a, t.only_b) for t in comparison.paired] == [
        ("answer_correct", 1, 0, 1),
        ("refusal_rate", 1, 0, 1),
    ]


def test_compare_command_shows_the_paired_test(tmp_path: Path) -> None:
    from rag.ui.cli import cli

    q1, q2 = question(id="q001"), question(id="q002")
    correct = "Seit 1992 unterhält Kasachstan Beziehungen zu Israel [1]."
    run_a = write_run(tmp_path / "a", [answer_result(q1, "—", refused=True), answer_result(q2, correct)])
    run_b = write_run(tmp_path / "b", [answer_result(q1, correct), answer_result(q2, "—", refused=True)])
    result = CliRunner().invoke(cli, ["eval", "--compare", str(run_a), str(run_b)])
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if "answer_correct" in line and "chance" in line)
    cells = [cell.strip() for cell in row.split("│")[1:-1]]
    assert cells == ["answer_correct", "2", "1", "1", "1.00", "within chance"]


def test_paired_test_counts_only_the_questions_that_changed() -> None:
    assert PairedTest("answer_correct", 80, only_a=0, only_b=0).p_value == 1.0
    # Two questions gained and none lost is what a coin gives half the time.
    assert PairedTest("answer_correct", 80, only_a=0, only_b=2).p_value == pytest.approx(0.5)
    assert PairedTest("answer_correct", 80, only_a=1, only_b=3).p_value == pytest.approx(0.625)
    # Eight to none is not chance: 2 * 0.5**8.
    assert PairedTest("answer_correct", 80, only_a=0, only_b=8).p_value == pytest.approx(2 * 0.5**8)
    assert PairedTest("answer_correct", 80, only_a=8, only_b=0).p_value == pytest.approx(2 * 0.5**8)


def test_compare_rejects_a_directory_that_is_no_run(tmp_path: Path) -> None:
    with pytest.raises(EvalError, match="not a readable eval run"):
        compare_runs(tmp_path, tmp_path)
    # Without the run's mode the lines of results.jsonl cannot be read as results.
    (tmp_path / "summary.json").write_text(json.dumps({"run": {}, "overall": {}}), encoding="utf-8")
    (tmp_path / "results.jsonl").write_text("", encoding="utf-8")
    with pytest.raises(EvalError, match="not a readable eval run"):
        compare_runs(tmp_path, tmp_path)


# ---------------------------------------------------------------------------
# Real runs on the seed articles


@pytest.fixture(scope="module")
def seeds_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings pointing at a fresh real index of the seed articles (real MiniLM, real Chroma)."""
    settings = Settings(index_dir=tmp_path_factory.mktemp("eval") / "index")
    Pipeline(settings).index([SEEDS])
    return settings


@pytest.fixture(scope="module")
def retrieval_runs(
    seeds_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> tuple[EvalRun, EvalRun]:
    """The real question set run twice, retrieval only, into two sibling run directories."""
    runs_dir = tmp_path_factory.mktemp("runs")
    questions = load_questions(QUESTIONS)
    first = run_eval(Pipeline(seeds_settings), questions, runs_dir / "a", retrieval_only=True)
    progress: list[tuple[str, int, int]] = []
    pipeline = Pipeline(seeds_settings)
    second = run_eval(
        pipeline, questions, runs_dir / "b", retrieval_only=True, on_progress=lambda *a: progress.append(a)
    )
    assert not pipeline.llm_loaded, "retrieval-only must not load the language model"
    asked = len([q for q in questions.questions if HTML_NEWS_PRESENT or q.corpus is None])
    retrieving = [step for step in progress if step[0] == "retrieving"]
    assert (retrieving[0], retrieving[-1]) == (("retrieving", 0, asked), ("retrieving", asked, asked))
    if HTML_NEWS_PRESENT:  # the first run indexed the saved pages; the second found nothing to do
        assert {stage for stage, _, _ in progress} == {"reading", "retrieving"}
    return first, second


def test_real_retrieval_only_run_writes_its_files_and_finds_the_evidence(
    retrieval_runs: tuple[EvalRun, EvalRun],
) -> None:
    run = retrieval_runs[0]
    names = {path.name for path in run.out_dir.iterdir()}
    assert names == {"results.jsonl", "summary.json", "report.md", "metrics.png"}
    assert (run.out_dir / "metrics.png").read_bytes().startswith(b"\x89PNG")
    overall = json.loads((run.out_dir / "summary.json").read_text(encoding="utf-8"))["overall"]
    assert 0.5 < overall["retrieval_recall@10"] <= 1.0
    assert overall["retrieval_recall@1"] <= overall["retrieval_recall@5"] <= overall["retrieval_recall@10"]
    assert overall["answer_correct"] is None
    meta = run.summary["run"]
    assert meta["mode"] == "retrieval-only"
    assert meta["model"] is None
    assert len(meta["settings_hash"]) == 64
    assert set(meta["prompts"]) == {"phrase-de.v1", "phrase-en.v1", "translate.v1"}  # what the answers read
    assert meta["thresholds"]["select.DENSE_WEIGHT"] == select.DENSE_WEIGHT
    assert sorted(Path(s).name for s in meta["index"]["files"]) == sorted(p.name for p in SEEDS.glob("*.txt"))
    lines = (run.out_dir / "results.jsonl").read_text(encoding="utf-8").splitlines()
    assert {result.mode for result in run.results} == {"retrieval-only"}
    assert [QuestionResult.from_json(json.loads(line), "retrieval-only") for line in lines] == run.results
    questions = load_questions(QUESTIONS).questions
    assert [json.loads(line)["id"] for line in lines] == [
        q.id for q in questions if HTML_NEWS_PRESENT or q.corpus is None
    ]
    html_questions = len([q for q in questions if q.corpus == HTML_NEWS])
    if HTML_NEWS_PRESENT:
        assert meta["skipped_corpora"] == {}
        assert len(meta["corpora"][HTML_NEWS]["files"]) == 8
        assert meta["corpora"][HTML_NEWS]["index_dir"].endswith("index-html-news")
        scores = {json.loads(line)["id"]: json.loads(line)["scores"] for line in lines}
        found = [scores[q.id]["recall@10"] for q in questions if q.corpus == HTML_NEWS and q.answerable]
        assert sum(found) / len(found) > 0.5, "the saved pages are searched in their own index"
    else:
        assert meta["skipped_corpora"] == {HTML_NEWS: html_questions}
    report = run.report_path.read_text(encoding="utf-8")
    for heading in ("## Overall", "## By question type", "## By language", "## Worst failures"):
        assert heading in report
    assert "![Main metrics](metrics.png)" in report


def test_real_runs_are_repeatable_and_compare_to_no_change(retrieval_runs: tuple[EvalRun, EvalRun]) -> None:
    first, second = retrieval_runs
    assert first.summary["overall"] == second.summary["overall"]
    assert first.summary["by_type"] == second.summary["by_type"]
    assert first.summary["run"]["settings_hash"] == second.summary["run"]["settings_hash"]
    comparison = compare_runs(first.out_dir, second.out_dir)
    assert comparison.changes == []
    assert all(m.delta == 0 for m in comparison.metrics)
    # The second report compares against the first, the newest sibling run.
    assert "previous (a)" in second.report_path.read_text(encoding="utf-8")
    previous = find_previous_summary(second.out_dir)
    assert previous is not None and previous.label == "b (before this run)"


def test_questions_of_an_absent_corpus_are_skipped_and_counted(tmp_path: Path) -> None:
    lines = QUESTIONS.read_text(encoding="utf-8").splitlines()
    seed_line = json.loads(lines[0])
    elsewhere = [{**seed_line, "id": f"q90{n}", "corpus": "../nowhere"} for n in range(2)]
    here = {**seed_line, "id": "q910", "corpus": "here"}
    (tmp_path / "evals").mkdir()
    (tmp_path / "evals" / "here").mkdir()
    path = tmp_path / "evals" / "questions.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in [seed_line, *elsewhere, here]) + "\n")
    questions = load_questions(path).questions
    kept, skipped = without_absent_corpora(questions, path)
    assert [q.id for q in kept] == [seed_line["id"], "q910"]
    assert skipped == {"../nowhere": 2}
    with pytest.raises(EvalError, match=r"Every selected question needs an absent corpus \(.*nowhere\)"):
        without_absent_corpora(questions[1:3], path)
    assert corpus_index_dir(Path("/tmp/x/index"), tmp_path / "evals" / "here") == Path("/tmp/x/index-here")


def test_a_corpus_index_built_with_other_settings_is_rebuilt_by_the_run(tmp_path: Path) -> None:
    """No command of the user's rebuilds `index-<corpus>/`, so the run does it rather than fail."""
    corpus = tmp_path / "evals" / "here"
    corpus.mkdir(parents=True)
    seed = min((ROOT / "seeds").iterdir(), key=lambda path: path.stat().st_size)
    (corpus / seed.name).write_text(seed.read_text(encoding="utf-8"), encoding="utf-8")
    questions_path = tmp_path / "evals" / "questions.jsonl"
    settings = Settings(index_dir=tmp_path / "index")
    corpus_settings = settings.with_overrides(index_dir=corpus_index_dir(settings.index_dir, corpus))

    old = open_corpora(Pipeline(settings.with_overrides(chunk_tokens=64)), {"here"}, questions_path, None)
    old["here"].close()
    new = open_corpora(Pipeline(settings), {"here"}, questions_path, None)
    new["here"].close()
    reader = open_index(corpus_settings)  # raised StaleIndexError before the rebuild
    try:
        assert reader.manifest.chunk_tokens == 128
        assert [Path(source).name for source in reader.manifest.files] == [seed.name]
    finally:
        reader.close()


def test_cli_eval_retrieval_only_fails_a_missed_floor(seeds_settings: Settings, tmp_path: Path) -> None:
    from rag.ui.cli import cli

    run_dir = tmp_path / "run"
    args = ["--index-dir", str(seeds_settings.index_dir), "eval", "--retrieval-only", "--limit", "4"]
    args += ["--questions", str(QUESTIONS), "--out", str(run_dir), "--min", "retrieval_recall@10=1.01"]
    result = CliRunner().invoke(cli, args)
    assert isinstance(result.exception, EvalError), result.output
    assert "retrieval_recall@10=" in str(result.exception)
    assert "report.md" in result.output
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["overall"]["questions"] == 4

    compared = CliRunner().invoke(cli, ["eval", "--compare", str(run_dir), str(run_dir)])
    assert compared.exit_code == 0, compared.output
    assert "retrieval_recall@10" in compared.output


def test_every_quote_of_a_full_run_is_an_exact_slice_of_its_source(
    seeds_settings: Settings, tmp_path: Path
) -> None:
    """The whole question set through `ask` (a scripted model): no quote is ever generated."""
    from conftest import ScriptedLLM

    from rag.ingest.read import read_source

    llm = ScriptedLLM(refusal_probability=0.2)
    pipeline = Pipeline(seeds_settings, llm=llm, cwd=ROOT)  # type: ignore[arg-type]
    run = run_eval(pipeline, load_questions(QUESTIONS), tmp_path / "quotes")
    assert {r.mode for r in run.results} == {"answer"}
    answered = [r for r in run.results if r.asked and r.asked["citations"]]
    assert len(answered) > len(run.results) / 2
    for result in answered:
        assert result.quotes_exact is True and result.scores["quote_exact"] is True
        assert result.asked is not None
        for citation in result.asked["citations"]:  # the canonical text: a saved page's extracted text
            text = read_source(citation["source"], ROOT, 10**8).text
            assert text[citation["start"] : citation["end"]] == citation["quote"]
    assert run.summary["overall"]["quote_exact"] == 1.0
    lines = (run.out_dir / "results.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.dumps(result.to_json(), ensure_ascii=False) for result in run.results] == lines
    assert [QuestionResult.from_json(json.loads(line), "answer") for line in lines] == run.results
    assert run.summary["overall"]["evidence_precision@1"] is not None


@pytest.mark.slow
def test_full_eval_on_the_default_model(seeds_settings: Settings, tmp_path: Path) -> None:
    questions = load_questions(QUESTIONS)
    run = run_eval(Pipeline(seeds_settings), questions, tmp_path / "full", limit=3)
    assert [r.id for r in run.results] == [q.id for q in questions.questions[:3]]
    for result in run.results:
        assert isinstance(result.answer, str) and result.answer
        assert len(result.retrieved) == 10
    follow_ups = [r for r, q in zip(run.results, questions.questions, strict=False) if q.follows]
    assert all(r.previous_question for r in follow_ups), "a follow-up must be read with its question"
    overall = run.summary["overall"]
    assert overall["answer_correct"] is not None
    assert overall["total_p50_ms"] is not None and overall["total_p50_ms"] > 0
    assert len(run.summary["run"]["model"]["sha256"]) == 64
