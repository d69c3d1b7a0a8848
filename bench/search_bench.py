"""Search latency benchmark: warm in-process `Pipeline.search`, hybrid vs BM25-only vs dense-only.

Queries:
- 10kGNAD: 200 articles drawn with a fixed seed; each query is the article's first
  sentence (its teaser line), cut to its first 12 words. "hit@k" is the share of
  queries whose own article is among the k = top_k passages (a sanity check, not a score).
- seeds: every `question` of evals/questions.jsonl; hit@k counts a question whose
  first gold source is among the passages (unanswerable ones have none, so never hit).

MiniLM and the multilingual encoder are loaded once and shared; every variant
(default hybrid; BM25 only; dense only, i.e. both encoders; hybrid without the
multilingual encoder) has its own Pipeline over the same index, opened and warmed
with a few queries before timing. For each query the variants run back to back in a
rotating order, so machine noise hits them alike. Separately, the retriever's parts
are timed one by one on the same queries (filter set, BM25, query embedding and
Chroma nearest neighbours per encoder), because `bm25_weight=0` still runs BM25 (it only drops it from
the fusion). Indexes come from --gnad-index/--seeds-index (run_all.py passes those
built by index_bench) or are built here in a temporary folder. Writes
bench/results/search.json; it measures, never asserts.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchlib import (
    QUESTIONS_FILE,
    REPO,
    SEEDS_DIR,
    machine_info,
    print_json,
    read_gnad,
    summarize,
    timed_ms,
    write_gnad_folder,
    write_result,
)
from index_bench import build

from rag.answering.pipeline import Pipeline
from rag.index.embed import Embedder, load_embedder, load_multilingual_encoder
from rag.index.reader import open_index
from rag.index.store import where_clause
from rag.retrieval.retrieve import chunk_allowed
from rag.settings import Settings
from rag.types import Passage, SearchFilters

QUERY_WORDS = 12
WARMUP_QUERIES = 5
_FIRST_SENTENCE = re.compile(r"^(.+?[.!?])(\s|$)", re.DOTALL)

# (query, is_hit(passages)) pairs
Query = tuple[str, Callable[[list[Passage]], bool]]


def first_words(text: str, words: int = QUERY_WORDS) -> str:
    match = _FIRST_SENTENCE.match(text.strip())
    sentence = match.group(1) if match else text
    return " ".join(sentence.split()[:words])


def indexed_rows(index_dir: Path) -> list[int]:
    """The 10kGNAD row numbers (file NNNN.txt) present in the index."""
    sources = open_index(Settings(index_dir=index_dir)).chunks_by_source
    return sorted(int(Path(source).stem) for source in sources)


def gnad_queries(count: int, rows_in_index: list[int], seed: int = 0) -> list[Query]:
    """First-sentence queries of `count` random indexed articles; a hit is the article itself."""
    rows = read_gnad()
    chosen = random.Random(seed).sample(rows_in_index, min(count, len(rows_in_index)))

    def hit_for(row: int) -> Callable[[list[Passage]], bool]:
        return lambda passages: any(Path(p.source).stem == f"{row:04d}" for p in passages)

    return [(first_words(rows[row][1]), hit_for(row)) for row in chosen]


def seeds_queries() -> list[Query]:
    """Every eval question; a hit is its first gold source among the passages."""
    queries: list[Query] = []
    for line in QUESTIONS_FILE.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        gold = item["sources"][0] if item["sources"] else None

        def is_hit(passages: list[Passage], gold: str | None = gold) -> bool:
            return gold is not None and any(Path(p.source).name == gold for p in passages)

        queries.append((item["question"], is_hit))
    return queries


def variant_settings(index_dir: Path) -> dict[str, Settings]:
    base = Settings(index_dir=index_dir)
    return {
        "hybrid": base,
        "bm25_only": base.with_overrides(dense_weight=0.0, multilingual_weight=0.0),
        "dense_only": base.with_overrides(bm25_weight=0.0),
        "hybrid_without_multilingual": base.with_overrides(multilingual_weight=0.0),
    }


def time_components(pipeline: Pipeline, queries: list[Query]) -> dict[str, Any]:
    """The retriever's parts timed separately, mirroring `Retriever.rank_chunks`.

    The query embedding is also timed with torch limited to one thread, side by side,
    because on a busy 2-core machine a second thread can cost more than it gives.
    """
    import torch

    reader, embedder, settings = pipeline.reader, pipeline.embedder, pipeline.settings
    multilingual = pipeline.multilingual
    filters = SearchFilters(include_comments=settings.include_comments)
    threads = torch.get_num_threads()
    parts: dict[str, list[float]] = {
        "filter_set": [],
        "bm25": [],
        f"embed_query ({threads} torch threads)": [],
        "embed_query (1 torch thread)": [],
        "chroma_query": [],
        "embed_query (multilingual)": [],
        "chroma_query (multilingual)": [],
    }
    for query, _ in queries:
        elapsed, allowed = timed_ms(
            lambda: {cid for cid, chunk in reader.chunks.items() if chunk_allowed(chunk, filters)}
        )
        parts["filter_set"].append(elapsed)
        elapsed, _ = timed_ms(
            lambda query=query, allowed=allowed: reader.keyword.search(query, settings.candidates, allowed)
        )
        parts["bm25"].append(elapsed)
        elapsed, vector = timed_ms(lambda query=query: embedder.encode([query])[0])
        parts[f"embed_query ({threads} torch threads)"].append(elapsed)
        torch.set_num_threads(1)
        elapsed, _ = timed_ms(lambda query=query: embedder.encode([query]))
        parts["embed_query (1 torch thread)"].append(elapsed)
        torch.set_num_threads(threads)
        elapsed, _ = timed_ms(
            lambda vector=vector: reader.store.query(vector, settings.candidates, where=where_clause(filters))
        )
        parts["chroma_query"].append(elapsed)
        elapsed, vector = timed_ms(lambda query=query: multilingual.encode([query])[0])
        parts["embed_query (multilingual)"].append(elapsed)
        elapsed, _ = timed_ms(
            lambda vector=vector: reader.multilingual_store.query(
                vector, settings.candidates, where=where_clause(filters)
            )
        )
        parts["chroma_query (multilingual)"].append(elapsed)
    return {name: summarize(values) for name, values in parts.items()}


def bench_index(
    index_dir: Path, queries: list[Query], embedder: Embedder, multilingual: Embedder
) -> dict[str, Any]:
    pipelines = {
        name: Pipeline(settings, embedder=embedder, multilingual=multilingual)
        for name, settings in variant_settings(index_dir).items()
    }
    names = list(pipelines)
    first_query_ms: dict[str, float] = {}
    for name, pipeline in pipelines.items():
        elapsed, _ = timed_ms(lambda pipeline=pipeline: pipeline.search(queries[0][0]))
        first_query_ms[name] = round(elapsed, 1)
        for query, _ in queries[1:WARMUP_QUERIES]:
            pipeline.search(query)

    latencies: dict[str, list[float]] = {name: [] for name in names}
    hits: dict[str, int] = dict.fromkeys(names, 0)
    for number, (query, is_hit) in enumerate(queries):
        rotation = names[number % len(names) :] + names[: number % len(names)]
        for name in rotation:
            pipeline = pipelines[name]
            elapsed, passages = timed_ms(lambda pipeline=pipeline, query=query: pipeline.search(query))
            latencies[name].append(elapsed)
            hits[name] += is_hit(passages)

    top_k = pipelines["hybrid"].settings.top_k
    variants = {
        name: {
            "latency_ms": summarize(latencies[name]),
            "hit_rate": round(hits[name] / len(queries), 3),
            "first_query_ms": first_query_ms[name],  # includes opening the index
        }
        for name in names
    }
    hybrid_p50 = variants["hybrid"]["latency_ms"]["p50"]
    return {
        "chunks": len(pipelines["hybrid"].reader.chunks),
        "queries": len(queries),
        "hit_k": top_k,
        "variants": variants,
        "p50_ratio_to_hybrid": {
            name: round(variants[name]["latency_ms"]["p50"] / hybrid_p50, 2) for name in names
        },
        "components_ms": time_components(pipelines["hybrid"], queries),
    }


def run(gnad_index: Path | None, seeds_index: Path, query_count: int, skip_gnad: bool) -> dict[str, Any]:
    result: dict[str, Any] = {"machine": machine_info()}
    embed_load_ms, embedder = timed_ms(lambda: load_embedder(Settings().embedding_model))
    multilingual_load_ms, multilingual = timed_ms(load_multilingual_encoder)
    settings = Settings()
    result["settings"] = {
        "top_k": settings.top_k,
        "candidates": settings.candidates,
        "bm25_weight": settings.bm25_weight,
        "dense_weight": settings.dense_weight,
        "multilingual_weight": settings.multilingual_weight,
    }
    result["embedder_load_ms"] = round(embed_load_ms, 1)
    result["multilingual_load_ms"] = round(multilingual_load_ms, 1)
    result["query_method"] = {
        "10kgnad": f"first sentence of {query_count} random articles (seed 0), first {QUERY_WORDS} words",
        "seeds": "every question of evals/questions.jsonl",
    }
    indexes: dict[str, Any] = {"seeds": bench_index(seeds_index, seeds_queries(), embedder, multilingual)}
    print_json({"seeds": indexes["seeds"]})
    if not skip_gnad and gnad_index is not None:
        queries = gnad_queries(query_count, indexed_rows(gnad_index))
        indexes["10kgnad"] = bench_index(gnad_index, queries, embedder, multilingual)
        print_json({"10kgnad": indexes["10kgnad"]})
    result["indexes"] = indexes
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gnad-index", type=Path, help="A 10kGNAD index from index_bench (else built here).")
    parser.add_argument("--seeds-index", type=Path, help="A seeds index (else built here).")
    parser.add_argument("--queries", type=int, default=200, help="10kGNAD queries (default 200).")
    parser.add_argument("--skip-gnad", action="store_true", help="Only the seeds index.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rag-search-bench-") as temporary:
        work = Path(temporary)
        seeds_index = args.seeds_index
        if seeds_index is None:
            seeds_index = work / "seeds-index"
            build(SEEDS_DIR, seeds_index, REPO)
        gnad_index = args.gnad_index
        if gnad_index is None and not args.skip_gnad:
            print("building the 10kGNAD index first (several minutes on 2 cores)", flush=True)
            docs = work / "docs"
            write_gnad_folder(docs)
            gnad_index = work / "gnad-index"
            build(docs, gnad_index, work)
        result = run(gnad_index, seeds_index, args.queries, args.skip_gnad)
    path = write_result("search", result)
    print(f"wrote {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
