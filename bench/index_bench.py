"""Indexing benchmark: full build and no-op re-run, for the seeds and for 10kGNAD.

For each corpus it builds a fresh index in a work folder (never in the repository)
through `Pipeline.index`, the code behind `rag index`, and records wall time,
chunks per second and the phase split read from the `on_progress` stages
(reading, chunking, embedding with MiniLM, embedding with the multilingual encoder,
then writing: Chroma insert, BM25, manifest, fsync).
Each build starts with a new Pipeline, so it includes loading MiniLM; the heavy
imports (torch, sentence-transformers, chromadb, bm25s) are timed once up front
and not counted in either build. Then it re-runs the index on the unchanged corpus
a few times, in-process and as `rag index` subprocesses, to time the no-op path.

The 10kGNAD articles (../shared/corpora/10kGNAD-test.csv) are written one per file
as NNNN.txt. With --work-dir the indexes stay there for search_bench and
answer_bench (run_all.py does this); without it they go to a temporary folder
that is deleted. `--precision` sets embed_precision for every build (float32 gives the
side-by-side baseline of bfloat16) and `--name` the result file. Writes
bench/results/index.json by default. It measures; it never asserts.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, get_args

from benchlib import (
    GNAD_CSV,
    REPO,
    SEEDS_DIR,
    directory_mb,
    machine_info,
    print_json,
    summarize,
    timed_ms,
    venv_bin,
    write_gnad_folder,
    write_result,
)

from rag.answering.pipeline import Pipeline
from rag.index.embed import computes_bfloat16
from rag.index.onnx_bert import computes_int8
from rag.settings import Settings

STAGES = ("reading", "chunking", "embedding", "embedding (multilingual)")


def seeds_index_dir(work_dir: Path) -> Path:
    return work_dir / "seeds" / "index"


def gnad_index_dir(work_dir: Path) -> Path:
    return work_dir / "10kgnad" / "index"


def gnad_docs_dir(work_dir: Path) -> Path:
    return work_dir / "10kgnad" / "docs"


class StageClock:
    """Records when each on_progress stage last reported, relative to the start."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.first_report: dict[str, tuple[float, int]] = {}  # stage -> (seconds, done)
        self.last_report: dict[str, float] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.perf_counter() - self.started
        self.first_report.setdefault(stage, (now, done))
        self.last_report[stage] = now

    def phases(self, total_seconds: float) -> dict[str, float]:
        """Seconds per phase: each runs from the previous phase's last report to its own last one."""
        phases: dict[str, float] = {}
        previous = 0.0
        for stage in STAGES:
            if stage in self.last_report:
                phases[stage] = round(self.last_report[stage] - previous, 2)
                previous = self.last_report[stage]
        phases["writing"] = round(total_seconds - previous, 2)
        return phases

    def embedding_split(self, chunks_embedded: int, stage: str, after: str) -> dict[str, float | None]:
        """Model load + first batch, and the steady rate after the first batch, of one encoder's stage."""
        if stage not in self.first_report:
            return {"model_load_and_first_batch_seconds": None, "steady_chunks_per_second": None}
        first_seconds, first_done = self.first_report[stage]
        before = self.last_report.get(after, self.last_report.get("reading", 0.0))
        steady_seconds = self.last_report[stage] - first_seconds
        steady_chunks = chunks_embedded - first_done
        return {
            "model_load_and_first_batch_seconds": round(first_seconds - before, 2),
            "steady_chunks_per_second": round(steady_chunks / steady_seconds, 1) if steady_seconds else None,
        }


def build(folder: Path, index_dir: Path, cwd: Path, precision: str | None = None) -> dict[str, Any]:
    """One full build into an empty index_dir, with a fresh Pipeline (loads MiniLM); `precision`
    overrides `embed_precision` (None: the settings' own)."""
    settings = Settings(index_dir=index_dir)
    if precision is not None:
        settings = settings.with_overrides(embed_precision=precision)
    pipeline = Pipeline(settings, cwd=cwd)
    clock = StageClock()
    report = pipeline.index([folder], on_progress=clock)
    seconds = time.perf_counter() - clock.started
    phases = clock.phases(seconds)
    return {
        "files": len(report.added),
        "skipped": len(report.skipped),
        "duplicates": len(report.duplicates),
        "chunks_total": report.chunks_total,
        "chunks_embedded": report.chunks_embedded,
        "seconds": round(seconds, 2),
        "chunks_per_second": round(report.chunks_total / seconds, 1),
        "phases_seconds": phases,
        "embedding": clock.embedding_split(report.chunks_embedded, "embedding", "chunking"),
        "embedding_multilingual": clock.embedding_split(
            report.chunks_embedded, "embedding (multilingual)", "embedding"
        ),
        "index_mb": directory_mb(index_dir),
    }


