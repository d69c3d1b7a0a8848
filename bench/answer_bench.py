"""Answer benchmark: `ask` with the real default model, warm and with the prompt-prefix cache defeated.

The Pipeline (seeds index, MiniLM, default GGUF model) is loaded once, with one answer
context per language; one warm-up question per language is asked first and not
counted, so the fixed part of each prompt (system prompt and examples) is in its
context's KV cache. Then 12 questions from
evals/questions.jsonl (6 German facts, 3 English, 3 unanswerable; follow-ups are
left out because they need history) are each asked twice, side by side:
- warm: straight after the previous question, as in `rag chat` or `rag eval`;
- cold: after an unrelated one-token chat call, so no prompt prefix is cached.

Each language answers in its own llama.cpp context, so a warm question finds its
prompt prefix cached whichever language came before; the cold/warm ratios are also
given over the questions whose warm run did reuse a prefix ("prefix_reused"). An
English question also makes a translation call (in the short-call context) first.

Per answer it records time to first token and total time (Answer.timings_ms, from
the call of `ask`), LLM time ("llm": every model call inside `ask`, including the
translation of English questions and the refusal-odds pass), the refusal-odds pass on
its own ("refusal_odds": it processes the prompt, so the answer call that follows finds
the whole prompt cached and its prompt speed reads 0), prompt, cached and completion
tokens, and the
tool's own overhead = total − LLM time (retrieval, prompt fitting, verification).
Prompt-processing speed is (prompt − cached tokens) / the answer call's time to its
first token; generation speed is (completion tokens − 1) / the time after it.
Writes bench/results/answer.json after every question (with "complete": false until
the last), so a run that is stopped keeps what it measured; it measures, never asserts.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Sequence
from itertools import zip_longest
from pathlib import Path
from typing import Any

from benchlib import (
    QUESTIONS_FILE,
    REPO,
    SEEDS_DIR,
    machine_info,
    print_json,
    summarize,
    timed_ms,
    write_result,
)
from index_bench import build

from rag.answering.answer import ask
from rag.answering.pipeline import Pipeline
from rag.answering.result import Answer
from rag.settings import Settings

# (languages, answerable, types, how many) in the order they are asked; languages alternate
QUESTION_MIX = (
    (("de",), True, ("fact",), 6),
    (("en",), True, ("english", "fact"), 3),
    (("de", "en"), False, ("unanswerable",), 3),
)
# A warm run counts as reusing the fixed prompt prefix when at least this many tokens were cached.
MIN_REUSED_PREFIX = 32
UNRELATED_CHAT = [
    {"role": "system", "content": "Du bist ein Taschenrechner."},
    {"role": "user", "content": "Was ist 2 + 2?"},
]


def pick_questions() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The warm-up questions (the first German and English facts) and the measured mix after them."""
    items = [
        json.loads(line) for line in QUESTIONS_FILE.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    warmups = [
        next(item for item in items if item["lang"] == language and item["type"] in ("fact", "english"))
        for language in ("de", "en")
    ]
    chosen: list[dict[str, Any]] = []
    for languages, answerable, types, count in QUESTION_MIX:
        per_language = [
            [
                item
                for item in items
                if item not in warmups
                and item["lang"] == language
                and item["answerable"] == answerable
                and item["type"] in types
            ]
            for language in languages
        ]
        alternating = [item for row in zip_longest(*per_language) for item in row if item is not None]
        chosen.extend(alternating[:count])
    return warmups, chosen


def measure(pipeline: Pipeline, item: dict[str, Any]) -> dict[str, Any]:
    """Ask one question and read the timings and token counts of the answer call."""
    answer: Answer = ask(pipeline, item["question"])
    usage = pipeline.answer_llm(answer.language).last_usage if answer.tokens.get("prompt") else None
    timings = answer.timings_ms
    row: dict[str, Any] = {
        "id": item["id"],
        "lang": item["lang"],
        "type": item["type"],
        "refused": answer.refused,
        # A refusal decided before any generation has no first token.
        "first_token_ms": round(timings["first_token"], 1) if timings["first_token"] > 0 else None,
        "total_ms": round(timings["total"], 1),
        "llm_ms": round(timings["llm"], 1),
        "retrieve_ms": round(timings["retrieve"], 1),
        "refusal_odds_ms": round(timings["refusal_odds"], 1),
        "overhead_ms": round(timings["total"] - timings["llm"], 1),
        "prompt_tokens": answer.tokens.get("prompt", 0),
        "cached_tokens": answer.tokens.get("cached", 0),
        "completion_tokens": answer.tokens.get("completion", 0),
        "prompt_tokens_per_second": None,
        "generation_tokens_per_second": None,
    }
    if usage is not None and usage.first_token_ms:
        evaluated = usage.prompt_tokens - usage.cached_tokens
        row["prompt_tokens_per_second"] = round(evaluated / (usage.first_token_ms / 1000), 1)
        generating_ms = usage.total_ms - usage.first_token_ms
        if usage.completion_tokens > 1 and generating_ms > 0:
            row["generation_tokens_per_second"] = round(
                (usage.completion_tokens - 1) / (generating_ms / 1000), 1
            )
    return row


def summarize_mode(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    def column(name: str) -> list[float]:
        return [row[name] for row in rows if row[name] is not None]

    total = sum(column("total_ms"))
    return {
        "first_token_ms": summarize(column("first_token_ms")),
        "total_ms": summarize(column("total_ms")),
        "refusal_odds_ms": summarize(column("refusal_odds_ms")),
        "overhead_ms": summarize(column("overhead_ms")),
        "overhead_percent_p50": summarize([100 * row["overhead_ms"] / row["total_ms"] for row in rows])[
            "p50"
        ],
        "overhead_percent_overall": round(100 * sum(column("overhead_ms")) / total, 2) if total else None,
        "prompt_tokens": summarize(column("prompt_tokens")),
        "cached_tokens": summarize(column("cached_tokens")),
        "completion_tokens": summarize(column("completion_tokens")),
        "prompt_tokens_per_second": summarize(column("prompt_tokens_per_second")),
        "generation_tokens_per_second": summarize(column("generation_tokens_per_second")),
        "refused": sum(row["refused"] for row in rows),
    }


def compare_modes(warm: Sequence[dict[str, Any]], cold: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per-question cold/warm ratios, over all questions and over those whose warm run reused a prefix."""

    def ratios(pairs: Sequence[tuple[dict[str, Any], dict[str, Any]]], name: str) -> dict[str, float | int]:
        return summarize([c[name] / w[name] for w, c in pairs if w[name] and c[name] is not None])

    pairs = list(zip(warm, cold, strict=True))
    reused = [(w, c) for w, c in pairs if w["cached_tokens"] >= MIN_REUSED_PREFIX]
    return {
        "all": {"first_token": ratios(pairs, "first_token_ms"), "total": ratios(pairs, "total_ms")},
        "prefix_reused": {
            "questions": [w["id"] for w, _ in reused],
            "warm_cached_tokens": summarize([w["cached_tokens"] for w, _ in reused]),
            "warm_first_token_ms": summarize([w["first_token_ms"] for w, _ in reused if w["first_token_ms"]]),
            "cold_first_token_ms": summarize([c["first_token_ms"] for _, c in reused if c["first_token_ms"]]),
            "first_token": ratios(reused, "first_token_ms"),
            "total": ratios(reused, "total_ms"),
        },
    }


def add_summaries(result: dict[str, Any], rows: dict[str, list[dict[str, Any]]], complete: bool) -> None:
    result["complete"] = complete
    result["modes"] = {mode: summarize_mode(mode_rows) for mode, mode_rows in rows.items() if mode_rows}
    if rows["cold"]:
        result["cold_vs_warm"] = compare_modes(rows["warm"], rows["cold"])
    result["per_question"] = rows


def run(seeds_index: Path, with_cold: bool, limit: int | None) -> dict[str, Any]:
    result: dict[str, Any] = {"machine": machine_info()}
    settings = Settings(index_dir=seeds_index)
    pipeline = Pipeline(settings, cwd=REPO)
    llm_load_ms, llm = timed_ms(lambda: pipeline.llm)
    second_context_ms, _ = timed_ms(lambda: pipeline.answer_llm("en"))
    embedder_load_ms, _ = timed_ms(lambda: pipeline.embedder)
    result["model"] = {"path": str(llm.model_path), "n_ctx": llm.n_ctx, "n_threads": settings.n_threads}
    result["load_ms"] = {
        "llm": round(llm_load_ms, 1),
        "second_answer_context": round(second_context_ms, 1),
        "embedder": round(embedder_load_ms, 1),
    }
    warmups, questions = pick_questions()
    questions = questions[:limit]
    result["warmup"] = [measure(pipeline, item) for item in warmups]
    result["questions"] = [item["id"] for item in questions]
    rows: dict[str, list[dict[str, Any]]] = {"warm": [], "cold": []}
    for item in questions:
        rows["warm"].append(measure(pipeline, item))
        if with_cold:
            pipeline.answer_llm(item["lang"]).complete_chat(UNRELATED_CHAT, max_tokens=1)
            rows["cold"].append(measure(pipeline, item))
        print(
            json.dumps({mode: rows[mode][-1] for mode in rows if rows[mode]}, ensure_ascii=False), flush=True
        )
        add_summaries(result, rows, complete=len(rows["warm"]) == len(questions))
        write_result("answer", result)  # after every question, so a killed run leaves what it measured
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds-index", type=Path, help="A seeds index (else built here).")
    parser.add_argument("--no-cold", action="store_true", help="Skip the cache-defeated second pass.")
    parser.add_argument("--limit", type=int, help="Only the first N of the 12 questions (for a quick try).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rag-answer-bench-") as temporary:
        seeds_index = args.seeds_index
        if seeds_index is None:
            seeds_index = Path(temporary) / "index"
            build(SEEDS_DIR, seeds_index, REPO)
        result = run(seeds_index, with_cold=not args.no_cold, limit=args.limit)
    print_json({key: result[key] for key in ("load_ms", "modes", "cold_vs_warm") if key in result})
    print("wrote bench/results/answer.json")


if __name__ == "__main__":
    main()
