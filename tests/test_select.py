"""Evidence-first answering, the stages before the model: candidate sentences and their selection.

Pure logic (answer types, key-term weights) is tested on small strings; the selection
itself runs on the real seed index with the real multilingual encoder, and every
chosen span is checked against the source file.
"""

from __future__ import annotations

from itertools import pairwise
from typing import TYPE_CHECKING

import pytest

from rag.answering.evidence import continues, refers_back
from rag.answering.pipeline import Pipeline
from rag.answering.question_kinds import answer_type, can_state, question_parts
from rag.answering.select import KeyTerms, question_coverages, select_evidence
from rag.answering.sentences import candidate_sentences, continued, widened
from rag.ingest.read import decode_file
from rag.types import Chunk, Passage

if TYPE_CHECKING:
    from conftest import SeedIndex

    from rag.answering.select import Selection
    from rag.index.embed import Embedder


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("Wie viele Abkommen unterzeichnete Tokajew?", "quantity"),
        ("How much does a grenade cost?", "quantity"),
        ("Seit wann unterhält Kasachstan Beziehungen zu Israel?", "date"),
        ("In welchem Jahr fand der Gipfel statt?", "date"),
        ("When did Kazakhstan join the Abraham Accords?", "date"),
        ("Wer hat den Artikel geschrieben, und an welchem Tag erschien er?", "byline"),
        ("Who wrote the article about Tokayev?", "byline"),
        ("Welchen Titel trägt der Artikel, der in The National Interest veröffentlicht wurde?", "any"),
        ("Warum reiste Vance in den Südkaukasus?", "any"),
        ("Wer ist der Autor des Artikels über Tokajew?", "byline"),
        ("Who is the author of the article about Tokayev?", "byline"),
        ("Welchen Autor lobt der Leser in seinem Kommentar?", "any"),
        ("Und was sagte er über territoriale Fragen?", "speech"),
        ("What did Mohammed bin Salman say about the Abraham Accords?", "speech"),
        ("Wie bezeichnete Putin den Moment des Besuchs?", "speech"),
        ("Was sagte Tokajew in Moskau?", "speech"),
        ("Why does the author doubt that Tokayev wrote the article?", "any"),
        ("Wie lange dauerte Tokajews Staatsbesuch in Moskau?", "duration"),
        ("How long did the state visit last?", "duration"),
    ],
)
def test_answer_type(question: str, kind: str) -> None:
    assert answer_type(question) == kind


def test_a_number_from_the_question_states_no_quantity() -> None:
    question = "How many soldiers were sent in January 2022?"
    assert not can_state("quantity", "Russian troops came in January 2022.", question)
    assert can_state("quantity", "About 2,000 troops came in January 2022.", question)
    assert can_state("quantity", "Es kamen zwölf Tage später Truppen.", "Wie viele Tage?")
    assert can_state("date", "Das geschah im Herbst.", "Wann geschah das?")
    assert not can_state("date", "Das geschah in Moskau.", "Wann geschah das?")


def test_one_unit_of_time_states_a_duration_but_no_quantity() -> None:
    sentence = "Nur eine Woche nach dem Gipfel rollt Putin den roten Teppich aus."
    assert can_state("duration", sentence) and not can_state("quantity", sentence)
    assert can_state("duration", "Der zweitägige Staatsbesuch sendet ein Signal.")
    assert not can_state("duration", "Eine Reise nach Moskau.")


@pytest.mark.parametrize(
    ("question", "parts"),
    [
        (
            "In welchem Jahr fand der Gipfel statt, und wie lange danach empfing Putin Tokajew?",
            ["In welchem Jahr fand der Gipfel statt", "wie lange danach empfing Putin Tokajew?"],
        ),
        (
            "Which force did Tokayev's troops join, and where is it to be deployed?",
            ["Which force did Tokayev's troops join", "where is it to be deployed?"],
        ),
        # One event asked about twice, and "und" inside one part: no split.
        ("Wann und wo wurde das Foto aufgenommen?", ["Wann und wo wurde das Foto aufgenommen?"]),
        ("Welche Länder besuchten Vance und Trump?", ["Welche Länder besuchten Vance und Trump?"]),
    ],
)
def test_a_question_splits_into_parts_before_and_and_a_question_word(question: str, parts: list[str]) -> None:
    assert question_parts(question) == parts


