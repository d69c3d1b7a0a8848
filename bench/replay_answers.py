"""Replay a `rag eval` run's model outputs through today's selection, check and refusal code.

The model's part of an answer (its refusal odds and its phrasing) is the slow part and
is stored in every run (`refusal_probability`, `raw`). Everything after it is code:
which sentence is quoted, whether a phrasing stands, when the answer is a refusal.
This replays that code on the stored outputs, without loading the model, and scores
the result as `rag eval` would. A question whose evidence shown to the model changed
is counted as `stale`: its stored output no longer belongs to it, and only a real run
can say what the model makes of it.

It measures rule changes in seconds before a full run confirms them; it replaces no
run. The questions are read from the file the run used (`questions_file` in its summary).
Left out: the model (never loaded) and timings (copied from the run).

    python bench/replay_answers.py evals/runs/NAME [--out bench/results/replay.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchlib import QUESTIONS_FILE, REPO

from rag.answering.answer import _checked_answer, _find_evidence, _Generated, _Query, is_refusal_decided
from rag.answering.pipeline import Pipeline
from rag.evaluation.corpora import corpus_index_dir
from rag.evaluation.one_question import gold_passages
from rag.evaluation.questions import load_questions
from rag.evaluation.results import QuestionResult, mode_of_run
from rag.evaluation.scoring import missing_facts, score_result
from rag.evaluation.summary import summarize_groups
from rag.settings import Settings
from rag.types import SearchFilters


def replay(run: dict[str, Any], rows: list[dict[str, Any]]) -> tuple[list[QuestionResult], list[str]]:
    """Every answered question of a run (its summary's `run` and its results lines), re-decided from
    its stored model outputs; and the stale ids."""
    mode = mode_of_run(run["mode"])
    questions_file = REPO / run.get("questions_file", QUESTIONS_FILE)
    questions = {q.id: q for q in load_questions(questions_file).questions}
    settings = Settings()
    main = Pipeline(settings, cwd=REPO)
    pipelines: dict[str | None, Pipeline] = {None: main}
    results, stale = [], []
    for row in rows:
        question = questions[row["id"]]
        if question.corpus not in pipelines:
            index_dir = corpus_index_dir(Path(settings.index_dir), questions_file.parent / question.corpus)
            pipelines[question.corpus] = main.sharing_models(settings.with_overrides(index_dir=index_dir))
        pipeline = pipelines[question.corpus]
        gold = gold_passages(question, pipeline.documents()) if mode == "oracle" else None
        query = _Query(row["question"], row["language"], row["previous_question"], row["search_query"], 0.0)
        filters = SearchFilters(include_comments=question.include_comments)
        found = _find_evidence(pipeline, query, filters, None, gold)
        shown = [(w.context.source, w.context.start, w.context.end) for w in found.windows]
        if shown != [(e["source"], e["start"], e["end"]) for e in row["evidence"]]:
            stale.append(row["id"])
        p_refuse = row["refusal_probability"] if found.windows else None  # no evidence: `ask` asks nothing
        refused = is_refusal_decided(p_refuse, found.selection.unmatched, settings.refusal_threshold)
        generated = _Generated(text=row["raw"] if not refused else "")
        answer = _checked_answer(query, found, generated, refused)
        answer.refusal_probability = p_refuse
        answer.timings_ms = row["timings_ms"]
        old = QuestionResult.from_json(row, mode)
        result = replace(
            old,
            asked=answer.to_json(),
            missing_facts=missing_facts(answer.answer, question.required_facts),
        )
        results.append(replace(result, scores={**score_result(question, result), **_timing(old)}))
    return results, stale


def _timing(old: QuestionResult) -> dict[str, Any]:
    keys = ("first_token_ms", "total_ms", "generation_ms", "completion_tokens")
    return {key: old.scores[key] for key in keys if key in old.scores}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--out", type=Path, help="write the replayed run directory here")
    args = parser.parse_args()
    run = json.loads((args.run / "summary.json").read_text())["run"]
    rows = [json.loads(line) for line in (args.run / "results.jsonl").read_text().splitlines()]
    results, stale = replay(run, rows)
    before = {row["id"]: row for row in rows}
    changed = []
    for result in results:
        old = before[result.id]["scores"]
        if (old["correct"], old["refused"]) != (result.scores["correct"], result.scores["refused"]):
            changed.append(
                f"{result.id} correct {old['correct']}→{result.scores['correct']} "
                f"refused {old['refused']}→{result.scores['refused']}"
                + (" (stale)" if result.id in stale else "")
            )
    summary = summarize_groups(results)
    overall = summary["overall"]
    print(
        f"answer_correct {overall['answer_correct']} refusal_rate {overall['refusal_rate']} "
        f"false_refusal_rate {overall['false_refusal_rate']} evidence_precision@1 "
        f"{overall['evidence_precision@1']} citation_precision {overall['citation_precision']}"
    )
    for group in ("english", "follow-up", "fact", "false-premise", "comments", "multi-doc"):
        print(f"  {group}: {summary['by_type'].get(group, {}).get('answer_correct')}")
    print(f"stale (evidence shown changed, stored output kept): {len(stale)} {stale}")
    print("\n".join(changed))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        with (args.out / "results.jsonl").open("w") as handle:
            for result in results:
                handle.write(json.dumps(result.to_json(), ensure_ascii=False) + "\n")
        (args.out / "summary.json").write_text(json.dumps({"run": run, **summary}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
