"""Sentence splitting and chunking with the real sentencex splitter and the real MiniLM tokenizer."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from rag.ingest.chunk import chunk_document, chunk_id, split_sentences
from rag.ingest.cleaning import label_sections
from rag.ingest.discovery import discover
from rag.ingest.read import BYTES_PER_MB, read_document
from rag.types import Chunk, Document, Section

TokenCounter = Callable[[str], int]
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "10kGNAD-test.csv"


def sentences_of(text: str) -> list[str]:
    return [text[start:end] for start, end in split_sentences(text)]


def make_document(text: str, sections: tuple[Section, ...] | None = None) -> Document:
    return Document(
        source="test.txt",
        text=text,
        sha256=hashlib.sha256(text.encode()).hexdigest(),
        title=text.split("\n")[0],
        sections=label_sections(text) if sections is None else sections,
    )


# --- sentence splitting ---------------------------------------------------------------------


def test_german_abbreviations_and_dates_do_not_end_sentences() -> None:
    text = (
        "Das betrifft z. B. Dr. Müller, Nr. 5 bzw. Prof. Schmidt u. a. in Berlin. "
        "Am 20. Februar 2026 traf er ca. 20 Abgeordnete. "
        "Am 7. November 2025 flog er nach Washington D.C. zum Gipfel. "
        "Er sagte: „Das ist gut.“ Danach ging er."
    )
    assert sentences_of(text) == [
        "Das betrifft z. B. Dr. Müller, Nr. 5 bzw. Prof. Schmidt u. a. in Berlin.",
        "Am 20. Februar 2026 traf er ca. 20 Abgeordnete.",
        "Am 7. November 2025 flog er nach Washington D.C. zum Gipfel.",
        "Er sagte: „Das ist gut.“",
        "Danach ging er.",
    ]


@pytest.mark.parametrize(
    "text",
    [
        "Der Spieler traf in der 56. Minute zum 1:0.",
        "Am 7. Nov. 2025 kam er, am 9.Dez ging er.",
        "Das gilt laut Art. 5 Abs. 2 GG für Univ.-Prof. Müller und Dipl.-Ing. Huber.",
        "Die Ergebnisse: 1. Ogier 207 Pkt. – 2. Latvala 114 – 3. Mikkelsen 98.",
        "Er feierte seinen 30. Geburtstag mit der Trainerin des SC Wr. Neustadt.",
        "Er hatte K.-o.-Tropfen im Glas.",
        "Es war sein 39. Studioalbum im 21. Jahrhundert.",
        "Der Text endet mit einem Emoji.😊",
    ],
)
def test_german_patterns_stay_one_sentence(text: str) -> None:
    assert sentences_of(text) == [text]


@pytest.mark.parametrize(
    "sentences",
    [
        ["Das Spiel endete 2:1.", "Hr. Meier ging."],
        ["Es kamen 13 von der ÖVP 50.", "Dazu kommen 13."],
        ["Der Wert stieg auf 15,2.", "In der Stadt fiel er."],
        ["Er kam unter die besten 32.", "Der Gegner fiel."],
        ["Er siegte gegen die Nummer-110.", "Der Schnitt stieg."],
    ],
)
def test_numbers_and_words_before_a_real_end_still_split(sentences: list[str]) -> None:
    assert sentences_of(" ".join(sentences)) == sentences


def test_offsets_count_characters_not_bytes() -> None:
    sentences = ["Ölpreis 👍🏽 stieg am 3. März.", "Café\u0301 schloss.", "Noch ein Satz 𝔘𝔫𝔦𝔠𝔬𝔡𝔢."]
    assert sentences_of(" ".join(sentences)) == sentences


def test_headings_and_line_breaks_are_hard_boundaries() -> None:
    text = (
        "Trumps Rohstoff-Offensive trifft auf Putins Gegenschlag\n"
        "Die Timing-Choreografie könnte kaum deutlicher sein.\n\n"
        "Neuer Absatz ohne Punkt\n\nLetzter Satz."
    )
    assert sentences_of(text) == [
        "Trumps Rohstoff-Offensive trifft auf Putins Gegenschlag",
        "Die Timing-Choreografie könnte kaum deutlicher sein.",
        "Neuer Absatz ohne Punkt",
        "Letzter Satz.",
    ]


def test_hard_wrapped_paragraphs_are_joined() -> None:
    text = (
        "Dieser Absatz wurde bei etwa sechzig Zeichen umbrochen, wie\n"
        "es in Textdateien und E-Mails üblich ist, und der Satz geht\n"
        "hier weiter. Ein zweiter Satz folgt.\n"
    )
    assert sentences_of(text) == [
        "Dieser Absatz wurde bei etwa sechzig Zeichen umbrochen, wie\n"
        "es in Textdateien und E-Mails üblich ist, und der Satz geht\nhier weiter.",
        "Ein zweiter Satz folgt.",
    ]


def test_spans_are_trimmed_offsets_into_the_whole_text() -> None:
    text = "Vorspann.  \n\n   Erster Satz.  Zweiter Satz!   \n"
    start = text.index("Erster")
    spans = split_sentences(text, start - 3, len(text))
    assert [text[a:b] for a, b in spans] == ["Erster Satz.", "Zweiter Satz!"]
    assert spans[0][0] == start


def test_invisible_only_lines_give_no_sentences() -> None:
    assert split_sentences("\u200b\n  \n") == []


# --- chunking the real seeds -------------------------------------------------------------------


@pytest.fixture(scope="module")
def seed_documents(seeds_dir: Path) -> list[Document]:
    found, _ = discover([seeds_dir], seeds_dir.parent)
    return [read_document(path, source, 50 * BYTES_PER_MB) for path, source in found]


def section_of(document: Document, chunk: Chunk) -> Section:
    return next(s for s in document.sections if s.start <= chunk.start < s.end)


def test_seed_sentences_are_ordered_and_cover_all_visible_text(seed_documents: list[Document]) -> None:
    for document in seed_documents:
        spans = split_sentences(document.text)
        assert all(end <= next_start for (_, end), (next_start, _) in itertools.pairwise(spans))
        covered = {offset for start, end in spans for offset in range(start, end)}
        uncovered = {document.text[i] for i in range(len(document.text)) if i not in covered}
        assert all(character.isspace() for character in uncovered)


@pytest.mark.parametrize("max_tokens", [96, 128, 192])
def test_seed_chunks_are_exact_bounded_and_within_sections(
    seed_documents: list[Document], minilm_token_counter: TokenCounter, max_tokens: int
) -> None:
    for document in seed_documents:
        chunks = chunk_document(document, minilm_token_counter, max_tokens, 32)
        assert [chunk.ordinal for chunk in chunks] == list(range(len(chunks)))
        assert len({chunk.id for chunk in chunks}) == len(chunks)
        for chunk in chunks:
            assert document.text[chunk.start : chunk.end] == chunk.text
            assert chunk.text == chunk.text.strip()
            assert 0 < minilm_token_counter(chunk.text) <= max_tokens
            section = section_of(document, chunk)
            assert chunk.end <= section.end and chunk.section == section.kind
            assert chunk.id == chunk_id(document.sha256, chunk.start, chunk.end, max_tokens, 32)
            assert (chunk.title, chunk.outlet, chunk.date) == (document.title, document.outlet, document.date)


def test_every_sentence_lands_in_a_chunk(
    seed_documents: list[Document], minilm_token_counter: TokenCounter
) -> None:
    for document in seed_documents:
        chunks = chunk_document(document, minilm_token_counter, 96, 32)
        covered = {offset for chunk in chunks for offset in range(chunk.start, chunk.end)}
        for section in document.sections:
            for start, end in split_sentences(document.text, section.start, section.end):
                sentence = document.text[start:end]
                if minilm_token_counter(sentence) <= 96:
                    assert any(c.start <= start and end <= c.end for c in chunks), sentence
                else:  # cut into word-aligned parts; together they still cover it
                    assert all(i in covered for i in range(start, end) if not document.text[i].isspace())


def test_overlap_repeats_whole_trailing_sentences_within_budget(
    seed_documents: list[Document], minilm_token_counter: TokenCounter
) -> None:
    overlaps = 0
    for document in seed_documents:
        chunks = chunk_document(document, minilm_token_counter, 128, 32)
        sentence_starts = {start for start, _ in split_sentences(document.text)}
        for previous, current in itertools.pairwise(chunks):
            assert current.start > previous.start
            if previous.section == current.section and current.start < previous.end:
                overlaps += 1
                assert current.start in sentence_starts
                assert minilm_token_counter(document.text[current.start : previous.end]) <= 32
    assert overlaps > 0


def test_all_section_kinds_are_chunked(
    seed_documents: list[Document], minilm_token_counter: TokenCounter
) -> None:
    kinds = {
        chunk.section
        for doc in seed_documents
        for chunk in chunk_document(doc, minilm_token_counter, 128, 32)
    }
    assert kinds == {"body", "comments", "boilerplate"}


def test_chunk_ids_depend_on_settings(
    seed_documents: list[Document], minilm_token_counter: TokenCounter
) -> None:
    document = seed_documents[0]
    first = chunk_document(document, minilm_token_counter, 128, 32)
    assert [c.id for c in chunk_document(document, minilm_token_counter, 128, 32)] == [c.id for c in first]
    assert first[0].id != chunk_document(document, minilm_token_counter, 128, 16)[0].id


# --- over-long sentences ------------------------------------------------------------------------


def test_long_sentence_is_cut_at_word_boundaries(minilm_token_counter: TokenCounter) -> None:
    text = "Kasachstan " + " ".join(f"verhandelt{n} mit Partnern" for n in range(120)) + "."
    chunks = chunk_document(make_document(text), minilm_token_counter, 32, 8)
    assert len(chunks) > 5
    assert " ".join(chunk.text for chunk in chunks) == text  # no overlap inside one sentence, no gaps
    for chunk in chunks:
        assert minilm_token_counter(chunk.text) <= 32
        assert chunk.start == 0 or text[chunk.start - 1] == " "
        assert chunk.end == len(text) or text[chunk.end] == " "


def test_a_giant_word_is_cut_by_characters(minilm_token_counter: TokenCounter) -> None:
    url = "https://example.org/" + "abschnitt-" * 200
    chunks = chunk_document(make_document(f"Siehe {url} dort."), minilm_token_counter, 24, 0)
    assert "".join(chunk.text for chunk in chunks).replace(" ", "") == f"Siehe{url}dort."
    assert all(minilm_token_counter(chunk.text) <= 24 for chunk in chunks)


def test_sections_are_never_crossed(minilm_token_counter: TokenCounter) -> None:
    text = "Erster Satz. Zweiter Satz.\nKommentare (1)\nEin Leser schreibt etwas."
    document = make_document(text)
    chunks = chunk_document(document, minilm_token_counter, 128, 32)
    assert [(chunk.section, chunk.text) for chunk in chunks] == [
        ("body", "Erster Satz. Zweiter Satz."),
        ("comments", "Kommentare (1)\nEin Leser schreibt etwas."),
    ]


@pytest.mark.skipif(not CORPUS.exists(), reason="shared 10kGNAD corpus not present")
def test_news_corpus_sample_chunks_exactly(minilm_token_counter: TokenCounter) -> None:
    lines = CORPUS.read_text(encoding="utf-8").splitlines()[:40]
    for line in lines:
        text = line.split(";", 1)[1].strip().strip("'")
        document = make_document(text)
        chunks = chunk_document(document, minilm_token_counter, 128, 32)
        assert chunks and chunks[0].start == 0
        for chunk in chunks:
            assert document.text[chunk.start : chunk.end] == chunk.text
            assert minilm_token_counter(chunk.text) <= 128
