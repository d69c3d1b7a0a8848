"""Reading saved web pages, PDFs and article collections into documents, on real files.

HTML: the eight real pages of ../shared/corpora/html-news (read in place, skipped when
absent), with the metadata established by reading each page's markup and the page
furniture that must not reach the article text. PDF: a real TeX-made manual from
Debian's documentation (skipped when absent) and PDFs made here with fpdf2 and pypdf
(paged text, a scan without text, password-protected, truncated). Collections: the
10kGNAD test split (`category;'text'`, no header) and small CSV/JSONL files.
Indexing these formats is tested in test_index_formats.py.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from fpdf import FPDF
from pypdf import PdfWriter

from rag.errors import InputError
from rag.ingest.chunk import chunk_document
from rag.ingest.formats.collection import CollectionOptions
from rag.ingest.read import BYTES_PER_MB, read_document, read_documents, read_source
from rag.types import Document

REPO_ROOT = Path(__file__).resolve().parent.parent
CORPORA = REPO_ROOT.parent / "shared" / "corpora"
HTML_NEWS = CORPORA / "html-news"
GNAD_CSV = CORPORA / "10kGNAD-test.csv"
REAL_PDF = Path("/usr/share/doc/libtasn1-doc/libtasn1.pdf")  # Debian package libtasn1-doc
LIMIT = 50 * BYTES_PER_MB
NO_OPTIONS = CollectionOptions()

needs_html_news = pytest.mark.skipif(not HTML_NEWS.is_dir(), reason=f"{HTML_NEWS} is absent")
needs_gnad = pytest.mark.skipif(not GNAD_CSV.is_file(), reason=f"{GNAD_CSV} is absent")
needs_real_pdf = pytest.mark.skipif(not REAL_PDF.is_file(), reason=f"{REAL_PDF} is absent (libtasn1-doc)")

# What each page says about itself, read from its markup: the headline (og:title without
# the site's name), the person in the byline, the publication date printed on the page,
# and the site name it declares (JSON-LD publisher, else og:site_name). Notes:
# - rnz: its <meta itemprop=dateCreated> says 2019-05-07 (a re-publication), the page
#   prints "12.10.2015, 19:16 Uhr"; no author (a dpa report); no declared site name,
#   so the host name.
# - sueddeutsche: the header's last-modified is 17 May, the page prints 15. Mai 2019;
#   the meta author is the publishing company, the byline says "Von Markus Balser".
# - spiegel: the meta author is "SPIEGEL ONLINE, Hamburg, Germany" (the publisher); the
#   byline "Von Clemens Höges" sits below the article, outside the extracted text, and
#   is not found (None is what we expect today, not the truth).
# - heise: og:site_name is "Technology Review", the section of heise online it ran in.
# - spektrum: a SciLogs blog; og:site_name is the blog's name, the title loses
#   " » SciLogs - Wissenschaftsblogs".
PAGES = {
    "computerbase.de.htc.html": {
        "title": "HTC Touch: Bald bei o2 als „Xda Nova“",
        "author": "Christoph Becker",
        "date": "2007-06-19",
        "outlet": "ComputerBase",
        "says": "Ohne Vertrag schlägt das Smartphone mit Gestensteuerung hingegen mit 449,- Euro zu Buche.",
        "furniture": ["Registrieren", "Mediadaten"],
    },
    "futurezone.at.lyft.html": {
        "title": "Uber-Konkurrent Lyft startet mit Waymo-Robotertaxis in USA",
        "author": None,
        "date": "2019-05-08",
        "outlet": "futurezone.at",
        "says": "Der Fahrdienst-Vermittler verbuchte im ersten Vierteljahr Erlöse von 775 Millionen Dollar",
        "furniture": ["Allgemeine Nutzungsbedingungen", "Zur Startseite"],
    },
    "heise.de.lithium.html": {
        "title": "Lithium aus dem Schredder",
        "author": "Denis Dilba",
        "date": "2019-06-20",
        "outlet": "Technology Review",
        "says": "Die Recyclingquote liegt lediglich bei 25 Prozent.",
        "furniture": ["Datenschutzhinweis", "Kommentare lesen"],
    },
    "meedia.de.freenet.html": {
        "title": "Einstieg ins TV-Geschäft: Wie Freenet Privatkunden für Antennen-TV in HD-Qualität "
        "gewinnen will",
        "author": "Gregory Lipinski",
        "date": "2016-03-08",
        "outlet": "MEEDIA",
        "says": "Ist der Kaufpreis von 295 Millionen Euro nicht überzogen?",
        "furniture": ["Cookies ermöglichen", "Newsletter abonnieren", "Mehr zum Thema"],
    },
    "rnz.de.witzel.html": {
        "title": "Frank Witzel erhält Deutschen Buchpreis 2015",
        "author": None,
        "date": "2015-10-12",
        "outlet": "rnz.de",
        "says": "Der Deutsche Buchpreis, 2005 erstmals vergeben, gilt als wichtigste Auszeichnung",
        "furniture": ["RNZ-WHATSAPP-Newsletter", "Datenschutzbestimmungen"],
    },
    "spektrum.de.engelbart.html": {
        "title": "Die Ablehnung der Gendersprache",
        "author": "Henning Lobin",
        "date": "2019-04-08",
        "outlet": "Die Engelbart-Galaxis",
        "says": "Seit langem schon polemisiert der VDS gegen das, was man dort als “Gendersprache”",
        "furniture": ["Bleiben Sie auf dem Laufenden", "Vorheriger Artikel"],
    },
    "spiegel.de.albtraum.html": {
        "title": "Ein Albtraum",
        "author": None,
        "date": "2018-12-22",
        "outlet": "SPIEGEL ONLINE",
        "says": "Der SPIEGEL hat in den vergangenen Jahren über 50 Texte von Claas Relotius gedruckt.",
        "furniture": ["Nachrichtenarchiv", "Vervielfältigung nur mit Genehmigung"],
    },
    "sueddeutsche.de.flixtrain.html": {
        "title": "Flixbus attackiert Deutsche Bahn",
        "author": "Markus Balser",
        "date": "2019-05-15",
        "outlet": "Süddeutsche.de",
        "says": "Geplant ist eine Absenkung der Mehrwertsteuer auf Tickets von 19 auf sieben Prozent.",
        "furniture": ["Sie sind angemeldet als", "Jobs bei der SZ"],
    },
}
# Reader comments on the page itself (the other pages link to theirs elsewhere).
COMMENTS = {
    "meedia.de.freenet.html": "WARNING FRAUDULENT COMPANY!!",
    "spektrum.de.engelbart.html": "Ich bin dafür, daß wir die nächsten 500 Jahre nur die weibliche Form",
}


def section_text(document: Document, kind: str) -> str:
    return "".join(document.text[s.start : s.end] for s in document.sections if s.kind == kind)


# ---------------------------------------------------------------------------
# HTML


@needs_html_news
def test_every_saved_page_is_in_the_corpus() -> None:
    assert sorted(path.name for path in HTML_NEWS.glob("*.html")) == sorted(PAGES)


@needs_html_news
@pytest.mark.parametrize("name", sorted(PAGES))
def test_page_metadata_is_what_the_page_states(name: str) -> None:
    expected = PAGES[name]
    document = read_document(HTML_NEWS / name, name, LIMIT)
    found = {key: getattr(document, key) for key in ("title", "author", "date", "outlet")}
    assert found == {key: expected[key] for key in found}


@needs_html_news
@pytest.mark.parametrize("name", sorted(PAGES))
def test_page_text_is_the_article_without_page_furniture(name: str) -> None:
    expected = PAGES[name]
    raw = (HTML_NEWS / name).read_text(encoding="utf-8")
    document = read_document(HTML_NEWS / name, name, LIMIT)
    assert document.text.startswith(str(expected["title"]) + "\n\n")
    assert expected["says"] in section_text(document, "body")
    for furniture in expected["furniture"]:
        assert furniture in raw, "the page holds it, so its absence below means something"
        assert furniture not in document.text
    for markup in ("<script", "function(", "</div>", "{", "}"):
        assert markup not in document.text


@needs_html_news
@pytest.mark.parametrize("name", sorted(PAGES))
def test_page_comments_are_a_labelled_section_after_the_article(name: str) -> None:
    document = read_document(HTML_NEWS / name, name, LIMIT)
    comments = section_text(document, "comments")
    if name not in COMMENTS:
        assert comments == ""
        return
    assert comments.startswith("Kommentare\n\n")
    assert COMMENTS[name] in comments
    assert COMMENTS[name] not in section_text(document, "body")
    first_comment = min(s.start for s in document.sections if s.kind == "comments")
    assert document.text.find(str(PAGES[name]["says"])) < first_comment


@needs_html_news
def test_page_text_is_the_same_on_every_read() -> None:
    """Spans are stored as offsets into this text, so a re-read must give it exactly."""
    for name in PAGES:
        first, second = read_document(HTML_NEWS / name, name, LIMIT), read_source(name, HTML_NEWS, LIMIT)
        assert (first.text, first.sections, first.sha256) == (second.text, second.sections, second.sha256)


def test_page_without_an_article_or_html_is_refused(tmp_path: Path) -> None:
    page = tmp_path / "empty.html"
    page.write_text("<html><head><title>Nichts</title></head><body><script>track();</script></body></html>")
    with pytest.raises(InputError, match=r"^empty\.html: no article text found on the page — "):
        read_document(page, "empty.html", LIMIT)
    picture = tmp_path / "picture.htm"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    with pytest.raises(InputError, match=r"^picture\.htm is not a readable HTML page — "):
        read_document(picture, "picture.htm", LIMIT)


# ---------------------------------------------------------------------------
# PDF


def make_pdf(path: Path, pages: list[str], title: str | None = None) -> Path:
    """A PDF with one page per string (Helvetica, so Latin-1 text)."""
    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    if title:
        pdf.set_title(title)
    pdf.output(str(path))
    return path


PAGE_TEXTS = [
    "Bericht über die Reise.\nDer Präsident traf am Montag in Astana ein.",
    "Am Dienstag unterzeichneten beide Seiten ein Abkommen über Weizenlieferungen.",
    "Die Opposition kritisierte das Abkommen als übereilt.",
]


def test_pdf_text_keeps_where_each_page_starts(tmp_path: Path, minilm_token_counter) -> None:  # type: ignore[no-untyped-def]
    path = make_pdf(tmp_path / "bericht.pdf", PAGE_TEXTS, title="Reisebericht")
    document = read_document(path, "bericht.pdf", LIMIT)
    assert document.title == "Reisebericht"
    assert len(document.page_starts) == 3
    for number, (start, expected) in enumerate(zip(document.page_starts, PAGE_TEXTS, strict=True), 1):
        assert document.text[start:].startswith(expected.split("\n")[0])
        assert document.page_at(start) == number
        assert document.page_at(start + 5) == number
    assert all(sum(s.start < p < s.end for p in document.page_starts) == 0 for s in document.sections)
    chunks = chunk_document(document, minilm_token_counter, max_tokens=16, overlap_tokens=4)
    for chunk in chunks:
        assert document.text[chunk.start : chunk.end] == chunk.text
        page_text = PAGE_TEXTS[chunk.page - 1] if chunk.page else ""
        assert " ".join(chunk.text.split()) in " ".join(page_text.split())
    assert {chunk.page for chunk in chunks} == {1, 2, 3}


@needs_real_pdf
def test_real_pdf_reads_every_page() -> None:
    document = read_document(REAL_PDF, REAL_PDF.name, LIMIT)
    assert len(document.page_starts) == 36
    page_five = document.text[document.page_starts[4] : document.page_starts[5]]
    assert "The parser is case sensitive." in page_five
    assert document.page_at(document.text.index("The parser is case sensitive.")) == 5
    assert "ﬁ" not in document.text, "ligatures read as letters"
    assert read_source(str(REAL_PDF), Path("/"), LIMIT).text == document.text


def test_scan_without_text_layer_is_refused(tmp_path: Path) -> None:
    pdf = FPDF()
    pdf.add_page()
    pdf.rect(20, 20, 100, 60, style="F")  # a picture, no text
    pdf.output(str(tmp_path / "scan.pdf"))
    with pytest.raises(InputError, match=r"^scan\.pdf has no text layer \(a scan\?\) — run OCR on it first"):
        read_document(tmp_path / "scan.pdf", "scan.pdf", LIMIT)


def encrypt(source: Path, target: Path, user_password: str) -> Path:
    writer = PdfWriter(clone_from=source)
    writer.encrypt(user_password=user_password, owner_password="eigentümer", algorithm="RC4-128")
    with target.open("wb") as handle:
        writer.write(handle)
    return target


def test_password_protected_pdf_is_refused(tmp_path: Path) -> None:
    plain = make_pdf(tmp_path / "plain.pdf", PAGE_TEXTS)
    locked = encrypt(plain, tmp_path / "locked.pdf", user_password="geheim")
    with pytest.raises(InputError, match=r"^locked\.pdf is encrypted \(password-protected\) — "):
        read_document(locked, "locked.pdf", LIMIT)


def test_pdf_restricted_only_by_an_owner_password_is_read(tmp_path: Path) -> None:
    plain = make_pdf(tmp_path / "plain.pdf", PAGE_TEXTS)
    restricted = encrypt(plain, tmp_path / "restricted.pdf", user_password="")
    assert read_document(restricted, "r.pdf", LIMIT).text == read_document(plain, "p.pdf", LIMIT).text


def test_truncated_pdf_is_refused(tmp_path: Path) -> None:
    whole = make_pdf(tmp_path / "whole.pdf", PAGE_TEXTS).read_bytes()
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(whole[: len(whole) // 3])
    with pytest.raises(InputError, match=r"^broken\.pdf is not a readable PDF \(\w+\) — it may be damaged"):
        read_document(broken, "broken.pdf", LIMIT)


# ---------------------------------------------------------------------------
# Collections


@needs_gnad
def test_10kgnad_gives_one_document_per_row() -> None:
    documents, skipped = read_documents(GNAD_CSV, "10kGNAD-test.csv", LIMIT, NO_OPTIONS)
    assert skipped == []
    assert len(documents) == 1028
    assert [d.source for d in documents[:2]] == ["10kGNAD-test.csv#row=1", "10kGNAD-test.csv#row=2"]
    assert documents[-1].source == "10kGNAD-test.csv#row=1028"
    with GNAD_CSV.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter=";", quotechar="'"))
    assert [d.text for d in documents] == [text.strip() for _, text in rows]
    assert documents[0].text.startswith("Die Gewerkschaft GPA-djp lanciert den")
    assert "Wirtschaft" not in documents[0].text[:20], "the category column is not the text"


@needs_gnad
def test_a_collection_row_reads_back_alone() -> None:
    row = read_source("10kGNAD-test.csv#row=17", GNAD_CSV.parent, LIMIT)
    documents, _ = read_documents(GNAD_CSV, "10kGNAD-test.csv", LIMIT, NO_OPTIONS)
    assert row == documents[16]
    with pytest.raises(InputError, match=r"has no such row any more — run `rag index` again"):
        read_source("10kGNAD-test.csv#row=1029", GNAD_CSV.parent, LIMIT)


def write_csv(path: Path, rows: list[list[str]], delimiter: str = ",") -> Path:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter).writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


ARTICLES = [
    ["id", "headline", "story", "published", "author"],
    [
        "a1",
        "Weizen für Astana",
        "Beide Seiten unterzeichneten ein Abkommen.",
        "2024-03-05",
        "Anna Weber",
    ],
    ["a2", "Kritik der Opposition", "Die Opposition nannte es übereilt.\nZweiter Absatz.", "05.03.2024", ""],
    ["a3", "Leer", "", "", ""],
]


def test_csv_with_header_finds_its_columns(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "artikel.csv", ARTICLES)
    documents, skipped = read_documents(path, "artikel.csv", LIMIT, NO_OPTIONS)
    assert skipped == [("artikel.csv#row=3", "empty text")]
    first, second = documents
    assert first.source == "artikel.csv#row=1"
    assert first.text == "Weizen für Astana\n\nBeide Seiten unterzeichneten ein Abkommen."
    assert (first.title, first.date, first.author) == ("Weizen für Astana", "2024-03-05", "Anna Weber")
    assert (second.title, second.date, second.author) == ("Kritik der Opposition", "2024-03-05", None)
    assert second.text.endswith("übereilt.\nZweiter Absatz.")


def test_collection_columns_can_be_named_or_numbered(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "artikel.csv", ARTICLES)
    by_name = CollectionOptions(text_column="headline", title_column="id")
    documents, _ = read_documents(path, "artikel.csv", LIMIT, by_name)
    assert documents[0].text == "a1\n\nWeizen für Astana"
    by_number = CollectionOptions(text_column="2")
    assert read_documents(path, "artikel.csv", LIMIT, by_number)[0][0].text.endswith("Weizen für Astana")
    with pytest.raises(InputError, match=r"has no column 'body' \(columns: id, headline, story,"):
        read_documents(path, "artikel.csv", LIMIT, CollectionOptions(text_column="body"))


def test_forced_format_reads_a_txt_export_as_csv(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "export.txt", ARTICLES[:3], delimiter="\t")
    documents, _ = read_documents(path, "export.txt", LIMIT, CollectionOptions(format="csv"))
    assert [d.title for d in documents] == ["Weizen für Astana", "Kritik der Opposition"]
    assert read_documents(path, "export.txt", LIMIT, NO_OPTIONS)[0][0].source == "export.txt"


def test_jsonl_rows_are_line_numbers_and_bad_lines_are_skipped(tmp_path: Path) -> None:
    lines = [
        json.dumps({"title": "Erster", "text": "Text eins.", "date": "2024-01-02"}, ensure_ascii=False),
        "",
        "{kaputt",
        json.dumps({"title": "Zweiter", "text": "Text zwei.", "outlet": "Novastan"}),
        json.dumps(["keine", "Zeitung"]),
    ]
    path = tmp_path / "artikel.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    documents, skipped = read_documents(path, "artikel.jsonl", LIMIT, NO_OPTIONS)
    assert [(d.source, d.title, d.outlet) for d in documents] == [
        ("artikel.jsonl#row=1", "Erster", None),
        ("artikel.jsonl#row=4", "Zweiter", "Novastan"),
    ]
    assert documents[0].date == "2024-01-02"
    assert [(source, reason.split(" (")[0]) for source, reason in skipped] == [
        ("artikel.jsonl#row=3", "invalid JSON"),
        ("artikel.jsonl#row=5", "not a JSON object"),
    ]
