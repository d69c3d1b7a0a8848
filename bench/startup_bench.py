"""Start-up benchmark: wall time of `rag --help` against two baselines, and what importing the CLI loads.

Runs, as subprocesses with the venv's interpreter, in a rotating order per repeat:
`rag --help`, `python -c "import rag.cli"` and `python -c pass` (the floor any
Python tool pays). The difference between the first two is click rendering the
help; between the last two, the import of the CLI. It also records (never
asserts) whether heavy modules (torch, chromadb, llama_cpp, ...) are in
sys.modules after `import rag.cli`, and the slowest imports by `-X importtime`.
Writes bench/results/startup.json.
"""

from __future__ import annotations

import argparse
import json
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


def commands() -> dict[str, list[str]]:
    python = sys.executable
    return {
        "rag --help": [str(venv_bin("rag")), "--help"],
        "python -c 'import rag.cli'": [python, "-c", "import rag.cli"],
        "python -c pass": [python, "-c", "pass"],
    }


def run_quietly(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)


def modules_after_cli_import() -> dict[str, bool]:
    """Which heavy modules a fresh `import rag.cli` has loaded."""
    probe = (
        "import json, sys; import rag.cli; "
        f"print(json.dumps({{name: name in sys.modules for name in {list(HEAVY_MODULES)!r}}}))"
    )
    finished = run_quietly([sys.executable, "-c", probe])
    loaded: dict[str, bool] = json.loads(finished.stdout)
    return loaded


def slowest_imports() -> list[dict[str, Any]]:
    """Packages and rag modules by cumulative import time of `import rag.cli`, one run."""
    finished = run_quietly([sys.executable, "-X", "importtime", "-c", "import rag.cli"])
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
        run_quietly(runs[name])
    samples: dict[str, list[float]] = {name: [] for name in names}
    exit_codes: dict[str, set[int]] = {name: set() for name in names}
    for repeat in range(repeats):
        for name in names[repeat % len(names) :] + names[: repeat % len(names)]:
            elapsed, finished = timed_ms(lambda name=name: run_quietly(runs[name]))
            samples[name].append(elapsed)
            exit_codes[name].add(finished.returncode)
    timings = {name: summarize(values) for name, values in samples.items()}
    result["wall_ms"] = timings
    result["exit_codes"] = {name: sorted(codes) for name, codes in exit_codes.items()}
    floor = timings["python -c pass"]["p50"]
    result["p50_over_bare_python_ms"] = {name: round(timings[name]["p50"] - floor, 1) for name in names}
    result["heavy_modules_after_import_rag_cli"] = modules_after_cli_import()
    result["slowest_imports_of_rag_cli"] = slowest_imports()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="Timed runs per command (default 15).")
    args = parser.parse_args()
    result = run(args.repeats)
    print_json({key: result[key] for key in ("wall_ms", "p50_over_bare_python_ms")})
    loaded = [name for name, on in result["heavy_modules_after_import_rag_cli"].items() if on]
    print("modules of the watch list loaded by `import rag.cli`:", loaded or "none")
    path = write_result("startup", result)
    print(f"wrote {Path(path).relative_to(REPO)}")


if __name__ == "__main__":
    main()
