"""Ingestion on real files: discovery, decoding, bad inputs, metadata and section labels of the seeds."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag.errors import InputError
from rag.ingest.cleaning import RULES, Rule, label_sections, whole_line
from rag.ingest.discovery import discover
from rag.ingest.metadata import extract_metadata, parse_date
from rag.ingest.read import BYTES_PER_MB, decode_file, normalize_whitespace, read_document
from rag.types import Document

LIMIT = 50 * BYTES_PER_MB


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return path


# --- decoding ---------------------------------------------------------------------------


def test_utf8_with_and_without_bom_decode_to_the_same_text(tmp_path: Path) -> None:
    text = "Grüße aus Astana – „Zitat“ €\n"
    plain = write(tmp_path / "plain.txt", text.encode("utf-8"))
    bom = write(tmp_path / "bom.txt", b"\xef\xbb\xbf" + text.encode("utf-8"))
    assert decode_file(plain, LIMIT) == decode_file(bom, LIMIT) == text


def test_cp1252_falls_back_and_latin1_never_fails(tmp_path: Path) -> None:
    cp1252 = write(tmp_path / "cp.txt", "Präsident sagt „Nein“ für 5 €".encode("cp1252"))
    assert decode_file(cp1252, LIMIT) == "Präsident sagt „Nein“ für 5 €"
    # 0x81 is undefined in cp1252, so only latin-1 decodes this
    latin1 = write(tmp_path / "latin.txt", b"Die Stra\xdfe \x81 endet am Platz.")
    assert decode_file(latin1, LIMIT) == "Die Straße \x81 endet am Platz."


def test_utf16_with_bom_is_text_not_binary(tmp_path: Path) -> None:
    path = write(tmp_path / "u16.txt", "Kasachstan und Russland".encode("utf-16"))
    assert decode_file(path, LIMIT) == "Kasachstan und Russland"


def test_nfc_and_line_endings_are_normalised(tmp_path: Path) -> None:
    path = write(tmp_path / "nfd.txt", "Pra\u0308sident\r\nZeile zwei\rZeile drei\n".encode())
    assert decode_file(path, LIMIT) == "Präsident\nZeile zwei\nZeile drei\n"


def test_whitespace_is_kept_in_canonical_text_and_collapsed_for_display(seeds_dir: Path) -> None:
    path = seeds_dir / "002_80bd9b1924e3081e.txt"
    text = decode_file(path, LIMIT)
    assert "Toqajew\xa0hat" in text  # the no-break space of the original survives
    assert "Toqajew hat" in normalize_whitespace(text)
    assert normalize_whitespace("  a \u200b b\t\tc \n\n\n d  ") == "a b c\n\nd"


def test_rich_markup_is_plain_text(tmp_path: Path) -> None:
    markup = "[bold]Achtung[/bold] [link=https://example.org]hier[/link] [red]rot[/]\n" * 3
    path = write(tmp_path / "markup.txt", markup)
    document = read_document(path, "markup.txt", LIMIT)
    assert document.text == markup
    assert document.title == "[bold]Achtung[/bold] [link=https://example.org]hier[/link] [red]rot[/]"


# --- bad inputs ---------------------------------------------------------------------------


def test_missing_path_raises_with_the_path(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"No such file or directory: nowhere/x\.txt — check the path"):
        discover([Path("nowhere/x.txt")], tmp_path)


@pytest.mark.parametrize("content", [b"", b"  \n\t\n  "])
def test_empty_and_blank_files_are_refused(tmp_path: Path, content: bytes) -> None:
    path = write(tmp_path / "empty.txt", content)
    with pytest.raises(InputError, match="empty file"):
        read_document(path, "empty.txt", LIMIT)


def test_binary_files_are_refused(tmp_path: Path) -> None:
    png = write(tmp_path / "image.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    with pytest.raises(InputError, match="looks binary"):
        decode_file(png, LIMIT)
    controls = write(tmp_path / "controls.txt", bytes(range(1, 32)) * 20 + b"a few letters")
    with pytest.raises(InputError, match="looks binary"):
        decode_file(controls, LIMIT)


def test_huge_sparse_file_is_refused_without_reading_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "huge.txt"
    with path.open("wb") as handle:
        handle.truncate(300 * BYTES_PER_MB)

    def refuse_open(*args: object, **kwargs: object) -> None:
        raise AssertionError("the oversized file was opened")

    monkeypatch.setattr(Path, "open", refuse_open)
    started = time.perf_counter()
    with pytest.raises(InputError) as error:
        read_document(path, "huge.txt", LIMIT)
    assert time.perf_counter() - started < 1.0
    message = str(error.value)
    assert (
        message
        == "huge.txt is 300 MB, over the 50 MB limit (max_file_mb) — split it or raise RAG_MAX_FILE_MB"
    )


@contextlib.contextmanager
def as_unprivileged_user() -> Iterator[None]:
    """Drop the effective uid when running as root, whom file modes do not stop."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(65534)
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def test_unreadable_file_is_skipped_with_reason() -> None:
    # pytest's tmp_path is private to root; the unprivileged user needs to traverse this one.
    directory = Path(tempfile.mkdtemp(prefix="rag-perm-"))
    try:
        directory.chmod(0o755)
        write(directory / "open.txt", "Lesbar.")
        secret = write(directory / "secret.txt", "Geheim.")
        secret.chmod(0o000)
        with as_unprivileged_user():
            found, skipped = discover([directory], directory)
            with pytest.raises(InputError, match="permission denied"):
                decode_file(secret, LIMIT)
        assert [source for _, source in found] == ["open.txt"]
        assert skipped == [("secret.txt", "permission denied")]
    finally:
        shutil.rmtree(directory)


