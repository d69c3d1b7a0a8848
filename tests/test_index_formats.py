"""Indexing web pages, PDFs and collections, `rag show`, and their bad inputs through the real `rag`.

Index tests use the real encoders, Chroma and BM25. A collection made of the first
rows of 10kGNAD checks incremental indexing per row; a mixed folder (two real saved
pages, a three-page PDF, a JSONL file) checks that every chunk is a slice of the
canonical text and that PDF pages reach search results. The whole 10kGNAD file is
indexed by a `slow` test through the real CLI. Bad files go through the real `rag`
executable: one line on stderr, a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from fpdf import FPDF
from pypdf import PdfWriter

import rag.ingest.formats
from rag.errors import StaleIndexError
from rag.index.reader import open_index, published_manifest
from rag.index.update import update_index
from rag.ingest.formats.collection import CollectionOptions
from rag.ingest.read import BYTES_PER_MB, read_source
from rag.retrieval.show import show_span
from rag.settings import Settings

if TYPE_CHECKING:
    from rag.index.embed import Embedder

REPO_ROOT = Path(__file__).resolve().parent.parent
CORPORA = REPO_ROOT.parent / "shared" / "corpora"
HTML_NEWS = CORPORA / "html-news"
GNAD_CSV = CORPORA / "10kGNAD-test.csv"
RAG = str(Path(sys.executable).with_name("rag"))
LIMIT = 50 * BYTES_PER_MB
GNAD_ROWS = 8

needs_html_news = pytest.mark.skipif(not HTML_NEWS.is_dir(), reason=f"{HTML_NEWS} is absent")
needs_gnad = pytest.mark.skipif(not GNAD_CSV.is_file(), reason=f"{GNAD_CSV} is absent")


def run_rag(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RAG_INDEX_DIR": str(cwd / "index"), "COLUMNS": "200"}
    return subprocess.run([RAG, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.strip().count("\n") == 0, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr


def make_pdf(path: Path, pages: list[str]) -> Path:
    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    pdf.output(str(path))
    return path


def gnad_head(target: Path, rows: int = GNAD_ROWS) -> Path:
    """The first rows of 10kGNAD (one record a line), in its own `category;'text'` format."""
    with GNAD_CSV.open(encoding="utf-8") as handle:
        target.write_text("".join(next(handle) for _ in range(rows)), encoding="utf-8")
    return target


class Indexer:
    """`update_index` on one working folder with the session's real encoders."""

    def __init__(self, cwd: Path, minilm: Embedder, multilingual: Embedder) -> None:
        self.cwd = cwd
        self.settings = Settings(index_dir=cwd / "index")
        self.encoders = (minilm, multilingual)

    def __call__(self, *paths: str, collection: CollectionOptions | None = None):  # type: ignore[no-untyped-def]
        minilm, multilingual = self.encoders
        return update_index(
            self.settings,
            [Path(path) for path in paths],
            lambda: minilm,
            cwd=self.cwd,
            multilingual=lambda: multilingual,
            collection=collection,
        )

    def current_version(self) -> str:
        return os.readlink(self.cwd / "index" / "current")


@pytest.fixture
def indexer(tmp_path: Path, minilm: Embedder, multilingual: Embedder) -> Indexer:
    return Indexer(tmp_path, minilm, multilingual)


@needs_gnad
def test_collection_rows_are_indexed_one_by_one(indexer: Indexer) -> None:
    csv_path = gnad_head(indexer.cwd / "gnad.csv")
    sources = [f"gnad.csv#row={n}" for n in range(1, GNAD_ROWS + 1)]
    first = indexer("gnad.csv")
    assert first.added == sources and first.skipped == []
    reader = open_index(indexer.settings)
    assert sorted(reader.manifest.files) == sorted(sources)
    for chunk in reader.chunks.values():
        assert read_source(chunk.source, indexer.cwd, LIMIT).text[chunk.start : chunk.end] == chunk.text
    reader.close()

    version = indexer.current_version()
    again = indexer("gnad.csv")
    assert (again.added, again.updated, again.removed, again.chunks_embedded) == ([], [], [], 0)
    assert again.unchanged == sorted(sources)
    assert indexer.current_version() == version, "a no-op writes no new version"

    lines = csv_path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[2] = lines[2].replace("'", "'Nachtrag der Redaktion: ", 1)  # row 3 gets a new opening
    csv_path.write_text("".join(lines), encoding="utf-8")
    changed = indexer("gnad.csv")
    assert (changed.added, changed.updated, changed.removed) == ([], ["gnad.csv#row=3"], [])
    assert 0 < changed.chunks_embedded < changed.chunks_total

    csv_path.write_text("".join(lines[:-1]), encoding="utf-8")
    shorter = indexer("gnad.csv")
    assert (shorter.added, shorter.updated, shorter.removed) == ([], [], [f"gnad.csv#row={GNAD_ROWS}"])
    assert shorter.chunks_embedded == 0


