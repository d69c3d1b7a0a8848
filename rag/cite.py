"""Citation parsing and verification: every kept sentence is backed by a passage.

The model writes sentences with inline markers like `[2]`. Here, in code:
- markers that point to no passage are removed;
- a sentence is *supported* by a passage when its numbers all occur there, most of
  its names occur there (spelling variants match through the phonetic key), and
  enough of its content words occur there (stem or phonetic match, so an English
  sentence can be close to a German passage);
- a sentence whose cited passages do not support it is re-attached to the single
  passage that does, if one exists; otherwise, when it clearly paraphrases one
  source sentence (most of its words are there), that source sentence is quoted
  verbatim in its place (a small model often garbles a detail of a right answer);
  otherwise it is dropped as unverified. The quote must also hold the question's
  key terms (weighted by how rare they are among the shown sentences), so a
  caption that merely names the same person cannot stand in for a birth date;
- a bare number or date ("1991 [1].") is supported when the passage states it;
- a denial whose only news is its negation ("Das Treffen brachte keine Ergebnisse")
  must find nearly all its words in the passage: one that merely mentions the
  meeting cannot back it;
- if nothing verified remains, or what remains only restates the question (no
  word, number or negation the question did not already contain), or the question
  asks for a quantity or a date ("wie viele", "how long", "wann", "zu welchem Datum")
  and no number, month, weekday or day word is stated, the answer is a refusal.

`strays_from_question` tells the answerer when a verified answer was drawn from a
sentence far weaker on the question than the best one shown (worth a second look).

The same `is_supported` check scores citations in `rag eval`. Left out: semantic
entailment (no local NLI model is available); the lexical check is deliberately
strict instead, and it cannot tell a true sentence that answers another question
from one that answers this one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from rag.chunk import split_sentences
from rag.keyword import analyze, stop_words
from rag.language import detect_language
from rag.types import Citation, Passage

CITATION = re.compile(r"\s*\[(\d+(?:\s*[,;]\s*\d+)*)\]")
_NUMBER = re.compile(r"\d+")
_WORD = re.compile(r"[^\W\d_][\w-]*", re.UNICODE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"„“'(]?[A-ZÄÖÜ0-9])")
# Words that end a sentence-like token but not a sentence ("20. Februar", "z. B.").
_NO_BREAK_BEFORE = re.compile(r"(\b\d{1,2}\.|\b[A-Za-zäöü]{1,3}\.)$")

MIN_CONTENT_OVERLAP = 0.35
# A source sentence stands in for an unsupported one only if it holds this share of its words.
MIN_QUOTE_OVERLAP = 0.6
# A denial that adds nothing but its negation must find this share of its words in the passage.
MIN_DENIAL_OVERLAP = 0.8
# One capitalised word in four may be the model's own (a German noun it chose); names are not.
NAME_MISSES_PER_WORD = 0.25
_NOT_NAMES = frozenset(
    "laut zudem außerdem damit dabei daher deshalb jedoch allerdings zuvor danach später demnach insgesamt "
    "ebenso somit artikel quelle quellen text bericht autor autorin according however also article source "
    "sources report".split()
)
QUOTE_CHARS = 240
# A quote must hold this share of the question's rarity-weighted key terms.
MIN_QUOTE_QUESTION_COVERAGE = 0.5
# Question words ask for the fact; an answer sentence does not repeat them.
_QUESTION_WORDS = frozenset(
    "wann wer wen wem wessen warum weshalb wieso wie wieviel wieviele wozu womit wovon wohin woher wo was "
    "welche welcher welches welchen welchem why what which who whom whose when where how".split()
)
# A second look at one passage needs a sentence there with this share of the key terms.
MIN_FOCUS_COVERAGE = 0.35
# An answer traced to sentences with less than this share of the best sentence's coverage strays.
MIN_DRAWN_COVERAGE_RATIO = 0.4
# Questions that ask for a quantity or a date, and the ways an answer can state one.
_ASKS_QUANTITY = re.compile(
    r"\b(wie ?viele?|wie hoch|wie lange|wie alt|in welchem (jahr|monat)|wann|seit wann|"
    r"(zu|an) welchem (datum|tag)|how (many|much|long|old)|(which|what) (year|month|date|day)|when)\b",
    re.IGNORECASE,
)
_STATES_QUANTITY = re.compile(
    r"\d|\b(ein|zwei|drei|vier|fünf|sechs|sieben|acht|neun|zehn|elf|zwölf|zwanzig|dreißig|hundert|tausend|"
    r"halb|dutzend|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|hundred|"
    r"thousand|half|dozen|million|billion|milliard)|"
    r"\b(januar|februar|märz|april|mai|juni|juli|august|september|oktober|november|dezember|"
    r"january|february|march|may|june|july|october|december|"
    r"montag|dienstag|mittwoch|donnerstag|freitag|samstag|sonntag|"
    r"monday|tuesday|wednesday|thursday|friday|saturday|sunday|"
    r"gestern|heute|morgen|yesterday|today|tomorrow)\b",
    re.IGNORECASE,
)
# Words that carry an answer although a stop-word list drops them.
_ANSWER_WORDS = frozenset("ja nein nicht kein keine keinen keiner nie niemals yes no not never none".split())

REFUSALS = {
    "de": "Die Quellen enthalten dazu keine Angabe.",
    "en": "The sources do not contain this information.",
}
_REFUSAL_PATTERNS = re.compile(
    r"keine angabe|enthalten (dazu )?keine|nicht in den quellen|geben (dazu )?keine auskunft|"
    r"do(es)? not contain|no information|not (stated|mentioned|contained)|don't contain|cannot be answered",
    re.IGNORECASE,
)


@dataclass
class CheckedSentence:
    """One answer sentence with the passages that verifiably support it."""

    text: str  # without citation markers
    cited: list[int]  # verified passage numbers (1-based); empty when unsupported
    claimed: list[int]  # numbers the model wrote, valid or not
    replaced: str | None = None  # the model's own sentence when `text` is a quote standing in for it

    @property
    def supported(self) -> bool:
        return bool(self.cited)


@dataclass
class VerifiedAnswer:
    """The checked answer: kept sentences, dropped ones and whether it is a refusal."""

    sentences: list[CheckedSentence] = field(default_factory=list)
    invalid_numbers: list[int] = field(default_factory=list)
    refused: bool = False

    @property
    def kept(self) -> list[CheckedSentence]:
        return [s for s in self.sentences if s.supported]

    @property
    def unverified(self) -> list[CheckedSentence]:
        return [s for s in self.sentences if not s.supported]

    @property
    def replaced(self) -> list[str]:
        """The model's sentences that were replaced by verbatim quotes."""
        return [s.replaced for s in self.sentences if s.replaced]

    def text(self) -> str:
        """The verified answer with its `[n]` markers before each sentence's full stop."""
        return " ".join(with_markers(s.text, s.cited) for s in self.kept)

    def cited_numbers(self) -> list[int]:
        return sorted({n for s in self.kept for n in s.cited})


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
    return any(term in passage_terms for term in analyze(word))


