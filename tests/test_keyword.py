"""Keyword side: German analysis, name folding across transliterations, and the real BM25 index."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from rag.index.keyword import KeywordIndex, analyze, answer_terms, matching_spans, phonetic_key
from rag.types import Chunk


def _chunk(chunk_id: str, text: str) -> Chunk:
    return Chunk(
        id=chunk_id,
        source="doc.txt",
        start=0,
        end=len(text),
        text=text,
        section="body",
        ordinal=0,
        doc_sha256="x",
        title="t",
    )


def test_analyze_stems_and_drops_stop_words() -> None:
    terms = analyze("Die Beziehungen und der Präsident")
    assert "bezieh" in terms and "prasident" in terms
    assert "die" not in terms and "und" not in terms and "der" not in terms


@pytest.mark.parametrize(
    "variants",
    [
        ("Tokajew", "Toqajew", "Toqaev", "Tokayev", "Tokajews"),
        ("Kasachstan", "Kazakhstan", "Kasachstans"),
        ("Selenskyj", "Zelensky", "Selenskyjs"),
        ("Lawrow", "Lavrov"),
    ],
)
@pytest.mark.parametrize("terms", [analyze, answer_terms])
def test_name_variants_share_a_phonetic_term(
    variants: tuple[str, ...], terms: Callable[[str], list[str]]
) -> None:
    keys = [{t for t in terms(name) if t.startswith("~")} for name in variants]
    assert all(k == keys[0] and k for k in keys), keys


@pytest.mark.parametrize("pair", [("Flagge", "Folgen"), ("Vorgang", "Vergangenheit"), ("Titel", "Detail")])
def test_onset_keys_keep_words_that_only_sound_alike_apart(pair: tuple[str, str]) -> None:
    """Plain keys fold these (Kölner Phonetik codes only consonants); answer-time keys must not."""
    plain = [{t for t in analyze(word) if t.startswith("~")} for word in pair]
    onset = [{t for t in answer_terms(word) if t.startswith("~")} for word in pair]
    assert plain[0] & plain[1]
    assert not onset[0] & onset[1]


def test_short_words_get_no_phonetic_key() -> None:
    assert phonetic_key("USA") == ""
    assert phonetic_key("2026") == ""


def test_real_index_finds_variant_spelling_and_exact_beats_variant(tmp_path: Path) -> None:
    chunks = [
        _chunk("exact", "Präsident Tokayev besuchte Washington im November."),
        _chunk("variant", "Präsident Tokajew besuchte Moskau im Oktober."),
        _chunk("other", "Die Bundesregierung beschloss ein neues Gesetz zur Solarenergie."),
    ]
    KeywordIndex.build(chunks).save(tmp_path / "bm25")
    index = KeywordIndex.load(tmp_path / "bm25")
    hits = index.search("Tokayev", k=3)
    assert [chunk_id for chunk_id, _ in hits] == ["exact", "variant"]
    assert hits[0][1] > hits[1][1] > 0
    assert index.search("Tokayev", k=3, allowed_ids={"variant", "other"})[0][0] == "variant"
    assert index.search("Quantenphysik", k=3) == []


def test_empty_index_round_trips(tmp_path: Path) -> None:
    KeywordIndex.build([]).save(tmp_path / "bm25")
    assert KeywordIndex.load(tmp_path / "bm25").search("Tokajew", k=5) == []


def test_matching_spans_highlight_inflected_and_variant_words() -> None:
    text = "Kasachstans Präsident Toqajew sprach."
    spans = [text[a:b] for a, b in matching_spans("Kazakhstan Tokayev", text)]
    assert spans == ["Kasachstans", "Toqajew"]
