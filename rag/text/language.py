"""Which language a question is in: German or English, the two the tool answers in.

A question's first words are a strong, cheap signal (Wer/Wann/Warum vs Who/When/Why);
when it is not decisive, lingua restricted to German and English decides. Anything
that is not clearly English is treated as German, the language of the corpus.

`question_language` also refuses, in one line, a question that is plainly in another
language: one written mostly in another script (Cyrillic, Chinese, Arabic, …), or a
Latin-script one of at least three words that lingua, choosing among German, English
and the common other Latin-script languages, puts in another language with high
confidence. Short or name-only questions ("Kasachstan Israel 1992") always pass, and so
do questions with two German or English function words that the other languages lack
(most questions: then lingua's wide model is never loaded).
Left out: answering in other languages.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache, lru_cache
from typing import Any, Literal

from rag.errors import InputError

Language = Literal["de", "en"]

_GERMAN_OPENERS = frozenset(
    [
        "wer",
        "wann",
        "wie",
        "warum",
        "wo",
        "welche",
        "welcher",
        "welches",
        "welchen",
        "welchem",
        "weshalb",
        "wieso",
        "woher",
        "wohin",
        "wem",
        "wen",
        "wessen",
        "inwiefern",
        "worum",
        "wozu",
        "womit",
        "wofür",
        "woran",
        "worüber",
        "und",
        "nenne",
        "nennt",
        "gibt",
        "hat",
        "haben",
        "ist",
        "sind",
        "seit",
        "stimmt",
        "trifft",
        "kann",
        "konnte",
        "wurde",
        "wurden",
        "war",
        "waren",
    ]
)
_ENGLISH_OPENERS = frozenset(
    [
        "who",
        "when",
        "how",
        "why",
        "where",
        "which",
        "what",
        "does",
        "did",
        "do",
        "is",
        "are",
        "has",
        "have",
        "and",
        "according",
        "list",
        "since",
        "whom",
        "whose",
        "can",
        "could",
        "will",
        "would",
        "were",
        "tell",
    ]
)


@cache
def _detector() -> Any:
    from lingua import Language as LinguaLanguage
    from lingua import LanguageDetectorBuilder

    return LanguageDetectorBuilder.from_languages(LinguaLanguage.GERMAN, LinguaLanguage.ENGLISH).build()


@lru_cache(maxsize=1024)
def detect_language(text: str) -> Language:
    """'en' when the text reads as English, else 'de'.

    Cached: verification asks about the same passage once per answer sentence.
    """
    for word in re.findall(r"\w+", text)[:3]:  # "In welchem …": the first telling word decides
        if word.casefold() in _GERMAN_OPENERS:
            return "de"
        if word.casefold() in _ENGLISH_OPENERS:
            return "en"
    from lingua import Language as LinguaLanguage

    return "en" if _detector().detect_language_of(text) == LinguaLanguage.ENGLISH else "de"


# Other Latin-script languages a question may come in; lingua chooses among these, German and English.
_OTHER_LATIN_LANGUAGES = (
    "FRENCH", "SPANISH", "ITALIAN", "PORTUGUESE", "DUTCH", "POLISH", "TURKISH", "SWEDISH", "DANISH",
    "BOKMAL", "FINNISH", "CZECH", "SLOVAK", "HUNGARIAN", "ROMANIAN", "CROATIAN", "INDONESIAN", "VIETNAMESE",
)  # fmt: skip
_MIN_WORDS_TO_REFUSE = 3
# Function words of German or English that the other Latin-script languages above do not
# use as words (so not "die", "der", "den", "dem", "des", "das", "als", "of", "in", "is",
# "mit", "for", "her", "werden", which some of them share). Two different ones make a
# question plainly German or English, and the wide detector, whose first use loads the
# n-gram models of 20 languages (3.4 s and ~0.5 GB in a one-shot `rag ask`), is not needed.
_GERMAN_OR_ENGLISH_MARKERS = frozenset(
    "und ist sind wurde wurden hatte würde nicht auch sich für während über zwischen unter"
    " eine einer eines einem welche welcher welches wird seit durch gegen zum zur vom beim"
    " laut wenn bevor sein seine"
    " the and did does was were which what has have with from been would their this that"
    " about after before they his".split()
)
_MARKERS_TO_PASS = 2
_MIN_CONFIDENCE_TO_REFUSE = 0.6
_MAX_FOREIGN_SCRIPT_SHARE = 0.5


@cache
def _wide_detector() -> Any:
    from lingua import Language as LinguaLanguage
    from lingua import LanguageDetectorBuilder

    languages = [getattr(LinguaLanguage, name) for name in ("GERMAN", "ENGLISH", *_OTHER_LATIN_LANGUAGES)]
    return LanguageDetectorBuilder.from_languages(*languages).build()


@cache
def _naming_detector() -> Any:
    from lingua import LanguageDetectorBuilder

    return LanguageDetectorBuilder.from_all_spoken_languages().with_low_accuracy_mode().build()


def _foreign_script_share(text: str) -> float:
    """The share of letters that are not Latin (Cyrillic, CJK, Arabic, …)."""
    letters = [char for char in text if char.isalpha()]
    foreign = [char for char in letters if not unicodedata.name(char, "").startswith("LATIN")]
    return len(foreign) / len(letters) if letters else 0.0


def _unsupported(text: str) -> str | None:
    """The name of the other language `text` is plainly written in, or None."""
    if _foreign_script_share(text) > _MAX_FOREIGN_SCRIPT_SHARE:
        found = _naming_detector().detect_language_of(text)
        return found.name.title() if found is not None else "another script"
    words = re.findall(r"\w+", text)
    if len(words) < _MIN_WORDS_TO_REFUSE:
        return None
    if len({word.casefold() for word in words} & _GERMAN_OR_ENGLISH_MARKERS) >= _MARKERS_TO_PASS:
        return None
    best = _wide_detector().compute_language_confidence_values(text)[0]
    if best.language.name in ("GERMAN", "ENGLISH") or best.value < _MIN_CONFIDENCE_TO_REFUSE:
        return None
    return str(best.language.name.title())


@lru_cache(maxsize=256)
def question_language(question: str) -> Language:
    """The language to answer `question` in; InputError when it is plainly neither German nor English."""
    for word in re.findall(r"\w+", question)[:3]:
        if word.casefold() in _GERMAN_OPENERS or word.casefold() in _ENGLISH_OPENERS:
            return detect_language(question)
    other = _unsupported(question)
    if other is not None:
        raise InputError(
            f"This question looks like {other}; only German and English questions are supported"
            " — ask in German or English"
        )
    return detect_language(question)