def is_supported(sentence: str, passage_text: str, context: str = "") -> bool:
    """Whether the passage states the sentence's numbers, names and most of its words.

    `context` (the article's title and outlet) counts for names: "according to
    Novastan" is backed by where the passage comes from. A sentence in another
    language than the passage (an English answer from a German article) cannot share
    its ordinary words, so there only the key facts count: every number, and the
    names (spelling variants fold together), at least one of them found.
    """
    haystack = f"{context}\n{passage_text}" if context else passage_text
    passage_terms = set(analyze(haystack))
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


def states_denied(sentence: str, passages: Sequence[Passage], cited: Sequence[int]) -> bool:
    """Whether the cited passages hold what a denial denies: nearly all of its words.

    "Das Treffen brachte keine konkreten Ergebnisse [1]" turns a question into a denial;
    a passage that mentions the meeting but not its results cannot back it. Across
    languages the words cannot be compared, so the ordinary name check stands.
    """
    text = " ".join(passages[n - 1].text for n in cited)
    if detect_language(sentence) != detect_language(text):
        return True
    return _overlap(sentence, text) >= MIN_DENIAL_OVERLAP


def article_context(title: str | None, outlet: str | None) -> str:
    """What an article says about itself: its title and outlet."""
    return " ".join(part for part in (title, outlet) if part)


def passage_context(passage: Passage) -> str:
    """The title and outlet of a passage's article."""
    return article_context(passage.title, passage.outlet)


def _overlap(sentence: str, passage_text: str) -> float:
    words = _content_words(sentence)
    if not words:
        return 0.0
    terms, lower = set(analyze(passage_text)), passage_text.casefold()
    return sum(_word_matches(w, terms, lower) for w in words) / len(words)


