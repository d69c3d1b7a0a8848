"""Shared helpers of the benchmarks: machine facts, percentiles, corpus files, result files.

Every benchmark records the machine it ran on (cores, load average at start,
Python and library versions, git commit) next to its numbers, because the
numbers mean little without it on a shared 2-core box. It also writes the
10kGNAD test split as one file per article into a temporary folder (never into
the repository). It measures nothing itself and asserts nothing.
"""

from __future__ import annotations

import csv
import datetime as dt
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

# The benchmarks run offline: no model hub, no Chroma telemetry.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "bench" / "results"
SEEDS_DIR = REPO / "seeds"
GNAD_CSV = REPO.parent / "shared" / "corpora" / "10kGNAD-test.csv"
QUESTIONS_FILE = REPO / "evals" / "questions.jsonl"
LIBRARIES = (
    "rag",
    "numpy",
    "torch",
    "sentence-transformers",
    "transformers",
    "chromadb",
    "bm25s",
    "PyStemmer",
    "llama-cpp-python",
)


def git_commit() -> dict[str, Any]:
    """HEAD of the repository (None before the first commit) and whether the tree has changes."""

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)

    head = git("rev-parse", "HEAD")
    status = git("status", "--porcelain")
    return {
        "commit": head.stdout.strip() if head.returncode == 0 else None,
        "dirty": bool(status.stdout.strip()) if status.returncode == 0 else None,
    }


def library_versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def machine_info() -> dict[str, Any]:
    """What a reader needs to judge the numbers: call it first, before the work starts."""
    return {
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": [round(load, 2) for load in os.getloadavg()],
        "platform": platform.platform(),
        "python": platform.python_version(),
        "libraries": library_versions(),
        **git_commit(),
    }


def summarize(values_ms: Sequence[float]) -> dict[str, float | int]:
    """p50/p95 (linear interpolation), mean, min and max of millisecond samples."""
    if not values_ms:
        return {"n": 0}
    values = np.asarray(values_ms, dtype=np.float64)
    return {
        "n": len(values),
        "p50": round(float(np.percentile(values, 50)), 2),
        "p95": round(float(np.percentile(values, 95)), 2),
        "mean": round(float(values.mean()), 2),
        "min": round(float(values.min()), 2),
        "max": round(float(values.max()), 2),
    }


def timed_ms(action: Callable[[], Any]) -> tuple[float, Any]:
    """Milliseconds `action` took, and what it returned."""
    started = time.perf_counter()
    result = action()
    return (time.perf_counter() - started) * 1000, result


def write_result(name: str, data: dict[str, Any]) -> Path:
    """Write bench/results/<name>.json and return its path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def directory_mb(directory: Path) -> float:
    """Megabytes of the files under `directory` (symlinks not counted twice)."""
    total = sum(
        path.stat().st_size for path in directory.rglob("*") if path.is_file() and not path.is_symlink()
    )
    return round(total / 1e6, 1)


def run_measured(command: Sequence[str], cwd: Path) -> dict[str, Any]:
    """Run `command`, its output discarded: wall seconds, peak RSS with children (`wait4`), exit code."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd)
    _, status, usage = os.wait4(process.pid, 0)
    return {
        "seconds": round(time.perf_counter() - started, 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "exit_code": os.waitstatus_to_exitcode(status),
    }


def read_gnad(csv_path: Path = GNAD_CSV) -> list[tuple[str, str]]:
    """(category, text) of each 10kGNAD row: `category;'text'`, single-quote quoting."""
    with csv_path.open(encoding="utf-8", newline="") as handle:
        return [(row[0], row[1]) for row in csv.reader(handle, delimiter=";", quotechar="'") if len(row) == 2]


def write_gnad_folder(folder: Path, csv_path: Path = GNAD_CSV, limit: int | None = None) -> int:
    """Write each article as folder/NNNN.txt (row number, from 0000); returns how many."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = read_gnad(csv_path)[:limit]
    for number, (_, text) in enumerate(rows):
        (folder / f"{number:04d}.txt").write_text(text, encoding="utf-8")
    return len(rows)


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False), flush=True)


def venv_bin(name: str) -> Path:
    """A script of the venv that runs the benchmark (`rag` under `make bench`)."""
    return Path(sys.executable).parent / name


def run_probe(code: str, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> Any:
    """Run `code` with this venv's Python in a new process (in `cwd`); the JSON of its last output line."""
    done = subprocess.run(
        [str(venv_bin("python")), "-c", code, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def default_model_path() -> Path:
    """The GGUF that `rag` answers with under default settings (as `rag ask` resolves it)."""
    from rag.answering.models import resolve_model
    from rag.settings import Settings

    return resolve_model(Settings())