def test_rare_key_terms_weigh_more_than_the_subject_named_everywhere() -> None:
    sentences = [
        "Tokajew traf Putin.",
        "Tokajew wurde 1953 in Moskau geboren.",
        "Tokajew sprach in Astana.",
        "Tokajew reiste nach Washington.",
    ]
    from rag.index.keyword import answer_terms

    terms = [set(answer_terms(s)) for s in sentences]
    keys = KeyTerms.of("Wann wurde Tokajew geboren?", terms)
    weight = {
        next(t for t in words if not t.startswith("~")): w
        for words, w in zip(keys.words, keys.weights, strict=True)
    }
    assert weight["gebor"] > weight["tokajew"]
    coverages = question_coverages("Wann wurde Tokajew geboren?", terms)
    assert coverages.index(max(coverages)) == 1 and coverages[1] == 1.0
    # Without key terms nothing tells sentences apart.
    assert question_coverages("Wann?", terms) == [1.0] * 4


def _select(pipeline: Pipeline, question: str, k: int = 5) -> tuple[Selection, list[Passage], list[Passage]]:
    retriever = pipeline.retriever
    found = pipeline.search(question, k=k)
    headings = retriever.headings(found)
    selection = select_evidence(
        [retriever.without_names(question)],
        question,
        candidate_sentences(found, headings),
        pipeline.multilingual,
        kind_question=question,  # as `ask` passes it: the question as asked
    )
    return selection, found, headings


@pytest.fixture(scope="module")
def pipeline(seed_index_template: SeedIndex, minilm: Embedder, multilingual: Embedder) -> Pipeline:
    return Pipeline(
        seed_index_template.settings, embedder=minilm, multilingual=multilingual, cwd=seed_index_template.cwd
    )


def _exact(pipeline: Pipeline, source: str, start: int, end: int, text: str) -> bool:
    document = decode_file(pipeline.cwd / source, 10**8)
    return document[start:end] == text


def test_candidates_are_exact_slices_and_include_the_headings(pipeline: Pipeline) -> None:
    found = pipeline.search("Welche Trumpfkarte hat Toqajew gegenüber Russland im Ärmel?")
    headings = pipeline.retriever.headings(found)
    candidates = candidate_sentences(found, headings)
    assert len(candidates) > len(found)
    for candidate in candidates:
        assert _exact(pipeline, candidate.source, candidate.start, candidate.end, candidate.text)
    headings_of = [c.source for c in candidates if c.heading]
    assert sorted(headings_of) == sorted({p.source for p in found})  # one heading per article
    assert all(c.passage > len(found) for c in candidates if c.heading)
    shown = [*found, *headings]
    wide = widened(next(c for c in candidates if c.next_end), shown, before=True)
    assert _exact(pipeline, wide.source, wide.start, wide.end, wide.text)


def test_the_sentence_that_answers_is_chosen_and_copied_exactly(pipeline: Pipeline) -> None:
    selection, _, _ = _select(pipeline, "Seit wann unterhält Kasachstan formelle Beziehungen zu Israel?")
    best = selection.chosen[0].candidate
    assert "1992" in best.text and selection.answer_type == "date"
    assert _exact(pipeline, best.source, best.start, best.end, best.text)
    assert 0.5 < selection.confidence <= 1.0


def test_a_byline_question_is_answered_by_the_heading(pipeline: Pipeline) -> None:
    question = "Wer hat den Artikel über Kasachstans Präsidenten und Trump geschrieben, und wann erschien er?"
    selection, _, _ = _select(pipeline, question)
    best = selection.chosen[0].candidate
    assert best.heading and "Korybko" in best.text and "2026" in best.text


def test_a_quantity_that_no_relevant_sentence_states_empties_the_selection(pipeline: Pipeline) -> None:
    selection, _, _ = _select(
        pipeline, "Wie viel kostet eine in Kasachstan hergestellte Granate nach NATO-Standard?"
    )
    assert selection.empty and selection.answer_type == "quantity"
    assert selection.ranked and not any(s.fits for s in selection.ranked)


def test_a_two_part_question_gets_a_sentence_from_each_article(pipeline: Pipeline) -> None:
    question = (
        "Wie viele Abkommen unterzeichnete Tokajew bei seinem Besuch in Washington, "
        "und welchen Friedenspreis schlug er zu Trumps Ehren vor?"
    )
    selection, _, _ = _select(pipeline, question)
    texts = " ".join(s.candidate.text for s in selection.chosen)
    assert len(selection.chosen) == 2 and "29" in texts and "Friedenspreis" in texts
    assert selection.chosen[0].candidate.source != selection.chosen[1].candidate.source


