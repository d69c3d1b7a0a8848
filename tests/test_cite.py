"""Citation markers and the support check: pure logic on hand-made passages, plus the real seeds."""

from __future__ import annotations

import pytest

from rag.answering.cite import (
    adds_information,
    is_refusal,
    is_supported,
    only_negates,
    parse_markers,
    split_answer_sentences,
    states_denied,
    with_markers,
)
from rag.ingest.read import read_source

ISRAEL = "Im Gegensatz dazu unterhält Kasachstan seit 1992 formelle Beziehungen zu Israel."


def test_split_keeps_dates_and_abbreviations_and_moves_markers() -> None:
    text = "Am 20. Februar 2026 sprach er, z. B. über Öl. [1] Danach ging er [2]."
    assert split_answer_sentences(text) == [
        "Am 20. Februar 2026 sprach er, z. B. über Öl [1].",
        "Danach ging er [2].",
    ]


def test_parse_markers_handles_lists_and_repeats() -> None:
    assert parse_markers("Kasachstan erkannte Israel an [1, 2][2].") == (
        "Kasachstan erkannte Israel an.",
        [1, 2],
    )


def test_with_markers_puts_markers_before_the_full_stop() -> None:
    assert with_markers("Es ist so.", [1, 3]) == "Es ist so [1][3]."
    assert with_markers("Es ist so", []) == "Es ist so"


@pytest.mark.parametrize(
    ("sentence", "supported"),
    [
        ("Kasachstan unterhält seit 1992 Beziehungen zu Israel.", True),
        ("Kazakhstan has had formal relations with Israel since 1992.", True),  # English, variant name
        ("Kasachstan unterhält seit 1993 Beziehungen zu Israel.", False),  # wrong number
        ("Usbekistan unterhält seit 1992 Beziehungen zu Israel.", False),  # wrong name
        ("Das Wetter war schön.", False),  # unrelated
    ],
)
def test_is_supported(sentence: str, supported: bool) -> None:
    assert is_supported(sentence, ISRAEL) is supported


@pytest.mark.parametrize(
    "text",
    ["Die Quellen enthalten dazu keine Angabe.", "The sources do not contain this information."],
)
def test_is_refusal(text: str) -> None:
    assert is_refusal(text)


def test_support_on_real_seed_text(seeds_dir) -> None:  # type: ignore[no-untyped-def]
    text = read_source("001_33aa229a75a9783d.txt", seeds_dir, max_bytes=10_000_000).text
    start = text.index("Im Gegensatz zu allen bisherigen")
    passage = text[start : text.index(".", text.index("1992", start)) + 1]
    assert is_supported("Kazakhstan has maintained formal relations with Israel since 1992.", passage)
    assert not is_supported("Kazakhstan has maintained formal relations with Israel since 2020.", passage)


def test_a_bare_number_is_supported_only_by_a_passage_that_states_it() -> None:
    passage = "Erst 1991 gelang es den Völkern, sich von der Obhut des Imperiums zu befreien."
    assert is_supported("1991.", passage)
    assert not is_supported("1990.", passage)


def test_an_answer_that_only_restates_the_question_adds_nothing() -> None:
    question = ["Warum bezweifelt der Autor, dass Tokajew den Artikel selbst schrieb?"]
    assert not adds_information(["Der Autor bezweifelt, dass Tokajew den Artikel selbst schrieb."], question)
    assert not adds_information(["Die Gründe sind folgende:"], question)
    assert adds_information(["Der Autor bezweifelt es, weil der Artikel KI-generiert wirkt."], question)
    assert adds_information(
        ["Tokajew schrieb den Artikel nicht selbst."], ["Schrieb Tokajew den Artikel selbst?"]
    )


def test_a_negation_taken_from_the_question_is_no_information() -> None:
    """A false premise repeated back ("obwohl es Israel nie anerkannt hatte") answers nothing."""
    question = ["Warum trat Kasachstan den Abkommen bei, obwohl es Israel nie anerkannt hatte?"]
    echo = "Kasachstan trat den Abkommen bei, obwohl es Israel nie anerkannt hatte."
    assert not adds_information([echo], question)
    assert adds_information([echo], ["Was tat Kasachstan?"])


def test_a_denial_must_find_what_it_denies() -> None:
    question = ["Welche konkreten Ergebnisse brachte das Treffen der EU mit Zentralasien?"]
    denial = "Das Treffen der EU mit Zentralasien brachte keine konkreten Ergebnisse."
    assert only_negates(denial, question)
    assert not only_negates("Das Treffen brachte einen Vertrag über Gas.", question)
    vague = "Nicht von ungefähr zeigte das Treffen der EU mit Zentralasien das Interesse der EU."
    assert not states_denied(denial, vague)  # the meeting is there, its results are not
    assert states_denied(denial, denial)
    # Across languages the words cannot be compared; the names carry the check as before.
    english = "Tokayev did not recognise the people's republics of Donetsk and Luhansk."
    assert states_denied(
        english, "Toqajew weigerte sich, die Volksrepubliken Donezk und Luhansk anzuerkennen."
    )
