"""One-shot `rag ask --json` in a new process each time: wall time, first token, peak RSS.

What most people do: one question from a shell, model and index on disk, page cache
warm. Variants take turns question by question in a rotating order, after one untimed
run each (which warms the page cache and, for the stored-prefix variant, writes the
prefix state):

- `store`: the current code with the prompt prefix store (the default);
- `no-store`: the current code with `RAG_PREFIX_CACHE_DIR=` (the prefix is processed);
- `before` (with `--before-tree DIR`): another checkout's code, e.g. the commit before
  a change, run with `PYTHONPATH=DIR` and a prefix store of its own.

Per run: wall time of the whole command; the first token as seen from the shell,
estimated as wall − (the answer's own total − its first token), which also counts the
exit after the answer; the answer's own retrieval / first-token / total timings and its
cached prompt tokens; the peak RSS of the command and its children (`wait4`).

Then the split: a probe process per question and round does what `rag ask` does, one
step after another instead of overlapping the model load with opening the index as
`Pipeline.prepare` does, and times each step: imports, opening the index and encoders
(Chroma, BM25, the chunk table, the two query encoders), the model load (every context
the question needs), and inside the answer: retrieval, loading the stored prefix
state, prompt processing (the rest up to the first token) and generation.

Last, `Pipeline.prepare` against the same two steps one after the other (`overlap`):
a new process per run, the two ways taking turns, German question's contexts.
Writes bench/results/cold.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import REPO, machine_info, print_json, run_probe, summarize, venv_bin, write_result

QUESTIONS = (
    "Seit wann unterhält Kasachstan diplomatische Beziehungen zu Israel?",
    "Was schlug Tokajew während der ersten Sitzung des Friedensrats vor?",
    "Since when has Kazakhstan maintained formal relations with Israel?",
)


def run_once(question: str, env: dict[str, str]) -> dict[str, Any]:
    """One `rag ask --json` process; its wall time, peak RSS and the answer's own timings."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [str(venv_bin("rag")), "ask", "--json", question],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall_ms = (time.perf_counter() - started) * 1000
    process.returncode = os.waitstatus_to_exitcode(status)
    record: dict[str, Any] = {"wall_ms": round(wall_ms, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}
    record["exit_code"] = process.returncode
    if process.returncode == 0:
        answer = json.loads(output)
        timings = answer["timings_ms"]
        record.update(
            first_token_wall_ms=round(wall_ms - (timings["total"] - timings["first_token"]), 1),
            retrieve_ms=timings["retrieve"],
            first_token_ms=timings["first_token"],
            total_ms=timings["total"],
            cached_tokens=answer["tokens"]["cached"],
            prompt_tokens=answer["tokens"]["prompt"],
            answer=answer["answer"],
        )
    return record


SPLIT_PROBE = r"""
import json, sys, time
started = time.perf_counter()
from rag.answering.answer import ask
from rag.answering.prefix_store import PrefixStore
from rag.answering.pipeline import Pipeline
from rag.settings import Settings
from rag.text.language import question_language
imported = time.perf_counter()
question = sys.argv[1]
pipeline = Pipeline(Settings())
pipeline.retriever.open()
opened = time.perf_counter()
language = question_language(question)
pipeline._open_contexts([language])
loaded = time.perf_counter()
prefix_ms = []
load_state = PrefixStore.load
def timed_load(self, *args):
    begun = time.perf_counter()
    try:
        return load_state(self, *args)
    finally:
        prefix_ms.append((time.perf_counter() - begun) * 1000)
PrefixStore.load = timed_load
answer = ask(pipeline, question)
t = answer.timings_ms
print(json.dumps({
    "imports_ms": (imported - started) * 1000,
    "open_index_and_encoders_ms": (opened - imported) * 1000,
    "model_load_ms": (loaded - opened) * 1000,
    "retrieve_ms": t["retrieve"],
    "prefix_load_ms": sum(prefix_ms),
    "prompt_processing_ms": t["first_token"] - t["retrieve"] - sum(prefix_ms),
    "generation_ms": t["total"] - t["first_token"],
    "first_token_ms": (loaded - started) * 1000 + t["first_token"],
}))
"""
SPLIT_KEYS = (
    "imports_ms",
    "open_index_and_encoders_ms",
    "model_load_ms",
    "retrieve_ms",
    "prefix_load_ms",
    "prompt_processing_ms",
    "generation_ms",
    "first_token_ms",
)


PREPARE_PROBE = r"""
import json, sys, time
from rag.answering.pipeline import Pipeline
from rag.settings import Settings
pipeline = Pipeline(Settings())
started = time.perf_counter()
if sys.argv[1] == "prepare":
    pipeline.prepare({"de"})
else:
    pipeline.retriever.open()
    pipeline._open_contexts({"de"})
print(json.dumps({"ms": (time.perf_counter() - started) * 1000}))
"""
OVERLAP_WAYS = ("prepare", "one after the other")


def overlap_timings(env: dict[str, str], repeats: int) -> dict[str, Any]:
    """`Pipeline.prepare` (the model loading in a thread) against its two steps in sequence."""
    times: dict[str, list[float]] = {way: [] for way in OVERLAP_WAYS}
    for round_number in range(repeats * 2):
        for way in OVERLAP_WAYS if round_number % 2 == 0 else OVERLAP_WAYS[::-1]:
            times[way].append(run_probe(PREPARE_PROBE, way, env=env, cwd=REPO)["ms"])
    summary = {way: summarize(values) for way, values in times.items()}
    ratio = summary["prepare"]["p50"] / summary["one after the other"]["p50"]
    return {"summary": summary, "prepare_over_sequential_p50": round(ratio, 3), "runs_ms": times}


def split_timings(env: dict[str, str], repeats: int) -> dict[str, Any]:
    """The one-shot path's steps, one after another, per question (see module doc)."""
    records = [
        {"question": question, **run_probe(SPLIT_PROBE, question, env=env, cwd=REPO)}
        for _ in range(repeats)
        for question in QUESTIONS
    ]
    by_language = {
        "de": [r for r in records if r["question"] != QUESTIONS[-1]],
        "en": [r for r in records if r["question"] == QUESTIONS[-1]],
    }
    return {
        "summary": {
            language: {key: summarize([r[key] for r in chosen]) for key in SPLIT_KEYS}
            for language, chosen in by_language.items()
        },
        "runs": records,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="Rounds over the questions per variant.")
    parser.add_argument("--before-tree", type=Path, help="A checkout whose code is the `before` variant.")
    args = parser.parse_args()
    info = machine_info()
    base = {**os.environ, "HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False"}
    store_dir = tempfile.mkdtemp(prefix="rag-prefixes-")
    variants = {
        "store": {**base, "RAG_PREFIX_CACHE_DIR": store_dir},
        "no-store": {**base, "RAG_PREFIX_CACHE_DIR": ""},
    }
    if args.before_tree:
        before_store = tempfile.mkdtemp(prefix="rag-prefixes-before-")
        variants["before"] = {
            **base,
            "RAG_PREFIX_CACHE_DIR": before_store,
            "PYTHONPATH": str(args.before_tree),
        }
    names = list(variants)
    for name in names:  # untimed: page cache, and the stored prefixes of both languages
        for question in (QUESTIONS[0], QUESTIONS[-1]):
            run_once(question, variants[name])
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    orders = itertools.cycle([names[i:] + names[:i] for i in range(len(names))])
    for _ in range(args.repeats):
        for question in QUESTIONS:
            for name in next(orders):
                record = run_once(question, variants[name])
                runs[name].append({"question": question, **record})
                print(name, json.dumps(record, ensure_ascii=False)[:160], flush=True)
    summary = {
        name: {
            key: summarize([r[key] for r in records if key in r])
            for key in ("wall_ms", "first_token_wall_ms", "retrieve_ms", "peak_rss_mb")
        }
        for name, records in runs.items()
    }
    reference = summary["no-store"]
    ratios = {
        name: {
            key: round(values[key]["p50"] / reference[key]["p50"], 3)
            for key in ("wall_ms", "first_token_wall_ms")
            if values[key].get("n")
        }
        for name, values in summary.items()
    }
    same = all(
        a["answer"] == b["answer"]
        for a, b in zip(runs["store"], runs["no-store"], strict=True)
        if "answer" in a and "answer" in b
    )
    split = split_timings(variants["store"], args.repeats)
    overlap = overlap_timings(variants["store"], args.repeats)
    result = {
        "machine": info,
        "questions": QUESTIONS,
        "summary": summary,
        "split": split,
        "overlap": overlap,
        "p50_ratio_to_no_store": ratios,
        "answers_identical_store_vs_no_store": same,
        "runs": runs,
    }
    path = write_result("cold", result)
    print_json(
        {
            "summary": summary,
            "split": split["summary"],
            "ratios": ratios,
            "identical": same,
            "written": str(path),
        }
    )


if __name__ == "__main__":
    main()
