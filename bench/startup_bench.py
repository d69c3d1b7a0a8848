"""Start-up benchmark: wall time of `rag --help` against two baselines, and what importing the CLI loads.

Runs, as subprocesses with the venv's interpreter, in a rotating order per repeat:
`rag --help`, `python -c "import rag.ui.cli"` and `python -c pass` (the floor any
Python tool pays). The difference between the first two is click rendering the
help; between the last two, the import of the CLI. `rag ask ""` fails at once
(an empty question), so it times the start-up of a command that loads llama.cpp:
supervised (the default: it forks and waits, see rag/ui/supervise.py) against the same
command run directly through `rag.ui.cli.cli` without the supervising `main`. It also records (never
asserts) whether heavy modules (torch, chromadb, llama_cpp, ...) are in
sys.modules after `import rag.ui.cli`, and the slowest imports by `-X importtime`.
Writes bench/results/startup.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchlib import REPO, machine_info, print_json, summarize, timed_ms, venv_bin, write_result

HEAVY_MODULES = (
    "torch",
    "chromadb",
    "llama_cpp",
    "sentence_transformers",
    "transformers",
    "bm25s",
    "Stemmer",
    "somajo",
    "lingua",
    "numpy",
    "pydantic",
    "rich",
)
SLOWEST_IMPORTS = 12


# What the supervised child runs, without the fork: the CLI group itself.
DIRECT_ASK = """
import sys
from rag.ui.cli import cli
from rag.errors import RagError
try:
    cli.main(["ask", ""], prog_name="rag", standalone_mode=False)
except RagError as error:
    sys.exit(error.exit_code)
"""


def commands() -> dict[str, tuple[list[str], dict[str, str]]]:
    python, rag = sys.executable, str(venv_bin("rag"))
    return {
        "rag --help": ([rag, "--help"], {}),
        "python -c 'import rag.ui.cli'": ([python, "-c", "import rag.ui.cli"], {}),
        "python -c pass": ([python, "-c", "pass"], {}),
        "rag ask '' (supervised)": ([rag, "ask", ""], {}),
        "rag ask '' (direct)": ([python, "-c", DIRECT_ASK], {}),
    }


def run_quietly(command: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, check=False, env={**os.environ, **(env or {})}
    )


def modules_after_cli_import() -> dict[str, bool]:
    """Which heavy modules a fresh `import rag.ui.cli` has loaded."""
    probe = (
        "import json, sys; import rag.ui.cli; "
        f"print(json.dumps({{name: name in sys.modules for name in {list(HEAVY_MODULES)!r}}}))"
    )
    finished = run_quietly([sys.executable, "-c", probe])
    loaded: dict[str, bool] = json.loads(finished.stdout)
    return loaded


def slowest_imports() -> list[dict[str, Any]]:
    """Packages and rag modules by cumulative import time of `import rag.ui.cli`, one run."""
    finished = run_quietly([sys.executable, "-X", "importtime", "-c", "import rag.ui.cli"])
    rows = []
    for line in finished.stderr.splitlines():
        fields = line.removeprefix("import time:").split("|")
        if not line.startswith("import time:") or len(fields) != 3 or not fields[1].strip().isdigit():
            continue
        name = fields[2].strip()
        if "." not in name or name.startswith("rag."):
            rows.append({"module": name, "cumulative_ms": round(int(fields[1]) / 1000, 1)})
    return sorted(rows, key=lambda row: -row["cumulative_ms"])[:SLOWEST_IMPORTS]


def run(repeats: int) -> dict[str, Any]:
    result: dict[str, Any] = {"machine": machine_info(), "repeats": repeats}
    runs = commands()
    names = list(runs)
    for name in names:  # one untimed run each, so the file cache is warm for all
        run_quietly(*runs[name])
    samples: dict[str, list[float]] = {name: [] for name in names}
    exit_codes: dict[str, set[int]] = {name: set() for name in names}
    for repeat in range(repeats):
        for name in names[repeat % len(names) :] + names[: repeat % len(names)]:
            elapsed, finished = timed_ms(lambda name=name: run_quietly(*runs[name]))
            samples[name].append(elapsed)
            exit_codes[name].add(finished.returncode)
    timings = {name: summarize(values) for name, values in samples.items()}
    result["wall_ms"] = timings
    result["exit_codes"] = {name: sorted(codes) for name, codes in exit_codes.items()}
    floor = timings["python -c pass"]["p50"]
    result["p50_over_bare_python_ms"] = {name: round(timings[name]["p50"] - floor, 1) for name in names}
    supervised, direct = timings["rag ask '' (supervised)"]["p50"], timings["rag ask '' (direct)"]["p50"]
    result["supervision_cost_p50_ms"] = round(supervised - direct, 1)
    result["supervised_over_direct_p50"] = round(supervised / direct, 2)
    result["heavy_modules_after_import_rag_cli"] = modules_after_cli_import()
    result["slowest_imports_of_rag_cli"] = slowest_imports()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="Timed runs per command (default 15).")
    args = parser.parse_args()
    result = run(args.repeats)
    print_json(
        {key: result[key] for key in ("wall_ms", "p50_over_bare_python_ms", "supervision_cost_p50_ms")}
    )
    loaded = [name for name, on in result["heavy_modules_after_import_rag_cli"].items() if on]
    print("modules of the watch list loaded by `import rag.ui.cli`:", loaded or "none")
    path = write_result("startup", result)
    print(f"wrote {Path(path).relative_to(REPO)}")


if __name__ == "__main__":
    main()