def noop_runs(folder: Path, index_dir: Path, cwd: Path, repeats: int, precision: str) -> dict[str, Any]:
    """Re-index the unchanged corpus: in-process (fresh Pipeline) and as a `rag index` subprocess."""
    in_process: list[float] = []
    embedded: list[int] = []
    for _ in range(repeats):
        pipeline = Pipeline(Settings(index_dir=index_dir, embed_precision=precision), cwd=cwd)
        elapsed, report = timed_ms(lambda pipeline=pipeline: pipeline.index([folder]))
        in_process.append(elapsed)
        embedded.append(report.chunks_embedded)
    command = [str(venv_bin("rag")), "--index-dir", str(index_dir), "index", "--json", str(folder)]
    environment = {**os.environ, "RAG_EMBED_PRECISION": precision}
    cli: list[float] = []
    exit_codes: list[int] = []
    for _ in range(repeats):
        elapsed, finished = timed_ms(
            lambda: subprocess.run(
                command, cwd=cwd, env=environment, capture_output=True, text=True, check=False
            )
        )
        cli.append(elapsed)
        exit_codes.append(finished.returncode)
    return {
        "in_process_ms": summarize(in_process),
        "chunks_embedded": embedded,
        "cli_subprocess_ms": summarize(cli),
        "cli_exit_codes": exit_codes,
    }


def import_heavy_libraries() -> float:
    """Milliseconds to import what an index build needs, so the builds below do not pay it."""

    def load() -> None:
        import bm25s  # noqa: F401
        import chromadb  # noqa: F401
        import sentence_transformers  # noqa: F401
        import torch  # noqa: F401

    elapsed, _ = timed_ms(load)
    return round(elapsed, 1)


def run(
    work_dir: Path, gnad_limit: int | None, skip_gnad: bool, noop_repeats: int, precision: str
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "machine": machine_info(),
        "import_heavy_libraries_ms": import_heavy_libraries(),
        "embed_precision": precision,
        "cpu_computes_bfloat16": computes_bfloat16(),
        "cpu_has_avx512_vnni": computes_int8(),
    }
    corpora: dict[str, Any] = {}

    seeds_index = seeds_index_dir(work_dir)
    corpora["seeds"] = {
        "corpus": str(SEEDS_DIR.relative_to(REPO)),
        "build": build(SEEDS_DIR, seeds_index, REPO, precision),
        "noop": noop_runs(SEEDS_DIR, seeds_index, REPO, noop_repeats, precision),
        "index_dir": str(seeds_index),
    }
    print_json({"seeds": corpora["seeds"]})

    if not skip_gnad:
        docs = gnad_docs_dir(work_dir)
        articles = write_gnad_folder(docs, limit=gnad_limit)
        gnad_index = gnad_index_dir(work_dir)
        corpora["10kgnad"] = {
            "corpus": f"{GNAD_CSV.name} ({articles} articles, one NNNN.txt per row)",
            "build": build(docs, gnad_index, docs.parent, precision),
            "noop": noop_runs(docs, gnad_index, docs.parent, noop_repeats, precision),
            "index_dir": str(gnad_index),
        }
        print_json({"10kgnad": corpora["10kgnad"]})
    result["corpora"] = corpora
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, help="Keep corpora and indexes here (default: a temp dir).")
    parser.add_argument("--gnad-limit", type=int, help="Only the first N 10kGNAD articles (for a quick try).")
    parser.add_argument("--skip-gnad", action="store_true", help="Only the seeds.")
    parser.add_argument("--noop-repeats", type=int, default=5, help="No-op re-runs per kind (default 5).")
    parser.add_argument(
        "--precision",
        choices=get_args(Settings.model_fields["embed_precision"].annotation),
        default=Settings.model_fields["embed_precision"].default,
        help="embed_precision of the builds (default: the setting's default).",
    )
    parser.add_argument("--name", default="index", help="Result file name in bench/results (default index).")
    args = parser.parse_args()
    options = (args.gnad_limit, args.skip_gnad, args.noop_repeats, args.precision)
    if args.work_dir:
        result = run(args.work_dir.resolve(), *options)
    else:
        with tempfile.TemporaryDirectory(prefix="rag-index-bench-") as temporary:
            result = run(Path(temporary), *options)
    path = write_result(args.name, result)
    print(f"wrote {path.relative_to(REPO)} (load average now {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