def question_coverages(question: str, sentence_terms: Sequence[set[str]]) -> list[float]:
    """For each sentence (given by its index terms), the share of the question's key terms it holds.

    The terms are weighted by rarity: a term's weight is its inverse frequency among
    the shown passages' sentences, so the article's main subject, named everywhere,
    counts little, while the word that asks for the fact ("geboren", "Anlass") counts most.
    """
    words = {w.casefold() for w in _content_words(question)} - _NOT_NAMES - _QUESTION_WORDS
    wanted = [terms for w in words if (terms := set(analyze(w)))]
    if not wanted:
        return [1.0] * len(sentence_terms)
    count = len(sentence_terms)
    weights = [math.log(1 + count / (1 + sum(bool(t & s) for s in sentence_terms))) for t in wanted]
    total = sum(weights)
    return [
        sum(w for w, t in zip(weights, wanted, strict=True) if t & held) / total for held in sentence_terms
    ]


@dataclass
class SourceSentences:
    """The shown passages' sentences, each with its index terms and how well it covers the question.

    Built once per answer: the passage cut, quoting, the straying check and the second
    look all pick from these.
    """

    sentences: list[tuple[int, str]]  # (passage number, verbatim sentence)
    terms: list[set[str]]  # `analyze` of each sentence
    coverage: list[float]  # best over the question's renderings; empty without questions

    @classmethod
    def of(cls, passages: Sequence[Passage], questions: Sequence[str]) -> SourceSentences:
        sentences = [
            (n, passage.text[start:end])
            for n, passage in enumerate(passages, 1)
            for start, end in split_sentences(passage.text)
        ]
        terms = [set(analyze(text)) for _, text in sentences]
        per_question = [question_coverages(q, terms) for q in questions]
        coverage = [max(values) for values in zip(*per_question, strict=True)] if per_question else []
        return cls(sentences, terms, coverage)

    def closest(self, sentence: str) -> tuple[int, str] | None:
        """(passage number, verbatim sentence) that `sentence` most plainly paraphrases, if any.

        With questions given, the quote must also cover the question's key terms.
        """
        best: tuple[float, int, str] | None = None
        for i, (n, candidate) in enumerate(self.sentences):
            if self.coverage and self.coverage[i] < MIN_QUOTE_QUESTION_COVERAGE:
                continue
            score = _overlap(sentence, candidate)
            if score >= MIN_QUOTE_OVERLAP and (best is None or score > best[0]):
                best = (score, n, candidate)
        return (best[1], best[2]) if best else None

    def focus(self) -> int | None:
        """The number of the passage whose sentence best covers the question's key terms.

        None when no sentence holds at least `MIN_FOCUS_COVERAGE` of them: then no single
        passage plausibly answers, and a second look would only invite a guess.
        """
        best = max(range(len(self.coverage)), key=self.coverage.__getitem__, default=None)
        if best is None or self.coverage[best] < MIN_FOCUS_COVERAGE:
            return None
        return self.sentences[best][0]


def passage_relevance(passages: Sequence[Passage], questions: Sequence[str]) -> list[float]:
    """Per passage, the question coverage of its best sentence (weights as in `question_coverages`)."""
    sources = SourceSentences.of(passages, questions)
    best = [0.0] * len(passages)
    for (n, _), coverage in zip(sources.sentences, sources.coverage, strict=True):
        best[n - 1] = max(best[n - 1], coverage)
    return best if sources.coverage else [1.0] * len(passages)


def strays_from_question(answer: VerifiedAnswer, sources: SourceSentences) -> bool:
    """Whether the answer draws on source sentences far weaker on the question than the best one.

    Each kept sentence is traced to the sentence of its cited passages it shares most
    terms with. When the best of these holds under `MIN_DRAWN_COVERAGE_RATIO` of the
    question coverage of the best shown sentence, the model has likely copied a
    neighbour of the answer ("Die Nervosität im Kreml ist spürbar" for a question
    about which organisations are questioned): the answer is true but beside the point.
    """
    best = max(sources.coverage, default=0.0)
    if not answer.kept or best < MIN_FOCUS_COVERAGE:
        return False
    drawn = 0.0
    for sentence in answer.kept:
        wanted = set(analyze(sentence.text))
        candidates = [i for i, (n, _) in enumerate(sources.sentences) if n in sentence.cited]
        if candidates:
            closest = max(candidates, key=lambda i: len(wanted & sources.terms[i]))
            drawn = max(drawn, sources.coverage[closest])
    return drawn < MIN_DRAWN_COVERAGE_RATIO * best


