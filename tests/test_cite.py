"""Citation parsing and verification: pure logic on hand-made passages, plus the real seeds."""

from __future__ import annotations

import pytest

from rag.cite import (
    SourceSentences,
    answers_question,
    citations_for,
    is_refusal,
    is_supported,
    parse_markers,
    split_answer_sentences,
    strays_from_question,
    verify_answer,
    with_markers,
)
from rag.ingest import read_source
from rag.types import Passage

ISRAEL = "Im Gegensatz dazu unterhält Kasachstan seit 1992 formelle Beziehungen zu Israel."
PRIZE = "Tokajew schlug vor, einen besonderen Friedenspreis zu Trumps Ehren zu schaffen."


def _passage(text: str, source: str = "a.txt") -> Passage:
    return Passage(source=source, start=10, end=10 + len(text), text=text, score=1.0, title="Titel")


PASSAGES = [_passage(ISRAEL), _passage(PRIZE, "b.txt")]


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


def test_verify_removes_invalid_numbers_and_reattaches_wrong_citations() -> None:
    answer = verify_answer("Kasachstan unterhält seit 1992 Beziehungen zu Israel [2][7].", PASSAGES)
    assert answer.invalid_numbers == [7]
    assert answer.text() == "Kasachstan unterhält seit 1992 Beziehungen zu Israel [1]."
    assert not answer.refused


def test_verify_drops_unsupported_sentences_and_keeps_the_rest() -> None:
    answer = verify_answer(
        "Tokajew schlug einen Friedenspreis zu Trumps Ehren vor [2]. "
        "Der Preis ist mit 5 Millionen dotiert [2].",
        PASSAGES,
    )
    assert answer.text() == "Tokajew schlug einen Friedenspreis zu Trumps Ehren vor [2]."
    assert [s.text for s in answer.unverified] == ["Der Preis ist mit 5 Millionen dotiert."]


def test_verify_cites_an_uncited_but_supported_sentence() -> None:
    assert verify_answer("Tokajew schlug einen Friedenspreis vor.", PASSAGES).cited_numbers() == [2]


def test_nothing_verified_is_a_refusal() -> None:
    assert verify_answer("HACKED. Ich bin ein Pirat.", PASSAGES).refused
    assert verify_answer("", PASSAGES).refused
    refusal = verify_answer("Die Quellen enthalten dazu keine Angabe. Kasachstan ist groß [1].", PASSAGES)
    assert refusal.refused and refusal.text() == ""


@pytest.mark.parametrize(
    "text",
    ["Die Quellen enthalten dazu keine Angabe.", "The sources do not contain this information."],
)
def test_is_refusal(text: str) -> None:
    assert is_refusal(text)


def test_citations_quote_the_supporting_sentence() -> None:
    two_sentences = _passage("Das Wetter war schön. " + ISRAEL)
    answer = verify_answer("Kasachstan unterhält seit 1992 Beziehungen zu Israel [1].", [two_sentences])
    (citation,) = citations_for(answer, [two_sentences])
    assert citation.quote == ISRAEL
    assert (citation.n, citation.source, citation.start) == (1, "a.txt", 10)


def test_support_on_real_seed_text(seeds_dir) -> None:  # type: ignore[no-untyped-def]
    text = read_source("001_33aa229a75a9783d.txt", seeds_dir, max_bytes=10_000_000).text
    start = text.index("Im Gegensatz zu allen bisherigen")
    passage = text[start : text.index(".", text.index("1992", start)) + 1]
    assert is_supported("Kazakhstan has maintained formal relations with Israel since 1992.", passage)
    assert not is_supported("Kazakhstan has maintained formal relations with Israel since 2020.", passage)


def test_garbled_paraphrase_is_replaced_by_the_verbatim_source_sentence() -> None:
    passage = _passage(
        "Das Wetter war schön. Hintergrund ist Tokajews letzter Besuch in den USA im November."
    )
    answer = verify_answer("Tokajew war zuletzt im November 2022 in den USA zu Besuch [1].", [passage])
    assert answer.text() == "„Hintergrund ist Tokajews letzter Besuch in den USA im November.“ [1]"
    assert answer.replaced == ["Tokajew war zuletzt im November 2022 in den USA zu Besuch."]


