"""How indexing and search cost grow with the corpus: 1, 2, 5, 10 and 20 copies of 10kGNAD.

For each size N, N copies of the 1,028 test articles are written as files and indexed
by the `rag` executable into a fresh index, as a user runs it. Copy 0 is the corpus
itself; copy k > 0 shuffles the sentences of every paragraph (seeded by k and the
article) and opens with the line "Ausgabe k", so no file or chunk deduplicates and
every chunk is embedded, while texts and token counts stay those of real news. Per size:
- full build: wall time and peak RSS of `rag index` (`wait4`), and chunks;
- search: warm `Pipeline.search` p50/p95 (default hybrid) over the first words of 100
  articles drawn with seed 0; and MiniLM's search of the body chunks alone, Chroma's
  `where` filter against filtering in code (`nearest_kept`), taking turns;
- update: 1 % of the files get one more sentence, and `rag index` runs again: wall time
  and peak RSS; then the index's size on disk (`index_mb`), which holds the current and
  the previous version (rag keeps the previous one for readers that have it open).
Writes bench/results/scale.json and the plot docs/scaling.png after every size, so a
long run that is stopped keeps what it measured. Not run by run_all.py (20 copies take
about an hour of embedding).
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from benchlib import (
    REPO,
    directory_mb,
    machine_info,
    print_json,
    read_gnad,
    run_measured,
    summarize,
    timed_ms,
    venv_bin,
    write_result,
)
from search_bench import first_words

from rag.answering.pipeline import Pipeline
from rag.index.store import nearest_kept, where_clause
from rag.settings import Settings
from rag.types import SearchFilters

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
SEARCH_QUERIES = 100
CHANGED_SHARE = 0.01


def perturbed(text: str, copy: int, article: int) -> str:
    """Copy `copy` of an article: its paragraphs' sentences shuffled, under an "Ausgabe" line."""
    if copy == 0:
        return text
    shuffle = random.Random(copy * 100_003 + article).shuffle
    paragraphs = []
    for paragraph in text.split("\n"):
        sentences = _SENTENCE_END.split(paragraph)
        shuffle(sentences)
        paragraphs.append(" ".join(sentences))
    return f"Ausgabe {copy}\n" + "\n".join(paragraphs)


def write_copies(folder: Path, copies: int, articles: list[str]) -> list[Path]:
    """copies × the articles as folder/cCC/NNNN.txt."""
    files: list[Path] = []
    for copy in range(copies):
        subfolder = folder / f"c{copy:02d}"
        subfolder.mkdir(parents=True, exist_ok=True)
        for number, text in enumerate(articles):
            path = subfolder / f"{number:04d}.txt"
            path.write_text(perturbed(text, copy, number), encoding="utf-8")
            files.append(path)
    return files


def run_rag_index(corpus: Path, index_dir: Path) -> dict[str, Any]:
    """One `rag index` as a subprocess: wall seconds, peak RSS (command and children), exit code."""
    command = [str(venv_bin("rag")), "--index-dir", str(index_dir), "index", str(corpus)]
    return run_measured(command, corpus.parent)


def search_latency(
    index_dir: Path, articles: list[str], shared: Pipeline | None
) -> tuple[dict[str, Any], Pipeline]:
    """Warm hybrid search over first-words queries; encoders are loaded once and shared across sizes."""
    settings = Settings(index_dir=index_dir)
    pipeline = shared.sharing_models(settings) if shared else Pipeline(settings)
    chosen = random.Random(0).sample(range(len(articles)), SEARCH_QUERIES)
    queries = [first_words(articles[row]) for row in chosen]
    pipeline.search(queries[0])  # opens the index and loads the encoders
    times = [timed_ms(lambda query=query: pipeline.search(query))[0] for query in queries]
    return summarize(times), pipeline


def dense_filter_latency(pipeline: Pipeline, articles: list[str]) -> dict[str, Any]:
    """MiniLM search of the body chunks two ways, taking turns: Chroma's `where` filter, and in code.

    The retriever filters in code (`nearest_kept`) when most chunks may be returned; this
    times both on the same index and question vectors.
    """
    reader = pipeline.reader
    body = {chunk_id for chunk_id, chunk in reader.chunks.items() if chunk.section == "body"}
    share = len(body) / len(reader.chunks)
    where, candidates = where_clause(SearchFilters()), pipeline.settings.candidates
    chosen = random.Random(1).sample(range(len(articles)), SEARCH_QUERIES)
    vectors = pipeline.query_embedder.encode([first_words(articles[row]) for row in chosen])
    store = reader.store

    def filtered_in_code(vector: Any) -> list[tuple[str, float]]:
        return nearest_kept(store, vector, candidates, body, kept_share=share)

    by_where, in_code = [], []
    for vector in vectors:
        by_where.append(timed_ms(lambda v=vector: store.query(v, candidates, where))[0])
        in_code.append(timed_ms(lambda v=vector: filtered_in_code(v))[0])
    return {
        "body_share": round(share, 3),
        "chroma_where_ms": summarize(by_where),
        "in_code_ms": summarize(in_code),
    }


