"""ChromaStore on a real Chroma database: storage, similarity, batching and metadata filters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rag.errors import IndexMissingError, InputError
from rag.index.embed import Embedder
from rag.index.reader import open_index
from rag.index.store import ChromaStore, chunk_metadata, date_number, nearest_kept, where_clause
from rag.types import Chunk, SearchFilters, SectionKind

DIMENSION = 8


def _chunk(
    number: int,
    source: str = "a.txt",
    section: SectionKind = "body",
    outlet: str | None = None,
    date: str | None = None,
) -> Chunk:
    return Chunk(
        id=f"chunk-{number}",
        source=source,
        start=number * 10,
        end=number * 10 + 5,
        text=f"text {number}",
        section=section,
        ordinal=number,
        doc_sha256="0" * 64,
        title=f"Title of {source}",
        outlet=outlet,
        date=date,
    )


def _unit(axis: int) -> np.ndarray:
    vector = np.zeros(DIMENSION, dtype=np.float32)
    vector[axis] = 1.0
    return vector


@pytest.fixture
def store(tmp_path: Path):
    opened = ChromaStore.open(tmp_path / "chroma", create=True)
    yield opened
    opened.close()


CHUNKS = [
    _chunk(0, "a.txt", outlet="Novastan", date="2026-02-20"),
    _chunk(1, "a.txt", section="comments", outlet="Novastan", date="2026-02-20"),
    _chunk(2, "b.txt", outlet="NZZ", date="2025-11-07"),
    _chunk(3, "c.txt", date="2025-12-31"),
    _chunk(4, "d.txt"),
]


def _fill(store: ChromaStore) -> None:
    store.add(CHUNKS, np.stack([_unit(i) for i in range(len(CHUNKS))]))


def test_add_query_delete_round_trip(store: ChromaStore) -> None:
    _fill(store)
    assert store.count() == len(CHUNKS)
    assert store.ids() == {chunk.id for chunk in CHUNKS}

    # A query between chunk 2 and chunk 3 (closer to 2) ranks them first, by cosine similarity.
    query = 0.8 * _unit(2) + 0.6 * _unit(3)
    hits = store.query(query, k=3)
    assert [chunk_id for chunk_id, _ in hits[:2]] == ["chunk-2", "chunk-3"]
    assert hits[0][1] == pytest.approx(0.8, abs=1e-5)
    assert hits[1][1] == pytest.approx(0.6, abs=1e-5)
    assert hits[2][1] == pytest.approx(0.0, abs=1e-5)

    store.delete(["chunk-2"])
    assert store.count() == len(CHUNKS) - 1
    assert store.query(query, k=1)[0][0] == "chunk-3"


def test_chunk_texts_stay_out_of_chroma(store: ChromaStore) -> None:
    """The chunk table holds the texts; Chroma would only index them a second time."""
    _fill(store)
    stored = store._collection.get(include=["documents"])
    assert stored["ids"] and all(document is None for document in stored["documents"])


def test_vectors_and_metadata_survive_reopening(tmp_path: Path) -> None:
    first = ChromaStore.open(tmp_path / "chroma", create=True)
    _fill(first)
    first.close()

    reopened = ChromaStore.open(tmp_path / "chroma")
    try:
        vectors = reopened.embeddings(["chunk-3", "no-such-id"])
        assert set(vectors) == {"chunk-3"}
        np.testing.assert_allclose(vectors["chunk-3"], _unit(3), atol=1e-6)
        metadata = reopened.metadata(["chunk-0", "chunk-4"])
    finally:
        reopened.close()
    assert metadata["chunk-0"] == chunk_metadata(CHUNKS[0])
    assert metadata["chunk-0"]["date_int"] == 20260220
    # Chroma cannot store None: absent metadata is left out, not stored as a placeholder.
    assert not {"outlet", "date", "author"} & set(metadata["chunk-4"])


def test_open_without_create_needs_an_existing_store(tmp_path: Path) -> None:
    with pytest.raises(IndexMissingError):
        ChromaStore.open(tmp_path / "absent")
    assert not (tmp_path / "absent").exists()


def test_from_client_wraps_an_existing_client(tmp_path: Path, store: ChromaStore) -> None:
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    _fill(store)
    store.close()
    client = chromadb.PersistentClient(
        path=str(tmp_path / "chroma"), settings=ChromaSettings(anonymized_telemetry=False)
    )
    try:
        wrapped = ChromaStore.from_client(client, create=False)
        assert wrapped.count() == len(CHUNKS)
        with pytest.raises(IndexMissingError):
            ChromaStore.from_client(client, "no-such-collection", create=False)
    finally:
        client.close()


def test_adds_and_reads_in_batches_below_the_client_limit(store: ChromaStore) -> None:
    store._batch_size = 2  # force several batches on five chunks
    _fill(store)
    assert store.ids() == {chunk.id for chunk in CHUNKS}
    assert set(store.embeddings([chunk.id for chunk in CHUNKS])) == store.ids()
    store.delete([chunk.id for chunk in CHUNKS[:3]])
    assert store.ids() == {"chunk-3", "chunk-4"}


def _matching(store: ChromaStore, filters: SearchFilters) -> set[str]:
    return {chunk_id for chunk_id, _ in store.query(_unit(0), k=len(CHUNKS), where=where_clause(filters))}


def test_where_clause_filters(store: ChromaStore) -> None:
    _fill(store)
    assert _matching(store, SearchFilters()) == {"chunk-0", "chunk-2", "chunk-3", "chunk-4"}
    assert _matching(store, SearchFilters(include_comments=True)) == {chunk.id for chunk in CHUNKS}
    assert _matching(store, SearchFilters(sources=("b.txt", "c.txt"))) == {"chunk-2", "chunk-3"}
    assert _matching(store, SearchFilters(outlet="novastan", include_comments=True)) == {"chunk-0", "chunk-1"}
    assert _matching(store, SearchFilters(date_from="2025-11-07", date_to="2025-12-31")) == {
        "chunk-2",
        "chunk-3",
    }
    assert _matching(store, SearchFilters(date_from="2026-01-01")) == {"chunk-0"}
    assert _matching(store, SearchFilters(outlet="NZZ", date_from="2026-01-01")) == set()


def test_allowed_ids_limit_results_and_tolerate_unknown_ids(store: ChromaStore) -> None:
    _fill(store)
    assert [hit[0] for hit in store.query(_unit(0), k=5, allowed_ids={"chunk-3", "gone"})] == ["chunk-3"]
    assert store.query(_unit(0), k=5, allowed_ids={"gone"}) == []
    assert store.query(_unit(0), k=5, allowed_ids=set()) == []


class _CountingStore:
    """Pure logic double: a ranked list of ids, recording how many neighbours each query asks for."""

    def __init__(self, ranked: list[str]) -> None:
        self.ranked = ranked
        self.asked: list[int] = []

    def query(self, embedding: np.ndarray, k: int, where: object = None) -> list[tuple[str, float]]:
        self.asked.append(k)
        return [(chunk_id, 1.0 - rank / 100) for rank, chunk_id in enumerate(self.ranked[:k])]


def test_nearest_kept_asks_for_more_until_k_are_kept() -> None:
    ranked = [f"c{i}" for i in range(40)]
    keep = {f"c{i}" for i in range(0, 40, 5)}  # every fifth: c0, c5, ..., c35
    store = _CountingStore(ranked)
    assert [hit[0] for hit in nearest_kept(store, _unit(0), 3, keep)] == ["c0", "c5", "c10"]
    assert store.asked == [3, 12]
    store.asked.clear()
    assert len(nearest_kept(store, _unit(0), 3, keep, kept_share=0.2)) == 3
    assert store.asked == [15]
    store.asked.clear()
    assert len(nearest_kept(store, _unit(0), 20, keep)) == 8
    assert store.asked == [20, 80]  # the store ran out: all eight kept ones, no endless loop


def test_empty_store_returns_no_hits(store: ChromaStore) -> None:
    assert store.count() == 0
    assert store.query(_unit(0), k=5) == []


def test_bad_filter_date_is_an_input_error() -> None:
    assert date_number("2026-02-20") == 20260220
    with pytest.raises(InputError, match="YYYY-MM-DD"):
        where_clause(SearchFilters(date_from="20.02.2026"))


def test_filters_on_the_real_seed_index(seed_index, minilm: Embedder) -> None:
    """Dense search over the indexed seeds honours outlet, date range and source filters exactly."""
    reader = open_index(seed_index.settings)
    try:
        query = minilm.encode(["Tokajew und Trump"])[0]
        body = [chunk for chunk in reader.chunks.values() if chunk.section == "body"]
        dated = sorted({chunk.date for chunk in body if chunk.date})
        outlets = sorted({chunk.outlet for chunk in body if chunk.outlet})
        assert dated and outlets, "the seeds carry dates and outlets"

        def hits(filters: SearchFilters) -> set[str]:
            return {
                cid for cid, _ in reader.store.query(query, k=len(reader.chunks), where=where_clause(filters))
            }

        by_outlet = hits(SearchFilters(outlet=outlets[0].upper()))
        assert by_outlet == {c.id for c in body if c.outlet == outlets[0]}

        by_date = hits(SearchFilters(date_from=dated[0], date_to=dated[0]))
        assert by_date == {c.id for c in body if c.date == dated[0]}

        source = body[0].source
        assert hits(SearchFilters(sources=(source,))) == {c.id for c in body if c.source == source}

        # Filtering in code after an oversampled search finds what Chroma's filter finds.
        body_ids = {c.id for c in body}
        filtered = reader.store.query(query, k=10, where=where_clause(SearchFilters()))
        kept = nearest_kept(reader.store, query, 10, body_ids, kept_share=len(body) / len(reader.chunks))
        assert [cid for cid, _ in kept] == [cid for cid, _ in filtered]
        assert np.allclose([score for _, score in kept], [score for _, score in filtered], atol=1e-5)
    finally:
        reader.close()