def test_each_open_part_of_a_question_gets_its_own_sentence(pipeline: Pipeline) -> None:
    """The date comes from one article, the length of the visit from another (evals/ q073)."""
    question = (
        "Zu welchem Datum hatte Putin Tokajew nach Moskau eingeladen, "
        "und wie lange dauerte Tokajews Staatsbesuch in Moskau nach dem C5+1-Gipfel?"
    )
    selection, _, _ = _select(pipeline, question)
    assert selection.parts == 2 and len(selection.chosen) == 2
    first, second = (s.candidate for s in selection.chosen)
    assert "9. Mai" in first.text and "zweitägige" in second.text
    for chosen in (first, second):
        assert _exact(pipeline, chosen.source, chosen.start, chosen.end, chosen.text)


def test_a_part_that_no_sentence_states_is_reported_open(pipeline: Pipeline) -> None:
    """The first part is asked first, but only the second is stated: the second is still answered."""
    question = (
        "Wie viel kostet eine in Kasachstan hergestellte Granate nach NATO-Standard, "
        "und wie viele Abkommen unterzeichnete Tokajew in Washington?"
    )
    selection, _, _ = _select(pipeline, question)
    assert [s.candidate.text for s in selection.chosen if "29 Abkommen" in s.candidate.text]
    unstated = "Wie viel kostet eine in Kasachstan hergestellte Granate nach NATO-Standard"
    assert selection.open_parts == (unstated,)


def _as_passage(chunk: Chunk) -> Passage:
    return Passage(chunk.source, chunk.start, chunk.end, chunk.text, 1.0, chunk.title, chunk.section)


def test_a_passage_continues_into_the_chunk_that_overlaps_its_end(pipeline: Pipeline) -> None:
    """A chunk boundary inside a paragraph: the sentence after the passage can widen a quote."""
    retriever = pipeline.retriever
    pairs = [pair for chunks in retriever.reader.chunks_by_source.values() for pair in pairwise(chunks)]
    first, _ = next((a, b) for a, b in pairs if b.start < a.end < b.end and a.section == b.section)
    passage = _as_passage(first)
    (sequel,) = retriever.sequels([passage])
    longer = continued(passage, sequel)
    assert longer.end > passage.end and longer.text.startswith(passage.text)
    assert _exact(pipeline, longer.source, longer.start, longer.end, longer.text)
    candidates = candidate_sentences([longer], own_ends=[passage.end])
    assert candidates and all(c.start < passage.end for c in candidates)  # the added sentence only widens
    assert candidates[-1].next_end == longer.end
    # Across a paragraph break chunks do not overlap, and the break is not in the index.
    apart, _ = next((a, b) for a, b in pairs if b.start > a.end)
    assert retriever.sequels([_as_passage(apart)]) == [None]


@pytest.mark.parametrize(
    ("sentence", "back"),
    [
        ('"Mit diesem Strom betreiben wir den Schredder", sagt Hanisch.', True),
        ("Damit endete der Besuch.", True),
        ("This was the first visit.", True),
        ("Allein im vergangenen Jahr wurde es zweimal bombardiert.", True),
        ("Wie sehen Sie das Geschäft mit den Sendernetzen?", False),
        ("Das Buch mit dem Titel «Die Erfindung» gewann.", False),
        ("Tokajew reiste nach Moskau.", False),
    ],
)
def test_a_sentence_that_points_back_is_recognised(sentence: str, back: bool) -> None:
    assert refers_back(sentence) is back


@pytest.mark.parametrize(
    ("sentence", "carries_on"),
    [
        ("Denn Kasachstan steht auf der Liste.", True),
        ("Und das ausgerechnet mit der Begründung der Selbstbestimmung.", True),
        ("Zweitens lebt dort eine große russische Minderheit.", True),
        ("Because the border is long.", True),
        ("Dennoch reiste er.", False),
        ("Das Land unterhält Beziehungen zu Israel.", False),
    ],
)
def test_a_sentence_that_carries_on_the_one_before_is_recognised(sentence: str, carries_on: bool) -> None:
    assert continues(sentence) is carries_on


def test_what_somebody_said_is_answered_by_reported_speech_only(pipeline: Pipeline) -> None:
    assert can_state("speech", "„Dann ist alles möglich“, sagte Putin.")
    assert can_state("speech", "Er sei bereit, Truppen zu schicken.")
    assert not can_state("speech", "Putin schickte Truppen nach Kasachstan.")
    selection, _, _ = _select(pipeline, "Was sagte Putin über territoriale Fragen?")
    assert selection.answer_type == "speech"
    assert "territorialen Fragen" in selection.chosen[0].candidate.text
    assert all(can_state("speech", s.candidate.text) for s in selection.ranked if s.fits)
    assert any(not s.fits for s in selection.ranked)  # sentences without speech are out of the running
