"""llama.cpp builds side by side: prompt and generation speed of the default model per build.

Issue 13 asked which AMX-free build is fastest. Each variant is a directory that holds
a `llama_cpp` package built with other CMake flags (`pip install --no-deps --target DIR
WHEEL`), or `installed` for the venv's own build (what `scripts/install-llama-cpp.sh`
makes: `-march=native` minus AMX). Each run is a new process with `PYTHONPATH=DIR`, so
the builds never share a process; variants take turns in a rotating order, after one
untimed run each. Per run: prompt processing of the first 512 tokens of a seeds article
(tokens/s), then 64 greedy tokens (tokens/s), on 2 threads; and the build's CPU features
as llama.cpp reports them. Also whether the greedy text is the same as the first
variant's: kernels that sum in another order may change a close argmax.

Leaves out: building the wheels (about 8 min each; the flags are recorded as given) and
ggml's runtime CPU-variant dispatch (`GGML_BACKEND_DL`), which llama-cpp-python 0.3.36
does not load. Writes bench/results/llama_build.json.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from benchlib import REPO, default_model_path, machine_info, print_json, run_probe, summarize, write_result

PROBE = r"""
import json, sys, time
import llama_cpp
from llama_cpp import Llama
model, text_file = sys.argv[1], sys.argv[2]
llm = Llama(model_path=model, n_ctx=2048, n_threads=2, n_threads_batch=2, seed=0, verbose=False)
tokens = llm.tokenize(open(text_file, encoding="utf-8").read().encode())[:512]
started = time.perf_counter()
llm.eval(tokens)
prompt_s = time.perf_counter() - started
started = time.perf_counter()
out = llm.create_completion(prompt=tokens, max_tokens=64, temperature=0.0, seed=0)
generation_s = time.perf_counter() - started
print(json.dumps({
    "prompt_tok_s": len(tokens) / prompt_s,
    "generation_tok_s": out["usage"]["completion_tokens"] / generation_s,
    "text": out["choices"][0]["text"],
    "system_info": llama_cpp.llama_print_system_info().decode(),
}))
"""


def run_once(site: str, model: Path, text_file: Path) -> dict[str, Any]:
    """One new process on one build; its speeds and greedy text."""
    env = dict(os.environ)
    if site != "installed":
        env["PYTHONPATH"] = site
    result: dict[str, Any] = run_probe(PROBE, str(model), str(text_file), env=env)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--variant",
        action="append",
        required=True,
        metavar="NAME=DIR|installed",
        help="a build to measure; DIR holds its llama_cpp package",
    )
    parser.add_argument("--flags", action="append", default=[], metavar="NAME=CMAKE_ARGS")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", type=Path, help="a GGUF file (default: the default model)")
    args = parser.parse_args()
    args.model = args.model or default_model_path()
    variants = dict(item.split("=", 1) for item in args.variant)
    flags = dict(item.split("=", 1) for item in args.flags)
    text_file = sorted((REPO / "seeds").glob("*.txt"))[0]
    names = list(variants)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for name in names:
        run_once(variants[name], args.model, text_file)  # untimed: page cache, CPU clocks
    for round_index in range(args.rounds):
        order = names[round_index % len(names) :] + names[: round_index % len(names)]
        for name in order:
            runs[name].append(run_once(variants[name], args.model, text_file))
    reference = runs[names[0]][0]["text"]
    summary = {
        name: {
            "flags": flags.get(name, "scripts/install-llama-cpp.sh" if variants[name] == "installed" else ""),
            "system_info": results[0]["system_info"],
            "prompt_tok_s": summarize([r["prompt_tok_s"] for r in results]),
            "generation_tok_s": summarize([r["generation_tok_s"] for r in results]),
            "same_text_as_first_variant": all(r["text"] == reference for r in results),
        }
        for name, results in runs.items()
    }
    base = summary[names[0]]
    for name in names:
        summary[name]["prompt_ratio_to_first"] = round(
            summary[name]["prompt_tok_s"]["p50"] / base["prompt_tok_s"]["p50"], 3
        )
        summary[name]["generation_ratio_to_first"] = round(
            summary[name]["generation_tok_s"]["p50"] / base["generation_tok_s"]["p50"], 3
        )
    data = {"machine": machine_info(), "model": args.model.name, "rounds": args.rounds, "variants": summary}
    path = write_result("llama_build", data)
    print_json({name: {k: v for k, v in s.items() if k != "system_info"} for name, s in summary.items()})
    print(f"→ {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