def _news(sentence: str, questions: Sequence[str]) -> tuple[bool, bool]:
    """(whether the sentence states a word or number the questions lack, whether it adds a negation).

    The question's phonetic keys count as asked, so "Tokayev" is no news after "Tokajew".
    """
    asked = {term for q in questions for term in analyze(q)}
    asked_numbers = {number for q in questions for number in _NUMBER.findall(q)}
    asked_words = {w.casefold() for q in questions for w in _WORD.findall(q)}
    negates = any(w.casefold() in _ANSWER_WORDS - asked_words for w in _WORD.findall(sentence))
    states = any(number not in asked_numbers for number in _NUMBER.findall(sentence)) or any(
        word.casefold() not in _NOT_NAMES and not set(analyze(word)) & asked
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


def answers_question(sentences: Sequence[str], questions: Sequence[str]) -> bool:
    """Whether verified sentences add information and, if a quantity is asked for, state one."""
    if not adds_information(sentences, questions):
        return False
    asks_quantity = bool(_ASKS_QUANTITY.search(questions[0]))
    return not asks_quantity or any(_STATES_QUANTITY.search(s) for s in sentences)


def verify_answer(
    text: str,
    passages: Sequence[Passage],
    questions: Sequence[str] = (),
    sources: SourceSentences | None = None,
) -> VerifiedAnswer:
    """Check every sentence of `text` against the passages it cites (see module doc).

    `questions` are the question as searched and any translation of it; without
    them, quotes are not checked against the question and restating is not caught.
    `sources` are the passages' sentences scored against the question's key terms,
    if the caller has them (built from `questions` when a quote is first needed).
    """
    result = VerifiedAnswer()
    valid = range(1, len(passages) + 1)
    for position, raw in enumerate(split_answer_sentences(text)):
        clean, claimed = parse_markers(raw)

        def supports(n: int, sentence: str = clean) -> bool:
            return is_supported(sentence, passages[n - 1].text, passage_context(passages[n - 1]))

        if not clean:
            continue
        if is_refusal(clean):
            if position == 0:
                break  # the model refused; what follows is padding, not an answer
            continue
        result.invalid_numbers += [n for n in claimed if n not in valid]
        cited = [n for n in claimed if n in valid]
        if cited and is_supported(
            clean,
            " ".join(passages[n - 1].text for n in cited),
            " ".join(passage_context(passages[n - 1]) for n in cited),
        ):
            kept = [n for n in cited if supports(n)] or cited
        else:
            kept = [n for n in valid if supports(n)][:1]
        if kept and questions and only_negates(clean, questions) and not states_denied(clean, passages, kept):
            kept = []
        if not kept:
            sources = sources or SourceSentences.of(passages, questions)
            quote = sources.closest(clean)
            if quote and all(quote[1] not in s.text for s in result.sentences):
                n, source_sentence = quote
                result.sentences.append(
                    CheckedSentence(text=f"„{source_sentence}“", cited=[n], claimed=claimed, replaced=clean)
                )
                continue
        result.sentences.append(CheckedSentence(text=clean, cited=kept, claimed=claimed))
    kept_text = [s.text for s in result.kept]
    result.refused = not kept_text or (bool(questions) and not answers_question(kept_text, questions))
    return result


def best_quote(sentence: str, passage: Passage) -> str:
    """The passage sentence that shares most words with `sentence` (for the sources table)."""
    passage_sentences = [passage.text[start:end] for start, end in split_sentences(passage.text)]
    if not passage_sentences:
        return passage.text[:QUOTE_CHARS]
    wanted = set(analyze(sentence))
    best = max(passage_sentences, key=lambda p: len(wanted & set(analyze(p))))
    return best.strip()[:QUOTE_CHARS]


def citations_for(answer: VerifiedAnswer, passages: Sequence[Passage]) -> list[Citation]:
    """One citation per cited passage, quoting the sentence that backs the answer."""
    citations = []
    for n in answer.cited_numbers():
        passage = passages[n - 1]
        claim = " ".join(s.text for s in answer.kept if n in s.cited)
        citations.append(
            Citation(
                n=n,
                source=passage.source,
                title=passage.title,
                start=passage.start,
                end=passage.end,
                quote=best_quote(claim, passage),
                page=passage.page,
            )
        )
    return citations
