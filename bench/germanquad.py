"""GermanQuAD retrieval benchmark through the real pipeline: BM25, dense and hybrid.

Writes the 474 passages of ../shared/corpora/germanquad as files, indexes them with
`rag index` machinery (real chunking, MiniLM, the multilingual encoder, Chroma,
BM25), then runs all 2,204 questions through `Retriever.search` once per retriever
alone (BM25, MiniLM, multilingual), once for the earlier hybrid without the
multilingual encoder, and once for the default hybrid. A document's rank is the rank
of its first passage. Writes MRR@10 and Success@1/5/10 to
bench/results/germanquad.json, to compare with the published table in that corpus's
README. The corpus is read in place and never copied into the repository.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

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


def main() -> None:
    docs = load_jsonl(CORPUS / "docs.jsonl")
    queries = {q["query_id"]: q["query_text"] for q in load_jsonl(CORPUS / "queries.jsonl")}
    qrels = [(r["query_id"], r["doc_id"]) for r in load_jsonl(CORPUS / "qrels.jsonl")]
    with tempfile.TemporaryDirectory() as tmp:
        corpus_dir = Path(tmp) / "docs"
        corpus_dir.mkdir()
        for doc in docs:
            (corpus_dir / f"{doc['doc_id']}.txt").write_text(doc["text"], encoding="utf-8")
        base = Settings(index_dir=Path(tmp) / "index")
        started = time.perf_counter()
        report = Pipeline(base, cwd=Path(tmp)).index([corpus_dir])
        index_seconds = time.perf_counter() - started
        variants = {
            "bm25": base.with_overrides(dense_weight=0.0, multilingual_weight=0.0),
            "dense": base.with_overrides(bm25_weight=0.0, multilingual_weight=0.0),
            "multilingual": base.with_overrides(bm25_weight=0.0, dense_weight=0.0),
            "hybrid_without_multilingual": base.with_overrides(multilingual_weight=0.0),
            "hybrid": base,
        }
        results: dict[str, dict] = {}
        for name, settings in variants.items():
            pipeline = Pipeline(settings, cwd=Path(tmp))
            started = time.perf_counter()
            rankings = []
            for query_id, _ in qrels:
                passages = pipeline.search(queries[query_id], k=10)
                ranking = list(dict.fromkeys(Path(p.source).stem for p in passages))
                rankings.append(ranking)
            elapsed = time.perf_counter() - started
            results[name] = metrics(rankings, [doc for _, doc in qrels]) | {
                "ms_per_query": round(1000 * elapsed / len(qrels), 2)
            }
            print(name, results[name], flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    summary = {
        "corpus": "GermanQuAD test (474 passages, 2204 questions)",
        "cpu_count": os.cpu_count(),
        "chunks": report.chunks_total,
        "index_seconds": round(index_seconds, 1),
        "settings": {
            "bm25_weight": base.bm25_weight,
            "dense_weight": base.dense_weight,
            "multilingual_weight": base.multilingual_weight,
            "chunk_tokens": base.chunk_tokens,
            "candidates": base.candidates,
        },
        "results": results,
    }
    OUT.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
