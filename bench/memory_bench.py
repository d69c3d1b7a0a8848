"""What one llama.cpp context of the default model costs in memory, and what a second and third add.

Issue 16 asks what makes a one-shot `rag ask` peak at ~4.8 GB. `Pipeline` opens one
`Llama` per answer language (n_ctx 4096) and one for translating questions (2048). Each
`Llama` loads the model on its own: it maps the GGUF again (file-backed pages, which the
page cache shares between mappings but RSS counts once per mapping) and builds its own
anonymous buffers (weights repacked for the CPU's kernels, the KV cache, the logits
buffer). This script loads the three contexts in a new process, one after another, and
reads VmRSS, RssAnon and RssFile from /proc after each first decode.

Leaves out: the encoders, Chroma and torch (cold_bench.py measures the whole command).
Writes bench/results/memory.json.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path
from typing import Any

from benchlib import default_model_path, machine_info, print_json, run_probe, write_result

PROBE = r"""
import json, sys
from llama_cpp import Llama

def rss():
    wanted = ("VmRSS", "RssAnon", "RssFile")
    lines = [line for line in open("/proc/self/status") if line.startswith(wanted)]
    fields = {line.split(":")[0]: int(line.split()[1]) for line in lines}
    return {name: round(kib / 1024) for name, kib in fields.items()}

steps = {"start": rss()}
contexts = []
LOADS = (("answer context (de)", 4096), ("answer context (en)", 4096), ("translation context", 2048))
for name, n_ctx in LOADS:
    llm = Llama(model_path=sys.argv[1], n_ctx=n_ctx, n_threads=2, verbose=False)
    llm.eval(llm.tokenize(b"Hallo Welt"))
    contexts.append(llm)
    steps[name] = rss()
print(json.dumps(steps))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="a GGUF file (default: the default model)")
    args = parser.parse_args()
    args.model = args.model or default_model_path()
    steps: dict[str, dict[str, int]] = run_probe(PROBE, str(args.model))
    names = list(steps)
    added = {
        name: {field: steps[name][field] - steps[previous][field] for field in steps[name]}
        for previous, name in itertools.pairwise(names)
    }
    data: dict[str, Any] = {
        "machine": machine_info(),
        "model": args.model.name,
        "rss_mb_after_each_load": steps,
        "added_mb_by_each_load": added,
    }
    path = write_result("memory", data)
    print_json(added)
    print(f"→ {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
