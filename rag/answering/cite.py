"""Citation markers and the lexical support check that every cited sentence must pass.

The model writes sentences with inline markers like `[2]`. Here, in code:
- `split_answer_sentences` and `parse_markers` take the markers off each sentence;
- a sentence is *supported* by a passage (`is_supported`) when its numbers all occur
  there, most of its names occur there (spelling variants match through the phonetic
  key), and enough of its content words occur there (stem or phonetic match). Across
  languages (an English answer from a German article) only the names and numbers
  count;
- a bare number or date ("1991 [1].") is supported when the passage states it;
- a denial whose only news is its negation ("Das Treffen brachte keine Ergebnisse")
  must find nearly all its words in the text (`only_negates`, `states_denied`): a
  passage that merely mentions the meeting cannot back it;
- `adds_information` tells an answer from one that only restates the question;
- `is_refusal` recognises the refusal sentence.

The same `is_supported` check scores citations in `rag eval`. Left out: semantic
entailment (no local NLI model is available). The check is deliberately strict: a
phrasing that fails it costs little, because the answer then quotes its evidence
(`rag.answering.answer`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from rag.index.keyword import answer_terms, stop_words
from rag.text.language import detect_language

CITATION = re.compile(r"\s*\[(\d+(?:\s*[,;]\s*\d+)*)\]")
_NUMBER = re.compile(r"\d+")
_WORD = re.compile(r"[^\W\d_][\w-]*", re.UNICODE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"„“'(]?[A-ZÄÖÜ0-9])")
# Words that end a sentence-like token but not a sentence ("20. Februar", "z. B.").
_NO_BREAK_BEFORE = re.compile(r"(\b\d{1,2}\.|\b[A-Za-zäöü]{1,3}\.)$")

MIN_CONTENT_OVERLAP = 0.35
# A denial that adds nothing but its negation must find this share of its words in the passage.
MIN_DENIAL_OVERLAP = 0.8
# One capitalised word in four may be the model's own (a German noun it chose); names are not.
NAME_MISSES_PER_WORD = 0.25

_NOT_NAMES = frozenset(
    "laut zudem außerdem damit dabei daher deshalb jedoch allerdings zuvor danach später demnach insgesamt "
    "ebenso somit artikel quelle quellen text bericht autor autorin according however also article source "
    "sources report since after before because while during until".split()
)
# Words that carry an answer although a stop-word list drops them.
_ANSWER_WORDS = frozenset("ja nein nicht kein keine keinen keiner nie niemals yes no not never none".split())

REFUSALS = {
    "de": "Die Quellen enthalten dazu keine Angabe.",
    "en": "The sources do not contain this information.",
}
# What an answer says of a part of the question that no source states (`rag.answering.select.question_parts`).
OPEN_PART = {
    "de": "Zu „{part}“ enthalten die Quellen keine Angabe.",
    "en": "On “{part}” the sources do not contain any information.",
}
_REFUSAL_PATTERNS = re.compile(
    r"keine angabe|enthalten (dazu )?keine|nicht in den quellen|geben (dazu )?keine auskunft|"
    r"do(es)? not contain|no information|not (stated|mentioned|contained)|don't contain|cannot be answered",
    re.IGNORECASE,
)


def with_markers(sentence: str, numbers: Sequence[int]) -> str:
    """`sentence` with `[n]` markers placed before its closing punctuation."""
    markers = "".join(f"[{n}]" for n in numbers)
    if not markers:
        return sentence
    body, end = (sentence[:-1], sentence[-1]) if sentence[-1:] in ".!?" else (sentence, "")
    return f"{body.rstrip()} {markers}{end}"


def split_answer_sentences(text: str) -> list[str]:
    """Split generated text into sentences, keeping trailing citation markers attached.

    A marker written after the full stop ("… 1992. [2]") is moved before it.
    """
    text = re.sub(r"([.!?])((?:\s*\[\d+(?:\s*[,;]\s*\d+)*\])+)", r"\2\1", text.strip())
    pieces: list[str] = []
    for line in (line.strip(" -*•\t") for line in text.splitlines()):
        if not line:
            continue
        start = 0
        for match in _SENTENCE_END.finditer(line):
            if _NO_BREAK_BEFORE.search(line[start : match.start()]):
                continue
            pieces.append(line[start : match.start()].strip())
            start = match.end()
        pieces.append(line[start:].strip())
    return [p for p in pieces if p]


def parse_markers(sentence: str) -> tuple[str, list[int]]:
    """The sentence without markers, and the numbers it cites in order."""
    numbers = [int(n) for group in CITATION.findall(sentence) for n in re.split(r"[,;]", group)]
    clean = CITATION.sub("", sentence).strip()
    clean = re.sub(r"\s+([.!?,;:])", r"\1", clean)
    return clean, list(dict.fromkeys(numbers))


def _content_words(sentence: str) -> list[str]:
    stopped = stop_words()
    return [w for w in _WORD.findall(sentence) if w.casefold() not in stopped and len(w) > 1]


def _names(sentence: str) -> list[str]:
    """Capitalised content words: proper names in English, names and nouns in German.

    Sentence openers ("Laut", "Zudem") and words about the sources themselves
    ("Artikel", "Quelle") are capitalised without naming a fact, so they are skipped.
    """
    return [w for w in _content_words(sentence) if w[0].isupper() and w.casefold() not in _NOT_NAMES]


def _word_matches(word: str, passage_terms: set[str], passage_lower: str) -> bool:
    if len(word) >= 5 and word.casefold() in passage_lower:
        return True
    return any(term in passage_terms for term in answer_terms(word))


def is_supported(sentence: str, passage_text: str, context: str = "") -> bool:
    """Whether the passage states the sentence's numbers, names and most of its words.

    `context` (the article's title and outlet) counts for names: "according to
    Novastan" is backed by where the passage comes from. A sentence in another
    language than the passage (an English answer from a German article) cannot share
    its ordinary words, so there only the key facts count: every number, and the
    names (spelling variants fold together), at least one of them found.
    """
    haystack = f"{context}\n{passage_text}" if context else passage_text
    passage_terms = set(answer_terms(haystack))
    passage_lower = haystack.casefold()
    passage_numbers = set(_NUMBER.findall(haystack))
    numbers = _NUMBER.findall(sentence)
    if any(number not in passage_numbers for number in numbers):
        return False
    names = _names(sentence)
    missed = sum(not _word_matches(w, passage_terms, passage_lower) for w in names)
    if detect_language(sentence) != detect_language(passage_text):
        found_names = len(names) - missed
        return missed <= math.floor(NAME_MISSES_PER_WORD * len(names)) and (found_names > 0 or bool(numbers))
    if missed > math.floor(NAME_MISSES_PER_WORD * len(names)):
        return False
    words = _content_words(sentence)
    if not words:
        return bool(numbers)  # a bare number or date, found above
    overlap = sum(_word_matches(w, passage_terms, passage_lower) for w in words) / len(words)
    return overlap >= MIN_CONTENT_OVERLAP


def states_denied(sentence: str, text: str) -> bool:
    """Whether `text` holds what a denial denies: nearly all of its words.

    "Das Treffen brachte keine konkreten Ergebnisse [1]" turns a question into a denial;
    a passage that mentions the meeting but not its results cannot back it. Across
    languages the words cannot be compared, so the ordinary name check stands.
    """
    if detect_language(sentence) != detect_language(text):
        return True
    return _overlap(sentence, text) >= MIN_DENIAL_OVERLAP


def article_context(title: str | None, outlet: str | None) -> str:
    """What an article says about itself: its title and outlet."""
    return " ".join(part for part in (title, outlet) if part)


def _overlap(sentence: str, passage_text: str) -> float:
    words = _content_words(sentence)
    if not words:
        return 0.0
    terms, lower = set(answer_terms(passage_text)), passage_text.casefold()
    return sum(_word_matches(w, terms, lower) for w in words) / len(words)


def _news(sentence: str, questions: Sequence[str]) -> tuple[bool, bool]:
    """(whether the sentence states a word or number the questions lack, whether it adds a negation).

    The question's phonetic keys count as asked, so "Tokayev" is no news after "Tokajew".
    """
    asked = {term for q in questions for term in answer_terms(q)}
    asked_numbers = {number for q in questions for number in _NUMBER.findall(q)}
    asked_words = {w.casefold() for q in questions for w in _WORD.findall(q)}
    negates = any(w.casefold() in _ANSWER_WORDS - asked_words for w in _WORD.findall(sentence))
    states = any(number not in asked_numbers for number in _NUMBER.findall(sentence)) or any(
        word.casefold() not in _NOT_NAMES and not set(answer_terms(word)) & asked
        for word in _content_words(sentence)
    )
    return states, negates


def adds_information(sentences: Sequence[str], questions: Sequence[str]) -> bool:
    """Whether the sentences say anything beyond the question: a new word, number or negation.

    "The author doubts that Tokayev wrote the article [1]." answers "Why does the
    author doubt that Tokayev wrote the article?" with nothing. A lead-in that ends
    in a colon promises content and holds none.
    """
    return any(any(_news(s, questions)) for s in sentences if not s.rstrip().endswith(":"))


def only_negates(sentence: str, questions: Sequence[str]) -> bool:
    """Whether the sentence is the question turned into a denial: its only new words are no, not, never."""
    states, negates = _news(sentence, questions)
    return negates and not states


def is_refusal(text: str) -> bool:
    """Whether generated text says the sources lack the answer."""
    return bool(_REFUSAL_PATTERNS.search(text))
