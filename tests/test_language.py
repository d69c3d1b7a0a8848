"""Question language detection (German or English)."""

import pytest

from rag.text.language import detect_language


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