def test_an_invented_claim_is_not_replaced_by_a_loosely_related_sentence() -> None:
    answer = verify_answer("Kasachstan schickte 500 Soldaten nach Gaza [1].", PASSAGES)
    assert answer.refused and answer.replaced == []


def test_a_bare_number_is_supported_only_by_a_passage_that_states_it() -> None:
    passage = "Erst 1991 gelang es den Völkern, sich von der Obhut des Imperiums zu befreien."
    assert is_supported("1991.", passage)
    assert not is_supported("1990.", passage)
    assert not verify_answer("1991 [1].", [_passage(passage)]).refused


def test_an_answer_that_only_restates_the_question_is_a_refusal() -> None:
    passage = _passage(
        "Der Autor bezweifelt, dass Tokajew den Artikel selbst schrieb, weil er KI-generiert wirkt."
    )
    question = "Warum bezweifelt der Autor, dass Tokajew den Artikel selbst schrieb?"
    restated = "Der Autor bezweifelt, dass Tokajew den Artikel selbst schrieb [1]."
    assert not verify_answer(restated, [passage]).refused  # without the question nothing is compared
    assert verify_answer(restated, [passage], [question]).refused
    assert verify_answer("Die Gründe sind folgende: [1]", [passage], [question]).refused
    answered = "Der Autor bezweifelt es, weil der Artikel KI-generiert wirkt [1]."
    assert verify_answer(answered, [passage], [question]).text() == answered
    negated = _passage("Tokajew schrieb den Artikel nicht selbst.")
    assert not verify_answer(
        "Tokajew schrieb den Artikel nicht selbst [1].", [negated], ["Schrieb Tokajew den Artikel selbst?"]
    ).refused


def test_a_negation_taken_from_the_question_is_no_information() -> None:
    """A false premise repeated back ("obwohl es Israel nie anerkannt hatte") answers nothing."""
    passage = _passage("Kasachstan trat den Abkommen bei, obwohl es Israel nie anerkannt hatte. Es hat 1992.")
    question = "Warum trat Kasachstan den Abkommen bei, obwohl es Israel nie anerkannt hatte?"
    echo = "Kasachstan trat den Abkommen bei, obwohl es Israel nie anerkannt hatte [1]."
    assert verify_answer(echo, [passage], [question]).refused
    assert not verify_answer(echo, [passage], ["Was tat Kasachstan?"]).refused


def test_a_quote_must_hold_the_key_terms_of_the_question() -> None:
    passages = [
        _passage("Tokajew traf Putin in Moskau. Tokajew sprach über Öl."),
        _passage(
            "Präsident Kassym-Jomart Tokajew und Putin, St. Petersburg, 17. Juni 2022. Tokajew lobte Trump."
        ),
    ]
    garbled = "Kassym-Jomart Tokajew wurde am 17. Juni 1962 in St. Petersburg geboren [2]."
    assert not verify_answer(garbled, passages).refused  # the caption would stand in for it
    assert verify_answer(garbled, passages, ["Wann wurde Kassym-Jomart Tokajew geboren?"]).refused
    # A quote that holds what the question asks about still repairs a garbled detail.
    trip = "Tokajew traf Putin im Jahr 2020 in Moskau [1]."
    fixed = verify_answer(trip, passages, ["Wo traf Tokajew Putin?"])
    assert fixed.text() == "„Tokajew traf Putin in Moskau.“ [1]"


