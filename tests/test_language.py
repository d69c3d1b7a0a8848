"""Question language detection (German or English)."""

import pytest

from rag.errors import InputError
from rag.text.language import _wide_detector, detect_language, question_language


@pytest.mark.parametrize(
    ("question", "language"),
    [
        ("Wann erkannte Kasachstan Israel an?", "de"),
        ("Wer ist Toqajew?", "de"),
        ("Und was sagte Lawrow dazu?", "de"),
        ("Was sagte Lawrow?", "de"),
        ("When did Kazakhstan recognize Israel?", "en"),
        ("Who is Tokayev?", "en"),
        ("Was Tokayev in Washington in November?", "en"),
        ("Tokajew und Trump: worum ging es beim Gipfel?", "de"),
        ("Kazakhstan and Israel: how long have they had relations?", "en"),
    ],
)
def test_detect_language(question: str, language: str) -> None:
    assert detect_language(question) == language


@pytest.mark.parametrize(
    ("question", "language"),
    [
        ("Quand le Kazakhstan a-t-il établi des relations avec Israël?", "French"),
        ("Was Kazachstan in 1992 al een partner van Israël, en wat werd er toen besloten?", "Dutch"),
        (
            "Hvornår indledte Kasakhstan diplomatiske forbindelser med Israel, og hvad er der sket siden?",
            "Danish",
        ),
        ("Od kiedy Kazachstan utrzymuje stosunki z Izraelem?", "Polish"),
    ],
)
def test_questions_plainly_in_other_latin_languages_are_refused(question: str, language: str) -> None:
    with pytest.raises(InputError, match=language):
        question_language(question)


def test_plainly_german_or_english_questions_do_not_load_the_wide_detector() -> None:
    _wide_detector.cache_clear()
    question_language.cache_clear()
    for question, language in (
        ("Was schlug Tokajew während der ersten Sitzung des Friedensrats vor?", "de"),
        ("Der wievieltgrößte Nachfolgestaat der Sowjetunion ist Kasachstan laut Tichys Einblick?", "de"),
        ("Kazakhstan's relations with Israel: what has the article said about them?", "en"),
    ):
        assert question_language(question) == language
    assert _wide_detector.cache_info().currsize == 0
    assert question_language("Wovon schwärmen die russischen Staatsmedien laut dem Artikel?") == "de"
    assert _wide_detector.cache_info().currsize == 1  # one marker only: lingua decides, and passes it
