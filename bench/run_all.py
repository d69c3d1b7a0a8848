"""Run every benchmark in sequence (`make bench`) and print a Markdown table of the results.

Order: index_bench builds the seeds and 10kGNAD indexes in one work folder, which
search_bench and answer_bench then reuse (the 10kGNAD embedding is the long part,
several minutes on 2 cores); then startup_bench, the lead's germanquad.py and
extract_bench (HTML and PDF reading against plain text). Each
runs as its own process with this interpreter, so one's memory and threads do not
colour the next. The work folder is a temporary one, deleted at the end, unless
--work-dir is given. Writes bench/results/run_all.json (steps, exit codes,
seconds); with --summary-only it just prints the table from the existing results.
A failing benchmark is recorded and the rest still run; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchlib import REPO, RESULTS_DIR, machine_info, write_result
from index_bench import gnad_index_dir, seeds_index_dir

BENCH = Path(__file__).resolve().parent
STEPS = ("index", "search", "startup", "answer", "germanquad", "extract")


def step_command(name: str, work_dir: Path, quick: bool) -> list[str]:
    """The command line of one step; indexes are reused when index_bench has left them in work_dir.

    --quick shrinks each step for a smoke run of the harness.
    """
    python = sys.executable
    reuse = [
        (flag, directory)
        for flag, directory in (
            ("--gnad-index", gnad_index_dir(work_dir)),
            ("--seeds-index", seeds_index_dir(work_dir)),
        )
        if (directory / "current").is_dir()
    ]
    reuse_seeds = [
        part for flag, directory in reuse if flag == "--seeds-index" for part in (flag, str(directory))
    ]
    reuse_all = [part for flag, directory in reuse for part in (flag, str(directory))]
    commands = {
        "index": ["index_bench.py", "--work-dir", str(work_dir)]
        + (["--gnad-limit", "60", "--noop-repeats", "2"] if quick else []),
        "search": ["search_bench.py", *reuse_all] + (["--queries", "30"] if quick else []),
        "startup": ["startup_bench.py"] + (["--repeats", "3"] if quick else []),
        "answer": ["answer_bench.py", *reuse_seeds] + (["--limit", "2", "--no-cold"] if quick else []),
        "germanquad": ["germanquad.py"],
        "extract": ["extract_bench.py"] + (["--repeats", "2", "--pdf-articles", "5"] if quick else []),
    }
    script, *arguments = commands[name]
    return [python, str(BENCH / script), *arguments]


def run_steps(work_dir: Path, steps: list[str], quick: bool) -> dict[str, Any]:
    record: dict[str, Any] = {"machine": machine_info(), "quick": quick, "steps": {}}
    for name in steps:
        command = step_command(name, work_dir, quick)
        print(f"=== {name}: {' '.join(command[1:])}", flush=True)
        started = time.perf_counter()
        finished = subprocess.run(command, cwd=REPO, check=False)
        seconds = round(time.perf_counter() - started, 1)
        record["steps"][name] = {"exit_code": finished.returncode, "seconds": seconds}
        print(f"=== {name}: exit {finished.returncode} after {seconds} s", flush=True)
    return record


def load(name: str) -> dict[str, Any] | None:
    path = RESULTS_DIR / f"{name}.json"
    if not path.exists():
        return None
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def _p(stats: dict[str, Any], scale: float = 1.0, digits: int = 0) -> str:
    """'p50 / p95' of a summarize() dict, scaled (ms -> s with scale=1e-3)."""
    if not stats or not stats.get("n"):
        return "–"
    return f"{stats['p50'] * scale:.{digits}f} / {stats['p95'] * scale:.{digits}f}"


def _index_rows(data: dict[str, Any]) -> list[str]:
    rows = []
    for name, corpus in data["corpora"].items():
        build, noop = corpus["build"], corpus["noop"]
        phases = ", ".join(f"{phase} {seconds:.1f}" for phase, seconds in build["phases_seconds"].items())
        rows.append(
            f"| index {name} | build {build['seconds']:.1f} s, {build['chunks_total']} chunks, "
            f"{build['chunks_per_second']:.1f} chunks/s; embedding steady "
            f"{build['embedding']['steady_chunks_per_second']} chunks/s; phases (s): {phases} |"
        )
        rows.append(
            f"| no-op re-index {name} (p50 / p95) | in-process {_p(noop['in_process_ms'])} ms; "
            f"`rag index` subprocess {_p(noop['cli_subprocess_ms'])} ms |"
        )
    return rows


def _search_rows(data: dict[str, Any]) -> list[str]:
    rows = []
    for name, index in data["indexes"].items():
        variants = index["variants"]
        latencies = "; ".join(f"{v} {_p(variants[v]['latency_ms'], digits=1)}" for v in variants)
        hits = ", ".join(f"{v} {variants[v]['hit_rate']}" for v in variants)
        rows.append(
            f"| search {name} ({index['chunks']} chunks, {index['queries']} queries), ms p50 / p95 | "
            f"{latencies}; hit@{index['hit_k']} {hits} |"
        )
        parts = "; ".join(f"{part} {_p(stats, digits=1)}" for part, stats in index["components_ms"].items())
        rows.append(f"| search {name} parts, ms p50 / p95 | {parts} |")
    return rows


def _startup_rows(data: dict[str, Any]) -> list[str]:
    walls = "; ".join(f"{name} {_p(stats)}" for name, stats in data["wall_ms"].items())
    heavy = [name for name, loaded in data["heavy_modules_after_import_rag_cli"].items() if loaded]
    return [f"| start-up, ms p50 / p95 ({data['repeats']} runs) | {walls}; loaded by import: {heavy} |"]


def _answer_rows(data: dict[str, Any]) -> list[str]:
    rows = [
        f"| model load, ms | LLM {data['load_ms']['llm']:.0f}, embedder {data['load_ms']['embedder']:.0f} |"
    ]
    for mode, stats in data["modes"].items():
        rows.append(
            f"| answer {mode} ({stats['total_ms']['n']} questions), s p50 / p95 | "
            f"first token {_p(stats['first_token_ms'], 1e-3, 1)}; total {_p(stats['total_ms'], 1e-3, 1)}; "
            f"overhead p50 {stats['overhead_percent_p50']} %, "
            f"overall {stats['overhead_percent_overall']} %; "
            f"prompt {stats['prompt_tokens']['p50']:.0f} tok (cached {stats['cached_tokens']['p50']:.0f}), "
            f"completion {stats['completion_tokens']['p50']:.0f} tok; prompt eval "
            f"{stats['prompt_tokens_per_second'].get('p50', '–')} tok/s, generation "
            f"{stats['generation_tokens_per_second'].get('p50', '–')} tok/s |"
        )
    if "cold_vs_warm" in data:
        reused = data["cold_vs_warm"]["prefix_reused"]
        everything = data["cold_vs_warm"]["all"]

        def ratio(stats: dict[str, Any]) -> str:
            return f"×{stats['p50']:.2f}" if stats.get("n") else "–"

        rows.append(
            f"| answer cold / warm, per-question ratio p50 | all {everything['first_token']['n']} questions: "
            f"first token {ratio(everything['first_token'])}, total {ratio(everything['total'])}; "
            f"the {reused['first_token']['n']} whose warm run reused a prefix "
            f"({reused['warm_cached_tokens'].get('p50', '–')} tokens cached): "
            f"first token {ratio(reused['first_token'])}, total {ratio(reused['total'])} |"
        )
    return rows


def _germanquad_rows(data: dict[str, Any]) -> list[str]:
    cells = "; ".join(
        f"{name} MRR@10 {r['mrr@10']}, S@1 {r['s@1']}, S@10 {r['s@10']}, "
        f"{r.get('ms_per_query', '–')} ms/query"
        for name, r in data["results"].items()
    )
    return [f"| GermanQuAD ({data.get('chunks', '?')} chunks) | {cells} |"]


def _extract_rows(data: dict[str, Any]) -> list[str]:
    rows = []
    for name, result in data["formats"].items():
        unit, as_format, as_text = result["unit"], result["format"], result["txt"]
        rows.append(
            f"| read {name} ({len(result['files'])} files) | {as_format['units_per_second']} {unit}s/s, "
            f"{as_format['mb_per_second']} MB/s; the same text from .txt {as_text['units_per_second']} "
            f"{unit}s/s, {as_text['mb_per_second']} MB/s; {name} takes ×{result['format_over_txt_time']} "
            "the time |"
        )
    return rows


ROWS: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "index": _index_rows,
    "search": _search_rows,
    "startup": _startup_rows,
    "answer": _answer_rows,
    "germanquad": _germanquad_rows,
    "extract": _extract_rows,
}


def summary_markdown() -> str:
    """A two-column table of the latest numbers in bench/results/ (missing ones left out)."""
    lines = ["| benchmark | result |", "|---|---|"]
    for name, rows in ROWS.items():
        data = load(name)
        if data is not None:
            lines.extend(rows(data))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, help="Keep corpora and indexes here (default: a temp dir).")
    parser.add_argument("--only", action="append", choices=STEPS, help="Run only this step (repeatable).")
    parser.add_argument("--quick", action="store_true", help="Tiny sizes: a smoke test of the harness.")
    parser.add_argument("--summary-only", action="store_true", help="Print the table from existing results.")
    args = parser.parse_args()
    if not args.summary_only:
        steps = [step for step in STEPS if not args.only or step in args.only]
        if args.quick and not args.only:
            steps.remove("germanquad")  # 6,600 searches: not a smoke test
        if args.work_dir:
            args.work_dir.mkdir(parents=True, exist_ok=True)
            record = run_steps(args.work_dir.resolve(), steps, args.quick)
        else:
            with tempfile.TemporaryDirectory(prefix="rag-bench-") as temporary:
                record = run_steps(Path(temporary), steps, args.quick)
        write_result("run_all", record)
    print(summary_markdown())


if __name__ == "__main__":
    main()