def test_symlink_loops_are_skipped_not_followed(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    write(corpus / "a.txt", "Artikel A.")
    write(corpus / "sub" / "b.md", "Artikel B.")
    (corpus / "loop1.txt").symlink_to(corpus / "loop2.txt")
    (corpus / "loop2.txt").symlink_to(corpus / "loop1.txt")
    (corpus / "sub" / "up").symlink_to(corpus)  # a directory cycle
    found, skipped = discover([Path("corpus")], tmp_path)
    assert [source for _, source in found] == ["corpus/a.txt", "corpus/sub/b.md"]
    assert ("corpus/loop1.txt", "symlink loop") in skipped
    assert ("corpus/loop2.txt", "symlink loop") in skipped
    assert ("corpus/sub/up", "symlink loop (directory already scanned)") in skipped

    found, skipped = discover([Path("corpus/loop1.txt")], tmp_path)
    assert found == []
    assert skipped == [("corpus/loop1.txt", "symlink loop")]


def test_symlink_loop_outside_the_working_directory_is_skipped(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    write(corpus / "a.txt", "Artikel A.")
    (corpus / "loop1.txt").symlink_to(corpus / "loop2.txt")
    (corpus / "loop2.txt").symlink_to(corpus / "loop1.txt")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    found, skipped = discover([corpus], elsewhere)
    assert [source for _, source in found] == [str(corpus / "a.txt")]
    assert (str(corpus / "loop1.txt"), "symlink loop") in skipped


def test_symlinks_leading_outside_the_folder_are_skipped_unless_followed(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    write(corpus / "a.txt", "Artikel A.")
    secret = write(tmp_path / "private" / "passwd.txt", "root:x:0:0")
    (corpus / "passwd.txt").symlink_to(secret)
    (corpus / "private").symlink_to(secret.parent)
    (corpus / "0-inside.txt").symlink_to(corpus / "a.txt")  # within the folder: the same file, once
    found, skipped = discover([Path("corpus")], tmp_path)
    assert [source for _, source in found] == ["corpus/a.txt"]
    reasons = dict(skipped)
    assert reasons["corpus/passwd.txt"].startswith(f"symlink to {secret}, outside")
    assert "--follow-symlinks" in reasons["corpus/private"]
    assert reasons["corpus/0-inside.txt"] == "same file as corpus/a.txt"

    found, skipped = discover([Path("corpus")], tmp_path, follow_symlinks=True)
    assert [source for _, source in found] == ["corpus/a.txt", "corpus/passwd.txt"]
    found, _ = discover([Path("corpus/passwd.txt")], tmp_path)  # named explicitly: taken
    assert [source for _, source in found] == ["corpus/passwd.txt"]


def test_directory_walk_is_sorted_filters_suffixes_and_hidden(tmp_path: Path) -> None:
    for name in ["b.txt", "a.md", "c.TXT", "notes.docx", ".hidden.txt", "z/y.txt", ".git/x.txt"]:
        write(tmp_path / "docs" / name, "Text.")
    found, skipped = discover([Path("docs")], tmp_path)
    assert [source for _, source in found] == ["docs/a.md", "docs/b.txt", "docs/c.TXT", "docs/z/y.txt"]
    assert skipped == []


def test_explicit_unsupported_file_is_skipped_with_reason(tmp_path: Path) -> None:
    write(tmp_path / "report.docx", b"PK\x03\x04")
    found, skipped = discover([Path("report.docx")], tmp_path)
    assert found == []
    supported = ".csv, .htm, .html, .jsonl, .md, .ndjson, .pdf, .tsv, .txt"
    assert skipped == [("report.docx", f"unsupported file type .docx (supported: {supported})")]


def test_sources_are_relative_below_cwd_and_absolute_elsewhere(tmp_path: Path) -> None:
    inside = write(tmp_path / "work" / "in.txt", "Innen.")
    outside = write(tmp_path / "elsewhere" / "out.txt", "Außen.")
    found, _ = discover([Path("in.txt"), outside, inside], tmp_path / "work")
    assert [source for _, source in found] == ["in.txt", str(outside.resolve())]  # the repeat is dropped


# --- documents, metadata and sections of the real seeds ---------------------------------------


@pytest.fixture(scope="module")
def seed_documents(seeds_dir: Path) -> dict[str, Document]:
    found, skipped = discover([seeds_dir], seeds_dir.parent)
    assert skipped == []
    return {path.name[:3]: read_document(path, source, LIMIT) for path, source in found}


def test_seed_documents_have_hash_title_and_canonical_text(seed_documents: dict[str, Document]) -> None:
    assert len(seed_documents) == 5
    first = seed_documents["000"]
    assert first.source == "seeds/000_3a1a2ed9947f6bc1.txt"
    assert (
        first.title
        == "Kasachstans Präsident übertreibt es verdächtig mit seinen Versuchen, Trump zufriedenzustellen"
    )
    assert (
        seed_documents["003"].title
        == "Machtkampf um Zentralasien: Putin lässt Trump nicht das Feld überlassen"
    )
    assert len(seed_documents["001"].title) <= 122  # a first-line paragraph is shortened for display
    assert len({document.sha256 for document in seed_documents.values()}) == 5


def test_seed_metadata(seed_documents: dict[str, Document]) -> None:
    meta = {key: (doc.author, doc.date, doc.outlet) for key, doc in seed_documents.items()}
    assert meta["000"] == ("Andrew Korybko", "2026-02-20", None)
    assert meta["001"] == ("Joseph Fischer", None, "Novastan")
    assert meta["002"] == (None, None, "Tichys Einblick")  # the photo-caption date is not a publication date
    assert meta["003"] == (None, None, "Kettner Edelmetalle")
    assert meta["004"] == (None, None, None)  # "Kommersant" is cited, not the outlet


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Titel\n\nVon Anna Maria Schmidt | 3. Jänner 2025\n\nText.", ("Anna Maria Schmidt", "2025-01-03")),
        ("Titel\nVeröffentlicht am 20.02.2026, 14:30 Uhr\nText.", (None, "2026-02-20")),
        ("Titel\n2024-11-07\nText.", (None, "2024-11-07")),
        ("Titel\n31.02.2026\nText mit 7. November 2025 im Satz.", (None, None)),
        ("Von Berlin nach Moskau\nText.", (None, None)),
    ],
)
def test_metadata_patterns(text: str, expected: tuple[str | None, str | None]) -> None:
    metadata = extract_metadata(text)
    assert (metadata["author"], metadata["date"]) == expected


def test_parse_date_formats() -> None:
    assert parse_date("am 1. März 2024") == "2024-03-01"
    assert parse_date("7. Nov. 2025") == "2025-11-07"
    assert parse_date("keins") is None


def kind_at(document: Document, phrase: str) -> str:
    """The section kind of the first occurrence of `phrase`."""
    offset = document.text.index(phrase)
    section = next(s for s in document.sections if s.start <= offset < s.end)
    assert offset + len(phrase) <= section.end, f"{phrase!r} straddles a section boundary"
    return section.kind


def test_sections_cover_text_contiguously(seed_documents: dict[str, Document]) -> None:
    for document in seed_documents.values():
        sections = document.sections
        assert sections[0].start == 0 and sections[-1].end == len(document.text)
        assert all(a.end == b.start and a.kind != b.kind for a, b in itertools.pairwise(sections))


@pytest.mark.parametrize(
    ("seed", "phrase", "kind"),
    [
        ("000", "Präsident Tokajew tut Trump einen Gefallen nach dem anderen", "body"),
        ("000", "aber vielleicht haben die Geheimdienste eine andere Einschätzung", "body"),
        ("000", "[Zum Originalbeitrag in englischer Sprache]", "boilerplate"),
        ("000", "Deine E-Mail-Adresse wird nicht veröffentlicht", "boilerplate"),
        ("000", "Diese Website verwendet Akismet", "boilerplate"),
        ("001", "Unterstützt Novastan – das europäische Zentralasien-Magazin", "boilerplate"),
        ("001", "Als vereinsgetragene, unabhängige Plattform lebt Novastan", "boilerplate"),
        ("001", "Im Gegensatz zu allen bisherigen Mitgliedern des Abraham-Abkommens", "body"),
        ("001", "Lest auch auf Novastan: Wladimir Putin in Kirgistan", "boilerplate"),
        ("001", "Noch mehr Zentralasien findet ihr auf unseren Social Media Kanälen", "boilerplate"),
        ("001", "hatte er laut Astana Times 29 Abkommen", "body"),
        ("001", "Joseph Fischer für Novastan", "body"),
        ("002", "IMAGO / ITAR-TASS", "boilerplate"),
        ("002", "so kommt das gedruckte Magazin zu Ihnen", "boilerplate"),
        ("002", "Europa, Russland und China im Niedergang", "boilerplate"),
        ("002", "Wenn der Kumpel zum Verräter wird", "body"),
        ("002", "Gänzlich unerwartet weigerte sich Toqajew nun", "body"),
        ("002", "Anzeige", "boilerplate"),
        ("002", "Wir sind dankbar für Ihre Kommentare", "boilerplate"),
        ("002", "Kommentare ( 21 )", "comments"),
        ("002", "Das billige Feixen über den Zwist mit Kasachstan", "comments"),
        ("002", "In Nordkasachstan gibt es eine zahlenmäßig starke russische Minderheit", "comments"),
        ("003", "Kasachstan verfolgt seit Beginn des Ukraine-Krieges", "body"),
        ("003", "Finanzielle Selbstverteidigung:So retten Sie Ihr Vermögen", "boilerplate"),
        ("003", "15.000€ Gold", "boilerplate"),
        ("004", "an die Einladung zum Besuch Moskaus am 9. Mai zu erinnern", "body"),
    ],
)
def test_seed_section_labels(seed_documents: dict[str, Document], seed: str, phrase: str, kind: str) -> None:
    assert kind_at(seed_documents[seed], phrase) == kind


def test_comment_section_runs_to_a_later_footer() -> None:
    text = (
        "Titel\n\nDer Artikel selbst.\n\n3 Kommentare\n\nLeser A\nGuter Text.\n\n"
        "Tags:\nPolitik\n© 2026 Beispielverlag\n"
    )
    kinds = {text[s.start : s.end].strip().split("\n")[0]: s.kind for s in label_sections(text)}
    assert kinds == {"Titel": "body", "3 Kommentare": "comments", "Tags:": "boilerplate"}


def test_genre_label_kommentar_does_not_open_comments() -> None:
    text = "Kommentar\n\nWarum die Reform scheitert.\n\nDer Text des Kommentars."
    assert [s.kind for s in label_sections(text)] == ["body"]


def test_a_new_rule_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import rag.ingest.cleaning

    text = "Artikeltext.\nJetzt Abo abschließen!\nMehr Artikeltext."
    assert [s.kind for s in label_sections(text)] == ["body"]
    extra = Rule("boilerplate", "line", whole_line(r"Jetzt Abo abschließen!"), "subscription teaser")
    monkeypatch.setattr(rag.ingest.cleaning, "RULES", (*RULES, extra))
    assert [s.kind for s in label_sections(text)] == ["body", "boilerplate", "body"]