def test_collection_options_are_recorded_and_a_new_column_choice_reindexes(indexer: Indexer) -> None:
    export = indexer.cwd / "export.txt"
    export.write_text(
        "Kasachstan;Astana baut einen neuen Flughafen für zwei Milliarden Euro.\n"
        "Usbekistan;Taschkent eröffnet eine U-Bahn-Linie mit zwölf Stationen.\n",
        encoding="utf-8",
    )
    forced = CollectionOptions(format="csv", text_column="2", title_column="1")
    report = indexer("export.txt", collection=forced)
    assert report.added == ["export.txt#row=1", "export.txt#row=2"]
    manifest = published_manifest(indexer.settings)
    assert manifest is not None and manifest.collection_options("export.txt#row=2") == forced
    row = read_source("export.txt#row=2", indexer.cwd, LIMIT, manifest.collection_options("export.txt#row=2"))
    assert row.text == "Usbekistan\n\nTaschkent eröffnet eine U-Bahn-Linie mit zwölf Stationen."
    assert indexer("export.txt", collection=forced).chunks_embedded == 0
    retitled = indexer("export.txt", collection=CollectionOptions(format="csv", text_column="2"))
    assert retitled.updated == ["export.txt#row=1", "export.txt#row=2"]


@needs_html_news
def test_pages_pdf_and_jsonl_index_together_and_cite_pdf_pages(indexer: Indexer) -> None:
    corpus = indexer.cwd / "corpus"
    corpus.mkdir()
    for name in ("computerbase.de.htc.html", "futurezone.at.lyft.html"):
        shutil.copyfile(HTML_NEWS / name, corpus / name)
    make_pdf(
        corpus / "bericht.pdf",
        [
            "Der Präsident traf am Montag in Astana ein.",
            "Am Dienstag unterzeichneten beide Seiten ein Abkommen über Weizenlieferungen.",
            "Die Opposition kritisierte das Abkommen als übereilt.",
        ],
    )
    (corpus / "kurz.jsonl").write_text(
        json.dumps({"title": "Seidenstraße", "text": "Ein Güterzug fuhr von Xi'an nach Duisburg."}) + "\n"
    )
    report = indexer("corpus")
    assert report.added == [
        "corpus/bericht.pdf",
        "corpus/computerbase.de.htc.html",
        "corpus/futurezone.at.lyft.html",
        "corpus/kurz.jsonl#row=1",
    ]
    reader = open_index(indexer.settings)
    for chunk in reader.chunks.values():
        assert read_source(chunk.source, indexer.cwd, LIMIT).text[chunk.start : chunk.end] == chunk.text
        assert (chunk.page is not None) == (chunk.source == "corpus/bericht.pdf")
    reader.close()

    from rag.answering.pipeline import Pipeline

    minilm, multilingual = indexer.encoders
    pipeline = Pipeline(indexer.settings, embedder=minilm, multilingual=multilingual, cwd=indexer.cwd)
    best = pipeline.search("Abkommen über Weizenlieferungen", k=1)[0]
    pipeline.close()
    assert (best.source, best.page) == ("corpus/bericht.pdf", 2)
    view = show_span(indexer.settings, best.source, best.start, best.end, context=40, cwd=indexer.cwd)
    assert view.text == best.text and view.page == 2 and view.indexed and not view.changed


