"""The index on real components: MiniLM, Chroma and BM25 over copies of the seed articles."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from conftest import PAUSED_WRITER

from rag.errors import IndexLockedError, IndexMissingError, InputError, StaleIndexError
from rag.index.embed import Embedder
from rag.index.layout import (
    CURRENT_LINK,
    FORMAT_VERSION,
    LOCK_FILE,
    MANIFEST_FILE,
    SEARCHABLE_SECTIONS,
    VERSIONS_DIR,
)
from rag.index.reader import IndexReader, open_index
from rag.index.update import update_index
from rag.ingest.read import read_document, read_source
from rag.settings import Settings

if TYPE_CHECKING:
    from conftest import SeedIndex

REPO_ROOT = Path(__file__).resolve().parent.parent
SUBPROCESS_ENV = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1"}


def no_model() -> Embedder:
    raise AssertionError("the embedding model must not be loaded")


def current_version(index: SeedIndex) -> str:
    return os.readlink(index.settings.index_dir / CURRENT_LINK)


def searchable_ids(reader: IndexReader, source: str | None = None) -> set[str]:
    return {
        chunk.id
        for chunk in reader.chunks.values()
        if chunk.section in SEARCHABLE_SECTIONS and (source is None or chunk.source == source)
    }


def seed_source(index: SeedIndex, position: int) -> str:
    return f"seeds/{sorted(p.name for p in index.seeds.glob('*.txt'))[position]}"


def smallest_seed(index: SeedIndex) -> str:
    """The seed that is quickest to embed again."""
    return f"seeds/{min(index.seeds.glob('*.txt'), key=lambda p: p.stat().st_size).name}"


@pytest.fixture
def reader(seed_index: SeedIndex):
    opened = open_index(seed_index.settings)
    yield opened
    opened.close()


def test_full_build_indexes_every_seed(seed_index: SeedIndex, reader: IndexReader) -> None:
    report = seed_index.report
    sources = sorted(f"seeds/{p.name}" for p in seed_index.seeds.glob("*.txt"))
    assert report.added == sources
    assert report.skipped == [] and report.duplicates == [] and report.removed == []
    assert report.chunks_total == len(reader.chunks)
    assert sorted(reader.manifest.files) == sources
    assert reader.manifest.format_version == FORMAT_VERSION
    assert reader.manifest.fingerprint == seed_index.settings.index_fingerprint(
        reader.manifest.embedding_model_hash, reader.manifest.multilingual_model_hash
    )

    # Every chunk is an exact span of its source's canonical text; every section is in the chunk table.
    for chunk in reader.chunks.values():
        assert read_source(chunk.source, seed_index.cwd, 10**8).text[chunk.start : chunk.end] == chunk.text
    # Only body and comment chunks are searchable, in both stores.
    searchable = searchable_ids(reader)
    assert report.chunks_embedded == len(searchable)
    assert reader.store.ids() == searchable == reader.multilingual_store.ids()
    assert set(reader.keyword.chunk_ids) == searchable
    boilerplate = {cid for cid, chunk in reader.chunks.items() if chunk.section == "boilerplate"}
    assert not boilerplate & reader.store.ids()


def test_documents_summarise_each_file(seed_index: SeedIndex, reader: IndexReader) -> None:
    documents = reader.documents()
    assert [doc["source"] for doc in documents] == sorted(reader.manifest.files)
    for doc in documents:
        expected = read_document(seed_index.cwd / doc["source"], doc["source"], 10**8)
        assert (doc["title"], doc["author"], doc["date"], doc["outlet"]) == (
            expected.title,
            expected.author,
            expected.date,
            expected.outlet,
        )
        own_chunks = reader.chunks_by_source[doc["source"]]
        assert doc["chunks"] == len(own_chunks) == sum(doc["sections"].values())
        assert [chunk.ordinal for chunk in own_chunks] == sorted(chunk.ordinal for chunk in own_chunks)


def test_unchanged_corpus_embeds_nothing_and_writes_nothing(seed_index: SeedIndex) -> None:
    before = current_version(seed_index)
    report = seed_index.update(no_model)
    assert report.chunks_embedded == 0
    assert report.unchanged == seed_index.report.added
    assert report.added == report.updated == report.removed == []
    assert report.chunks_total == seed_index.report.chunks_total
    assert current_version(seed_index) == before


NOOP_SCRIPT = """
import json, sys, time
from pathlib import Path
started = time.perf_counter()
from rag.index.update import update_index
from rag.settings import Settings
cwd = Path(sys.argv[1])
report = update_index(Settings(index_dir=cwd / "index"), [Path("seeds")], lambda: 1 / 0, cwd=cwd)
seconds = time.perf_counter() - started
heavy = [name for name in ("torch", "sentence_transformers", "chromadb", "bm25s") if name in sys.modules]
print(json.dumps({"embedded": report.chunks_embedded, "heavy": heavy, "seconds": seconds}))
"""


def test_unchanged_run_loads_no_model_and_no_database(seed_index: SeedIndex) -> None:
    """The no-op path in a fresh process imports neither torch nor chromadb (that is what keeps it fast)."""
    done = subprocess.run(
        [sys.executable, "-c", NOOP_SCRIPT, str(seed_index.cwd)],
        capture_output=True,
        text=True,
        env=SUBPROCESS_ENV,
        timeout=120,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"no-op re-run in a fresh process: {result['seconds']:.2f} s")
    assert result["embedded"] == 0
    assert result["heavy"] == []


def test_changed_file_replaces_only_its_chunks(seed_index: SeedIndex, minilm: Embedder) -> None:
    before = open_index(seed_index.settings)
    changed = smallest_seed(seed_index)
    path = seed_index.cwd / changed
    text = path.read_text(encoding="utf-8")
    cut = text.index("\n", len(text) // 3)  # a new paragraph inside the article body
    sentence = "Ein Zitronenfalter landete am Freitag auf der Quarkspeise."
    path.write_text(f"{text[:cut]}\n\n{sentence}\n{text[cut:]}", encoding="utf-8")

    report = seed_index.update(lambda: minilm)

    after = open_index(seed_index.settings)
    try:
        assert report.updated == [changed]
        assert report.added == report.removed == []
        for source, entry in before.manifest.files.items():
            if source != changed:
                assert after.manifest.files[source].chunk_ids == entry.chunk_ids
        old_ids, new_ids = searchable_ids(before, changed), searchable_ids(after, changed)
        assert old_ids and new_ids and not old_ids & new_ids
        assert report.chunks_embedded == len(new_ids)
        assert after.store.ids() == searchable_ids(after) == after.multilingual_store.ids()
        assert set(after.keyword.chunk_ids) == searchable_ids(after)
        assert searchable_ids(after) - new_ids == searchable_ids(before) - old_ids
        hits = after.keyword.search("Zitronenfalter Quarkspeise", k=1)
        assert after.chunks[hits[0][0]].source == changed
    finally:
        before.close()
        after.close()


def test_deleted_file_loses_its_chunks_everywhere(seed_index: SeedIndex, reader: IndexReader) -> None:
    deleted = seed_source(seed_index, 1)
    gone = {cid for cid, chunk in reader.chunks.items() if chunk.source == deleted}
    (seed_index.cwd / deleted).unlink()

    report = seed_index.update(no_model)

    after = open_index(seed_index.settings)
    try:
        assert report.removed == [deleted]
        assert report.chunks_embedded == 0
        assert deleted not in after.manifest.files
        assert not gone & set(after.chunks)
        assert not gone & after.store.ids()
        assert not gone & set(after.keyword.chunk_ids)
        assert after.store.ids() == searchable_ids(reader) - gone == after.multilingual_store.ids()
    finally:
        after.close()


def test_copy_is_a_duplicate_until_its_original_goes(seed_index: SeedIndex, reader: IndexReader) -> None:
    original = seed_source(seed_index, 0)
    copy = "seeds/zz_copy.txt"
    (seed_index.cwd / copy).write_bytes((seed_index.cwd / original).read_bytes())

    report = seed_index.update(no_model)
    assert report.duplicates == [(copy, original)]
    assert report.chunks_embedded == 0
    assert report.chunks_total == seed_index.report.chunks_total
    version = current_version(seed_index)
    again = seed_index.update(no_model)
    assert again.duplicates == [(copy, original)]
    assert current_version(seed_index) == version

    # Once the original is deleted, the copy takes its place and reuses the stored vectors.
    (seed_index.cwd / original).unlink()
    moved = seed_index.update(no_model)
    assert (moved.added, moved.removed, moved.duplicates) == ([copy], [original], [])
    assert moved.chunks_embedded == 0
    after = open_index(seed_index.settings)
    try:
        assert after.store.ids() == searchable_ids(reader) == after.multilingual_store.ids()
        copy_ids = searchable_ids(after, copy)
        assert copy_ids == searchable_ids(reader, original)
        assert {meta["source"] for meta in after.store.metadata(copy_ids).values()} == {copy}
    finally:
        after.close()


def test_indexing_another_folder_keeps_the_first(seed_index: SeedIndex, minilm: Embedder) -> None:
    extra = seed_index.cwd / "extra"
    extra.mkdir()
    (extra / "note.txt").write_text(
        "Astana baut einen neuen Bahnhof\n\nDie Stadt eröffnet im Sommer einen Bahnhof für Güterzüge.\n",
        encoding="utf-8",
    )
    report = update_index(seed_index.settings, [Path("extra")], lambda: minilm, cwd=seed_index.cwd)
    assert report.added == ["extra/note.txt"]
    assert report.removed == []
    reader = open_index(seed_index.settings)
    try:
        assert set(reader.manifest.files) == {*seed_index.report.added, "extra/note.txt"}
    finally:
        reader.close()


def test_bad_files_are_skipped_and_missing_paths_refused(seed_index: SeedIndex) -> None:
    (seed_index.seeds / "broken.txt").write_bytes(b"\x00\x01\x02binary" * 100)
    report = seed_index.update(no_model)
    assert [source for source, _ in report.skipped] == ["seeds/broken.txt"]
    assert report.unchanged == seed_index.report.added

    with pytest.raises(InputError, match="no-such-folder"):
        update_index(seed_index.settings, [Path("no-such-folder")], no_model, cwd=seed_index.cwd)


def test_empty_corpus_is_an_input_error(tmp_path: Path) -> None:
    settings = Settings(index_dir=tmp_path / "index")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError):
        update_index(settings, [Path("empty")], no_model, cwd=tmp_path)
    (tmp_path / "empty" / "blank.txt").write_text("  \n", encoding="utf-8")
    with pytest.raises(InputError, match="No indexable file"):
        update_index(settings, [Path("empty")], no_model, cwd=tmp_path)


def test_missing_index_is_reported(tmp_path: Path) -> None:
    with pytest.raises(IndexMissingError, match="rag index"):
        open_index(Settings(index_dir=tmp_path / "index"))


def test_other_chunk_settings_make_the_index_stale(
    seed_index: SeedIndex, reader: IndexReader, minilm: Embedder
) -> None:
    other = seed_index.settings.with_overrides(chunk_tokens=64)
    with pytest.raises(StaleIndexError, match=r"chunk_tokens 128, now 64.*rag index --rebuild"):
        open_index(other)
    with pytest.raises(StaleIndexError):
        update_index(other, [Path("seeds")], no_model, cwd=seed_index.cwd)

    # A rebuild (of one file, to keep the test quick) makes the index usable with the new settings.
    source = smallest_seed(seed_index)
    report = update_index(other, [Path(source)], lambda: minilm, cwd=seed_index.cwd, rebuild=True)
    assert report.added == [source]
    rebuilt = open_index(other)
    try:
        assert set(rebuilt.manifest.files) == {source}
        # Shorter chunks: more of them than with 128 tokens.
        assert len(rebuilt.chunks) > len(reader.chunks_by_source[source])
    finally:
        rebuilt.close()
    with pytest.raises(StaleIndexError):
        open_index(seed_index.settings)


def test_another_embed_precision_is_named_in_the_stale_index_error(seed_index: SeedIndex) -> None:
    built = seed_index.settings.embed_precision
    other = "float32" if built == "bfloat16" else "bfloat16"
    with pytest.raises(StaleIndexError, match=rf"embed_precision {built}, now {other}.*rag index --rebuild"):
        open_index(seed_index.settings.with_overrides(embed_precision=other))


def test_other_multilingual_weights_make_the_index_stale(
    seed_index: SeedIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rag.index.embed

    open_index(seed_index.settings).close()
    monkeypatch.setattr(rag.index.embed, "multilingual_fingerprint", lambda: "0" * 64)
    with pytest.raises(StaleIndexError, match=r"multilingual encoder.*rag index --rebuild"):
        open_index(seed_index.settings)


def test_other_format_version_is_stale(seed_index: SeedIndex) -> None:
    manifest_path = seed_index.settings.index_dir / CURRENT_LINK / MANIFEST_FILE
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["format_version"] = FORMAT_VERSION + 1
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(StaleIndexError, match="format"):
        open_index(seed_index.settings)


HOLD_LOCK_SCRIPT = """
import sys, time
from filelock import FileLock
lock = FileLock(sys.argv[1])
lock.acquire()
print("locked", flush=True)
time.sleep(120)
"""


def test_lock_held_by_another_process_stops_writers_not_readers(seed_index: SeedIndex) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK_SCRIPT, str(seed_index.settings.index_dir / LOCK_FILE)],
        stdout=subprocess.PIPE,
        text=True,
        env=SUBPROCESS_ENV,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        with pytest.raises(IndexLockedError, match="another"):
            seed_index.update(no_model)
        assert time.monotonic() - started < 15
        reader = open_index(seed_index.settings)  # the published version stays readable
        try:
            assert reader.keyword.search("Tokajew", k=3)
        finally:
            reader.close()
    finally:
        holder.kill()
        holder.wait()
    assert seed_index.update(no_model).chunks_embedded == 0  # released when the holder died


def test_kill_during_rebuild_leaves_the_previous_index(seed_index: SeedIndex, reader: IndexReader) -> None:
    marker = seed_index.cwd / "paused-mid-write"
    versions = seed_index.settings.index_dir / VERSIONS_DIR
    before_versions = set(os.listdir(versions))
    rebuild = subprocess.Popen(
        [sys.executable, "-c", PAUSED_WRITER, str(marker), "rebuild", smallest_seed(seed_index)],
        cwd=seed_index.cwd,
        env={**SUBPROCESS_ENV, "RAG_INDEX_DIR": str(seed_index.settings.index_dir)},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not marker.exists():
            assert rebuild.poll() is None, (
                f"rebuild ended early: {rebuild.stderr.read() if rebuild.stderr else ''}"
            )
            assert time.monotonic() < deadline, "rebuild never reached the middle of its write"
            time.sleep(0.1)
    finally:
        rebuild.send_signal(signal.SIGKILL)
        rebuild.wait()
    assert rebuild.returncode == -signal.SIGKILL
    half_written = set(os.listdir(versions)) - before_versions
    assert len(half_written) == 1 and (versions / half_written.pop() / "chroma").is_dir()

    survivor = open_index(seed_index.settings)
    try:
        assert survivor.directory == reader.directory
        assert survivor.chunks == reader.chunks
        assert survivor.store.ids() == searchable_ids(reader)
        assert survivor.keyword.search("Tokajew", k=3)
    finally:
        survivor.close()

    report = seed_index.update(no_model)  # the next run clears the leftovers
    assert report.chunks_embedded == 0
    assert set(os.listdir(versions)) == before_versions


def test_index_without_recorded_file_sizes_still_opens(seed_index: SeedIndex) -> None:
    """Indexes written before the manifest recorded `data_files` open and update as before."""
    manifest_path = seed_index.settings.index_dir / CURRENT_LINK / MANIFEST_FILE
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    assert {"chunks.jsonl", "bm25/chunk_ids.json"} <= manifest.pop("data_files").keys()
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    reader = open_index(seed_index.settings)
    try:
        assert reader.keyword.search("Tokajew", k=3) and not reader.manifest.data_files
    finally:
        reader.close()
    assert seed_index.update(no_model).unchanged == seed_index.report.added