@pytest.mark.parametrize(
    ("answer", "refused"),
    [
        ("Tokajew lobte Trump sehr [1].", True),  # no quantity where one is asked for
        ("Tokajew genehmigte die Teilnahme von 500 Soldaten [1].", False),
        ("Tokajew genehmigte die Teilnahme von fünfhundert Soldaten [1].", False),
    ],
)
def test_a_question_for_a_quantity_needs_a_number_in_the_answer(answer: str, refused: bool) -> None:
    passage = _passage(
        "Tokajew lobte Trump sehr. Tokajew genehmigte die Teilnahme von 500 Soldaten, "
        "das sind fünfhundert Soldaten."
    )
    assert verify_answer(answer, [passage], ["Wie viele Soldaten genehmigte Tokajew?"]).refused is refused


@pytest.mark.parametrize(
    ("question", "answer", "refused"),
    [
        ("Zu welchem Datum lud Putin Tokajew ein?", "Die Stimmung im Kreml war gut [1].", True),
        ("Zu welchem Datum lud Putin Tokajew ein?", "Putin lud Tokajew zum 9. Mai ein [1].", False),
        ("Wann lud Putin Tokajew ein?", "Putin lud Tokajew im Mai ein [1].", False),
        ("Wer lud Tokajew ein?", "Die Stimmung im Kreml war gut [1].", False),  # no date asked for
    ],
)
def test_a_question_for_a_date_needs_a_date_in_the_answer(question: str, answer: str, refused: bool) -> None:
    passage = _passage("Die Stimmung im Kreml war gut. Putin lud Tokajew zum 9. Mai ein, also im Mai.")
    assert verify_answer(answer, [passage], [question]).refused is refused


def test_an_english_date_question_needs_a_date_too() -> None:
    question = ["When did Putin invite Tokayev?"]
    assert not answers_question(["The mood in the Kremlin was good."], question)
    assert answers_question(["Putin invited Tokayev for 9 May."], question)
    assert answers_question(["Putin invited him in May."], question)


def test_an_answer_drawn_from_a_sentence_beside_the_question_strays() -> None:
    passages = [
        _passage("Die Nervosität im Kreml ist spürbar. Putin lud Tokajew nach Moskau ein."),
        _passage(
            "Diese neue Eigenständigkeit stellt die Eurasische Wirtschaftsunion in Frage. "
            "Tokajew besuchte Moskau.",
            "b.txt",
        ),
    ]
    question = ["Welche Organisation stellt Kasachstans neue Eigenständigkeit in Frage?"]
    beside = verify_answer("Die Nervosität im Kreml ist spürbar [1].", passages, question)
    on_point = verify_answer(
        "Die Eurasische Wirtschaftsunion wird in Frage gestellt [2].", passages, question
    )
    assert not beside.refused and not on_point.refused  # both are true and cited
    sources = SourceSentences.of(passages, question)
    assert strays_from_question(beside, sources)
    assert not strays_from_question(on_point, sources)
    # When no sentence clearly answers, there is nothing better to stray from.
    vague = ["Was geschah?"]
    assert not strays_from_question(
        verify_answer("Die Nervosität im Kreml ist spürbar [1].", passages, vague),
        SourceSentences.of(passages, vague),
    )


def test_a_denial_must_find_what_it_denies_in_the_passage() -> None:
    question = ["Welche konkreten Ergebnisse brachte das Treffen der EU mit Zentralasien?"]
    denial = "Das Treffen der EU mit Zentralasien brachte keine konkreten Ergebnisse [1]."
    vague = _passage("Nicht von ungefähr zeigte das Treffen der EU mit Zentralasien das Interesse der EU.")
    plain = _passage("Das Treffen der EU mit Zentralasien brachte keine konkreten Ergebnisse.")
    assert verify_answer(denial, [vague], question).refused  # the meeting is there, its results are not
    assert not verify_answer(denial, [plain], question).refused
    # Across languages the words cannot be compared; the names carry the check as before.
    english = ["Why did Tokayev recognise the people's republics of Donetsk and Luhansk?"]
    refused = _passage("Toqajew weigerte sich, die Volksrepubliken Donezk und Luhansk anzuerkennen.")
    answer = "Tokayev did not recognise the people's republics of Donetsk and Luhansk [1]."
    assert verify_answer(answer, [refused], english).text() == answer