def test_other_extractors_make_the_index_stale(seed_index, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(rag.ingest.formats, "EXTRACTOR_VERSION", rag.ingest.formats.EXTRACTOR_VERSION + 1)
    with pytest.raises(StaleIndexError, match=r"text extractors v\d+;.*, now v\d+;.*rag index --rebuild"):
        open_index(seed_index.settings)


# ---------------------------------------------------------------------------
# The real `rag` executable


def bad_pdfs(folder: Path) -> None:
    folder.mkdir(exist_ok=True)
    plain = make_pdf(folder / "plain.pdf.tmp", ["Ein kurzer Text."])
    (folder / "broken.pdf").write_bytes(plain.read_bytes()[:300])
    writer = PdfWriter(clone_from=plain)
    writer.encrypt(user_password="geheim", algorithm="RC4-128")
    with (folder / "locked.pdf").open("wb") as handle:
        writer.write(handle)
    scan = FPDF()
    scan.add_page()
    scan.rect(20, 20, 100, 60, style="F")
    scan.output(str(folder / "scan.pdf"))
    plain.unlink()


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("broken.pdf", "broken.pdf is not a readable PDF"),
        ("locked.pdf", "locked.pdf is encrypted (password-protected)"),
        ("scan.pdf", "scan.pdf has no text layer (a scan?) — run OCR on it first"),
    ],
)
def test_bad_pdf_alone_is_a_one_line_error(tmp_path: Path, name: str, reason: str) -> None:
    bad_pdfs(tmp_path / "pdfs")
    result = run_rag("index", "--json", f"pdfs/{name}", cwd=tmp_path)  # --json: no progress lines
    assert_one_line_error(result, "No indexable file", reason)


def test_bad_files_beside_good_ones_are_skipped_with_a_line_each(tmp_path: Path) -> None:
    bad_pdfs(tmp_path / "corpus")
    (tmp_path / "corpus" / "leer.html").write_text("<html><body><script>x()</script></body></html>")
    (tmp_path / "corpus" / "gut.txt").write_text("Astana baut einen neuen Flughafen.\n", encoding="utf-8")
    result = run_rag("index", "corpus", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    skipped = sorted(line for line in result.stderr.splitlines() if line.startswith("skipped "))
    assert [line.split(":")[0] for line in skipped] == [
        "skipped corpus/broken.pdf",
        "skipped corpus/leer.html",
        "skipped corpus/locked.pdf",
        "skipped corpus/scan.pdf",
    ]
    assert "1 added" in result.stdout


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (
            ["index", "--json", "--text-column", "body", "artikel.csv"],
            ["artikel.csv has no column 'body'", "--text-column"],
        ),
        (["index", "--json", "--format", "csv", "."], ["--format csv reads files", "is not a file"]),
        (["show", "artikel.csv#row=9", "0", "10"], ["has no such row any more"]),
        (["show", "artikel.csv#row=1", "5", "500"], ["is not a span of artikel.csv#row=1", "characters"]),
        (["show", "fehlt.html", "0", "10"], ["Cannot read", "fehlt.html"]),
    ],
)
def test_collection_and_show_mistakes_are_one_line_errors(
    tmp_path: Path, args: list[str], fragments: list[str]
) -> None:
    (tmp_path / "artikel.csv").write_text("title,text\nErster,Ein kurzer Text.\n", encoding="utf-8")
    assert_one_line_error(run_rag(*args, cwd=tmp_path), *fragments)


@needs_html_news
def test_show_prints_the_cited_span_of_a_saved_page(tmp_path: Path) -> None:
    page = str(HTML_NEWS / "heise.de.lithium.html")
    text = read_source(page, tmp_path, LIMIT).text
    start = text.index("Die Recyclingquote liegt lediglich bei 25 Prozent.")
    end = start + len("Die Recyclingquote liegt lediglich bei 25 Prozent.")
    shown = run_rag("show", page, str(start), str(end), "--json", "--context", "60", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    view = json.loads(shown.stdout)
    assert view["text"] == "Die Recyclingquote liegt lediglich bei 25 Prozent."
    assert (
        text[start - len(view["before"]) : end + len(view["after"])]
        == view["before"] + view["text"] + view["after"]
    )
    assert 0 < len(view["before"]) <= 60 and not view["indexed"]
    plain = run_rag("show", page, str(start), str(end), cwd=tmp_path)
    assert "Lithium aus dem Schredder" in plain.stdout and "Recyclingquote liegt lediglich" in plain.stdout


@pytest.mark.slow
@pytest.mark.timeout(3600)
@needs_gnad
def test_whole_10kgnad_indexes_1028_articles_and_a_rerun_is_a_no_op(tmp_path: Path) -> None:
    """Minutes of embedding: marked slow with the LLM tests, though it needs no LLM."""
    shutil.copyfile(GNAD_CSV, tmp_path / "10kGNAD-test.csv")
    first = run_rag("index", "10kGNAD-test.csv", "--json", cwd=tmp_path, timeout=3600)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert len(report["added"]) == 1028 and report["skipped"] == [] and report["duplicates"] == []
    again = json.loads(run_rag("index", "10kGNAD-test.csv", "--json", cwd=tmp_path).stdout)
    assert len(again["unchanged"]) == 1028 and again["chunks_embedded"] == 0 and again["added"] == []