def change_files(files: list[Path], share: float) -> int:
    """Append one sentence to every 1/share-th file; returns how many changed."""
    step = max(1, round(1 / share))
    changed = files[::step]
    for path in changed:
        updated = path.read_text(encoding="utf-8") + "\nDer Artikel wurde aktualisiert."
        path.write_text(updated, encoding="utf-8")
    return len(changed)


def measure_size(
    work: Path, copies: int, articles: list[str], limit: int | None, shared: Pipeline | None
) -> tuple[dict[str, Any], Pipeline]:
    corpus, index_dir = work / f"corpus-{copies}", work / f"index-{copies}"
    files = write_copies(corpus, copies, articles[:limit])
    build = run_rag_index(corpus, index_dir)
    search, pipeline = search_latency(index_dir, articles, shared)
    dense_filter = dense_filter_latency(pipeline, articles)
    chunks = len(pipeline.reader.chunks)
    changed = change_files(files, CHANGED_SHARE)
    update = run_rag_index(corpus, index_dir)
    return {
        "copies": copies,
        "articles": len(files),
        "chunks": chunks,
        "build": build,
        "chunks_per_second": round(chunks / build["seconds"], 1),
        "index_mb": directory_mb(index_dir),
        "search_ms": search,
        "dense_filter": dense_filter,
        "update": {"files_changed": changed, **update},
    }, pipeline


def plot(sizes: list[dict[str, Any]], path: Path) -> None:
    """Each cost against the number of chunks, log-log, with a line of slope 1 through the first size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chunks = [size["chunks"] for size in sizes]
    panels = [
        ("full build (s)", [size["build"]["seconds"] for size in sizes]),
        ("on disk, current + previous version (MB)", [size["index_mb"] for size in sizes]),
        ("search p50 / p95 (ms)", [size["search_ms"]["p50"] for size in sizes]),
        ("peak RSS of rag index (MB)", [size["build"]["peak_rss_mb"] for size in sizes]),
        ("update after 1 % changed (s)", [size["update"]["seconds"] for size in sizes]),
    ]
    figure, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.6))
    for axis, (title, values) in zip(axes, panels, strict=True):
        axis.loglog(chunks, values, "o-", label="measured")
        if title.startswith("search"):
            axis.loglog(chunks, [size["search_ms"]["p95"] for size in sizes], "s--", label="p95")
        axis.loglog(chunks, [values[0] * c / chunks[0] for c in chunks], ":", color="grey", label="linear")
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("chunks")
        axis.legend(fontsize=8)
    figure.suptitle("rag index and search against corpus size (copies of 10kGNAD, 2 cores)", fontsize=11)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,2,5,10,20", help="Copies of 10kGNAD per size.")
    parser.add_argument("--work-dir", type=Path, help="Keep corpora and indexes here (default: a temp dir).")
    parser.add_argument("--limit", type=int, help="Only the first N articles per copy (for a quick try).")
    args = parser.parse_args()
    result: dict[str, Any] = {"machine": machine_info(), "sizes": []}
    articles = [text for _, text in read_gnad()]  # queries from all; copies of the first --limit
    with tempfile.TemporaryDirectory(prefix="rag-scale-bench-") as temporary:
        work = args.work_dir.resolve() if args.work_dir else Path(temporary)
        shared: Pipeline | None = None
        for copies in (int(size) for size in args.sizes.split(",")):
            measured, shared = measure_size(work, copies, articles, args.limit, shared)
            result["sizes"].append(measured)
            print_json(measured)
            write_result("scale", result)
            plot(result["sizes"], REPO / "docs" / "scaling.png")
            for leftover in (work / f"corpus-{copies}", work / f"index-{copies}"):
                shutil.rmtree(leftover, ignore_errors=True)


if __name__ == "__main__":
    main()
