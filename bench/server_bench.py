"""Servers against in-process: search through a Chroma server, answers through a llama_cpp.server.

Search: the 10kGNAD test split (written as NNNN.txt, as index_bench does; --gnad-limit
takes the first N articles) is indexed twice, embedded and into a `chroma run` server
on loopback. Both encoders are wrapped in a cache, so the second build reuses the
first one's vectors (identical vectors, and the server build's time is its writes).
Then warm `Pipeline.search` latency of both, over search_bench's 200 teaser-line
queries, taking turns per query in a rotating order, and how often both return the
same passages. Also timed once: opening the server index from a fresh directory (a
second machine: download of the chunk table and the BM25 build).

Answers: `ask` over the seeds index (embedded for both, so only the model differs)
with the same GGUF loaded in-process and served by `python -m llama_cpp.server`
(same n_ctx, threads and chat format), answer_bench's German and English questions,
one warm-up each, then taking turns per question. Reports total and first-token
latency, their ratio server / in-process, and whether the answers are identical.

Writes bench/results/servers.json; it measures, never asserts.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from answer_bench import pick_questions
from benchlib import (
    SEEDS_DIR,
    machine_info,
    print_json,
    summarize,
    timed_ms,
    venv_bin,
    write_gnad_folder,
    write_result,
)
from search_bench import gnad_queries, indexed_rows

from rag.answering.answer import ask
from rag.answering.generate import FALLBACK_CHAT_FORMAT, LocalLLM
from rag.answering.models import resolve_model
from rag.answering.pipeline import Pipeline
from rag.index.embed import Embedder, load_embedder, load_multilingual_encoder
from rag.settings import Settings

SEARCH_QUERIES = 200
WARMUP_QUERIES = 5
START_SECONDS = 120.0


class CachedEmbedder:
    """An Embedder that remembers each text's vector, so a second index build embeds nothing."""

    def __init__(self, inner: Embedder) -> None:
        self._inner = inner
        self.name = inner.name
        self._vectors: dict[str, np.ndarray] = {}

    @property
    def fingerprint(self) -> str:
        return self._inner.fingerprint

    @property
    def dimension(self) -> int:
        return self._inner.dimension

    def encode(
        self, texts: Sequence[str], batch_size: int = 32, on_progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        missing = list(dict.fromkeys(text for text in texts if text not in self._vectors))
        if missing:
            self._vectors.update(
                zip(missing, self._inner.encode(missing, batch_size, on_progress), strict=True)
            )
        return np.stack([self._vectors[text] for text in texts])


class Server:
    """A server process on a free loopback port, stopped with SIGTERM."""

    def __init__(self, command: list[str], url: str, ready_path: str, log: Path) -> None:
        self.url = url
        with log.open("wb") as output:
            self.process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if httpx.get(url + ready_path, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.3)
        self.stop()
        raise SystemExit(f"{command[0]} did not start: {log.read_text(errors='replace')[-2000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def build(settings: Settings, folder: Path, cwd: Path, minilm: Embedder, multilingual: Embedder) -> float:
    pipeline = Pipeline(settings, embedder=minilm, multilingual=multilingual, cwd=cwd)
    elapsed, _ = timed_ms(lambda: pipeline.index([folder]))
    return round(elapsed / 1000, 2)


def search_side(work: Path, gnad_limit: int | None) -> dict[str, Any]:
    folder = work / "gnad"
    articles = write_gnad_folder(folder, limit=gnad_limit)
    minilm = CachedEmbedder(load_embedder())
    multilingual = CachedEmbedder(load_multilingual_encoder())
    port = free_port()
    chroma = Server(
        [str(venv_bin("chroma")), "run", "--path", str(work / "chroma"), "--port", str(port)],
        f"http://127.0.0.1:{port}",
        "/api/v2/heartbeat",
        work / "chroma.log",
    )
    try:
        embedded = Settings(index_dir=work / "index-embedded")
        served = Settings(index_dir=work / "index-server", chroma_url=chroma.url)
        build_seconds = {
            "embedded_with_embedding": build(embedded, folder, work, minilm, multilingual),
            "server_with_cached_vectors": build(served, folder, work, minilm, multilingual),
        }
        queries = [query for query, _ in gnad_queries(SEARCH_QUERIES, indexed_rows(embedded.index_dir))]
        second_machine = served.with_overrides(index_dir=work / "index-second-machine")
        open_ms, _ = timed_ms(lambda: Pipeline(second_machine, cwd=work).reader)
        pipelines = {
            name: Pipeline(settings, embedder=minilm, multilingual=multilingual, cwd=work)
            for name, settings in (("embedded", embedded), ("server", served))
        }
        for pipeline in pipelines.values():
            for query in queries[:WARMUP_QUERIES]:
                pipeline.search(query)
        latencies: dict[str, list[float]] = {name: [] for name in pipelines}
        same = 0
        names = list(pipelines)
        for number, query in enumerate(queries):
            found = {}
            for name in names[number % 2 :] + names[: number % 2]:
                elapsed, passages = timed_ms(lambda name=name, query=query: pipelines[name].search(query))
                latencies[name].append(elapsed)
                found[name] = [(p.source, p.start, p.end) for p in passages]
            same += found["embedded"] == found["server"]
        summaries = {name: summarize(values) for name, values in latencies.items()}
        return {
            "corpus": "10kGNAD-test",
            "articles": articles,
            "chunks": len(pipelines["embedded"].reader.chunks),
            "queries": len(queries),
            "build_seconds": build_seconds,
            "second_machine_open_ms": round(open_ms, 1),
            "search_ms": summaries,
            "p50_ratio_server_over_embedded": round(
                summaries["server"]["p50"] / summaries["embedded"]["p50"], 2
            ),
            "same_passages_share": round(same / len(queries), 3),
        }
    finally:
        chroma.stop()


def answer_side(work: Path, model: str, questions: int) -> dict[str, Any]:
    settings = Settings(index_dir=work / "index-seeds", model=model)
    minilm, multilingual = load_embedder(), load_multilingual_encoder()
    Pipeline(settings, embedder=minilm, multilingual=multilingual, cwd=SEEDS_DIR.parent).index([SEEDS_DIR])
    path = resolve_model(settings)
    # The server must render prompts as LocalLLM does: ChatML for a GGUF without a template.
    has_template = LocalLLM.load(path, 512, 1, 0).chat_format_name != FALLBACK_CHAT_FORMAT
    chat_format = [] if has_template else ["--chat_format", "chatml"]
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(path),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        str(settings.n_ctx),
        "--n_threads",
        str(settings.n_threads),
        "--n_threads_batch",
        str(settings.n_threads),
        "--logits_all",
        "false",
        *chat_format,
    ]
    server = Server(command, f"http://127.0.0.1:{port}/v1", "/models", work / "llama.log")
    try:
        pipelines = {
            "in_process": Pipeline(settings, embedder=minilm, multilingual=multilingual),
            "server": Pipeline(
                settings.with_overrides(llm_url=server.url), embedder=minilm, multilingual=multilingual
            ),
        }
        warmups, chosen = pick_questions()
        chosen = [item for item in chosen if item["answerable"]][:questions]
        for pipeline in pipelines.values():
            for item in warmups:
                ask(pipeline, item["question"])
        rows: list[dict[str, Any]] = []
        names = list(pipelines)
        for number, item in enumerate(chosen):
            answers = {}
            for name in names[number % 2 :] + names[: number % 2]:
                answers[name] = ask(pipelines[name], item["question"])
            rows.append(
                {
                    "id": item["id"],
                    "lang": item["lang"],
                    "same_answer": answers["in_process"].raw == answers["server"].raw,
                    **{
                        f"{name}_{key}_ms": round(answer.timings_ms[key], 1)
                        for name, answer in answers.items()
                        for key in ("first_token", "total")
                    },
                }
            )
        result: dict[str, Any] = {
            "model": settings.model,
            "chat_format": "gguf template" if has_template else "chatml",
            "questions": len(rows),
            "rows": rows,
            "same_answer_share": round(sum(row["same_answer"] for row in rows) / len(rows), 3),
        }
        for key in ("first_token", "total"):
            summaries = {name: summarize([row[f"{name}_{key}_ms"] for row in rows]) for name in names}
            result[f"{key}_ms"] = summaries
            result[f"{key}_p50_ratio_server_over_in_process"] = round(
                summaries["server"]["p50"] / summaries["in_process"]["p50"], 2
            )
        return result
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, help="Keep corpora, indexes and logs here (default: temp).")
    parser.add_argument("--gnad-limit", type=int, help="Only the first N 10kGNAD articles (default: all).")
    parser.add_argument(
        "--model", default=Settings().model, help="GGUF for the answer side (default: model)."
    )
    parser.add_argument("--questions", type=int, default=6, help="Answerable questions timed (default 6).")
    parser.add_argument("--skip-search", action="store_true")
    parser.add_argument("--skip-answers", action="store_true")
    args = parser.parse_args()
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="server-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"machine": machine_info()}
    try:
        if not args.skip_search:
            result["search"] = search_side(work / "search", args.gnad_limit)
        if not args.skip_answers:
            result["answers"] = answer_side(work / "answers", args.model, args.questions)
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    path = write_result("servers", result)
    print_json({key: value for key, value in result.items() if key != "machine"})
    print(f"→ {path}")


if __name__ == "__main__":
    main()
