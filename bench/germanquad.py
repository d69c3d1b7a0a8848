"""GermanQuAD retrieval benchmark through the real pipeline: BM25, dense and hybrid.

Writes the 474 passages of ../shared/corpora/germanquad as files, indexes them with
`rag index` machinery (real chunking, MiniLM, the multilingual encoder, Chroma,
BM25), then runs all 2,204 questions through `Retriever.search` once per retriever
alone (BM25, MiniLM, multilingual), once for the earlier hybrid without the
multilingual encoder, once for the hybrid without MiniLM (what an index without MiniLM
would give), and once for the default hybrid. A document's rank is the rank
of its first passage. Writes MRR@10 and Success@1/5/10 to
bench/results/germanquad.json, to compare with the published table in that corpus's
README. With --compare-precision the passages are indexed a second time with that
embed_precision, and the retrievers that depend on it (MiniLM alone, the hybrid) are
compared question by question. The corpus is read in place and never copied into the
repository.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import get_args

from rag.answering.pipeline import Pipeline
from rag.settings import Settings

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "germanquad"
OUT = Path(__file__).resolve().parent / "results" / "germanquad.json"


def load_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def metrics(rankings: list[list[str]], gold: list[str]) -> dict[str, float]:
    ranks = [
        ranking.index(g) + 1 if g in ranking[:10] else None for ranking, g in zip(rankings, gold, strict=True)
    ]
    n = len(gold)
    return {
        "mrr@10": round(sum(1 / r for r in ranks if r) / n, 4),
        "s@1": round(sum(1 for r in ranks if r and r <= 1) / n, 4),
        "s@5": round(sum(1 for r in ranks if r and r <= 5) / n, 4),
        "s@10": round(sum(1 for r in ranks if r) / n, 4),
    }


def reciprocal_ranks(rankings: list[list[str]], gold: list[str]) -> list[float]:
    return [
        1 / (ranking.index(g) + 1) if g in ranking[:10] else 0.0
        for ranking, g in zip(rankings, gold, strict=True)
    ]


def run_variants(
    variants: dict[str, Settings], tmp: Path, queries: dict[str, str], qrels: list[tuple[str, str]]
) -> tuple[dict[str, dict], dict[str, list[list[str]]]]:
    """Every question through each variant's retriever: metrics and the rankings themselves."""
    results: dict[str, dict] = {}
    all_rankings: dict[str, list[list[str]]] = {}
    for name, settings in variants.items():
        pipeline = Pipeline(settings, cwd=tmp)
        started = time.perf_counter()
        rankings = []
        for query_id, _ in qrels:
            passages = pipeline.search(queries[query_id], k=10)
            rankings.append(list(dict.fromkeys(Path(p.source).stem for p in passages)))
        elapsed = time.perf_counter() - started
        results[name] = metrics(rankings, [doc for _, doc in qrels]) | {
            "ms_per_query": round(1000 * elapsed / len(qrels), 2)
        }
        all_rankings[name] = rankings
        print(name, results[name], flush=True)
    return results, all_rankings


def build_index(settings: Settings, corpus_dir: Path, tmp: Path) -> tuple[int, float]:
    started = time.perf_counter()
    report = Pipeline(settings, cwd=tmp).index([corpus_dir])
    return report.chunks_total, round(time.perf_counter() - started, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--compare-precision",
        choices=get_args(Settings.model_fields["embed_precision"].annotation),
        help="Also index with this embed_precision and compare the MiniLM-dependent retrievers "
        "(dense, hybrid) question by question.",
    )
    args = parser.parse_args()
    docs = load_jsonl(CORPUS / "docs.jsonl")
    queries = {q["query_id"]: q["query_text"] for q in load_jsonl(CORPUS / "queries.jsonl")}
    qrels = [(r["query_id"], r["doc_id"]) for r in load_jsonl(CORPUS / "qrels.jsonl")]
    gold = [doc for _, doc in qrels]
    comparison: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        corpus_dir = tmp / "docs"
        corpus_dir.mkdir()
        for doc in docs:
            (corpus_dir / f"{doc['doc_id']}.txt").write_text(doc["text"], encoding="utf-8")
        base = Settings(index_dir=tmp / "index")
        chunks, index_seconds = build_index(base, corpus_dir, tmp)
        variants = {
            "bm25": base.with_overrides(dense_weight=0.0, multilingual_weight=0.0),
            "dense": base.with_overrides(bm25_weight=0.0, multilingual_weight=0.0),
            "multilingual": base.with_overrides(bm25_weight=0.0, dense_weight=0.0),
            "hybrid_without_multilingual": base.with_overrides(multilingual_weight=0.0),
            "hybrid_without_minilm": base.with_overrides(dense_weight=0.0),
            "hybrid": base,
        }
        results, rankings = run_variants(variants, tmp, queries, qrels)
        if args.compare_precision:
            other = base.with_overrides(index_dir=tmp / "index-other", embed_precision=args.compare_precision)
            _, other_seconds = build_index(other, corpus_dir, tmp)
            other_variants = {
                name: variants[name].with_overrides(
                    index_dir=other.index_dir, embed_precision=other.embed_precision
                )
                for name in ("dense", "hybrid")
            }
            other_results, other_rankings = run_variants(other_variants, tmp, queries, qrels)
            paired = {}
            for name in other_variants:
                ours, theirs = (
                    reciprocal_ranks(rankings[name], gold),
                    reciprocal_ranks(other_rankings[name], gold),
                )
                paired[name] = {
                    "better": sum(a > b for a, b in zip(ours, theirs, strict=True)),
                    "worse": sum(a < b for a, b in zip(ours, theirs, strict=True)),
                    "mrr@10_difference": round((sum(ours) - sum(theirs)) / len(gold), 4),
                }
            comparison = {
                "embed_precision": args.compare_precision,
                "index_seconds": other_seconds,
                "results": other_results,
                "paired_against_it": paired,
            }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    summary = {
        "corpus": "GermanQuAD test (474 passages, 2204 questions)",
        "cpu_count": os.cpu_count(),
        "chunks": chunks,
        "index_seconds": index_seconds,
        "settings": {
            "bm25_weight": base.bm25_weight,
            "dense_weight": base.dense_weight,
            "multilingual_weight": base.multilingual_weight,
            "chunk_tokens": base.chunk_tokens,
            "candidates": base.candidates,
            "embed_precision": base.embed_precision,
        },
        "results": results,
        **({"compared_with": comparison} if comparison else {}),
    }
    OUT.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
