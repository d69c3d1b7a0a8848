"""Which language a question is in: German or English, the two the tool answers in.

A question's first words are a strong, cheap signal (Wer/Wann/Warum vs Who/When/Why);
when it is not decisive, lingua restricted to German and English decides. Anything
that is not clearly English is treated as German, the language of the corpus.
Left out: other languages.
"""

from __future__ import annotations

import re
from functools import cache, lru_cache
from typing import Any, Literal

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
