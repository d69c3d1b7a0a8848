"""What the llama.cpp contexts of the default model cost in memory: separate loads against one shared load.

Issue 16 asks what makes a one-shot `rag ask` peak at ~4.8 GB. `Pipeline` opens one
context per answer language (n_ctx 4096) and one for translating questions (2048).
Loaded as separate `Llama` objects, each maps the GGUF again (file-backed pages, which
the page cache shares between mappings but RSS counts once per mapping) and builds its
own anonymous buffers (the weights repacked for the CPU's kernels, the KV cache, the
compute buffers). `LocalLLM.new_context` opens the further contexts on the first one's
loaded weights instead. This script loads the three contexts in a new process, one after
another, once per way (`separate`: `LocalLLM.load` three times, as before;
`shared`: one load and two `new_context`), reads VmRSS, RssAnon and RssFile from /proc
after each first decode, and checks that the three contexts write the same greedy text.
The two ways take turns over `--rounds` rounds.

Leaves out: the encoders, Chroma and torch (cold_bench.py measures the whole command).
Writes bench/results/memory.json.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
from pathlib import Path
from typing import Any

from benchlib import default_model_path, machine_info, print_json, run_probe, write_result

PROBE = r"""
import json, sys, time
from pathlib import Path
from rag.answering.generate import LocalLLM

def rss():
    wanted = ("VmRSS", "RssAnon", "RssFile")
    lines = [line for line in open("/proc/self/status") if line.startswith(wanted)]
    fields = {line.split(":")[0]: int(line.split()[1]) for line in lines}
    return {name: round(kib / 1024) for name, kib in fields.items()}

path, way = Path(sys.argv[1]), sys.argv[2]
messages = [{"role": "user", "content": "Wer ist Präsident von Kasachstan? Antworte mit einem Satz."}]
steps, texts, load_ms, contexts = {"start": rss()}, [], {}, []
LOADS = (("answer context (de)", 4096), ("answer context (en)", 4096), ("translation context", 2048))
for name, n_ctx in LOADS:
    started = time.perf_counter()
    if way == "shared" and contexts:
        llm = contexts[0].new_context(n_ctx)
    else:
        llm = LocalLLM.load(path, n_ctx=n_ctx, n_threads=2, seed=0)
    load_ms[name] = round((time.perf_counter() - started) * 1000, 1)
    texts.append(llm.complete_chat(messages, max_tokens=16))
    contexts.append(llm)
    steps[name] = rss()
print(json.dumps({"rss": steps, "load_ms": load_ms, "same_text": len(set(texts)) == 1, "text": texts[0]}))
"""

WAYS = ("separate", "shared")


def _added(steps: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    return {
        name: {field: steps[name][field] - steps[previous][field] for field in steps[name]}
        for previous, name in itertools.pairwise(steps)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="a GGUF file (default: the default model)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, the two ways taking turns")
    args = parser.parse_args()
    args.model = args.model or default_model_path()
    runs: dict[str, list[dict[str, Any]]] = {way: [] for way in WAYS}
    for round_number in range(args.rounds):
        order = WAYS if round_number % 2 == 0 else WAYS[::-1]
        for way in order:
            runs[way].append(run_probe(PROBE, str(args.model), way))
    summary = {}
    for way, results in runs.items():
        final = [run["rss"]["translation context"]["VmRSS"] for run in results]
        summary[way] = {
            "rss_mb_after_each_load": results[-1]["rss"],
            "added_mb_by_each_load": _added(results[-1]["rss"]),
            "vmrss_mb_with_three_contexts_p50": statistics.median(final),
            "load_ms_p50": {
                name: statistics.median(run["load_ms"][name] for run in results)
                for name in results[0]["load_ms"]
            },
            "same_text_in_every_context": all(run["same_text"] for run in results),
        }
    texts = {run["text"] for results in runs.values() for run in results}
    data: dict[str, Any] = {
        "machine": machine_info(),
        "model": args.model.name,
        "rounds": args.rounds,
        "summary": summary,
        "shared_over_separate_vmrss": round(
            summary["shared"]["vmrss_mb_with_three_contexts_p50"]
            / summary["separate"]["vmrss_mb_with_three_contexts_p50"],
            3,
        ),
        "same_text_both_ways": len(texts) == 1,
        "runs": runs,
    }
    path = write_result("memory", data)
    print_json({way: s["added_mb_by_each_load"] for way, s in summary.items()})
    ratio = data["shared_over_separate_vmrss"]
    print(f"shared / separate VmRSS with three contexts: {ratio}", file=sys.stderr)
    print(f"→ {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
