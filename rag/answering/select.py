"""Evidence selection: rank the candidate sentences and pick the one (or two) that answer.

Every signal that the tool has is scored per candidate, standardised over the
question's candidates (z-scores, as retrieval fusion does) and added with weights:
- key-term coverage (weight 1): the share of the question's key terms that the
  sentence holds, each term weighted by its rarity among the candidates, so the
  article's subject (named everywhere) counts little and the word that asks for the
  fact ("geboren", "Anlass") counts most. The words that name an article are not key
  terms (the caller passes the question without them). This is the strongest single
  signal: 57 of 80 gold sentences first on `evals/`, against 38 for the first sentence
  of the best passage;
- dense similarity (weight `DENSE_WEIGHT`): the multilingual encoder's cosine of
  question and sentence, which carries English questions to German sentences and
  paraphrases to their source;
- the passage's retrieval rank (weight `RANK_WEIGHT`): retrieval saw the whole passage.
The model's probabilities are not a signal here: measured on `evals/`, its
multiple-choice picks were position-biased (16 of 40 right) and its query likelihood
added nothing over coverage (28 of 40 either way), at seconds per question.

A question can ask what no sentence states. `rag.answering.question_kinds.answer_type`
says what kind of fact a question wants (a quantity, a duration, a date, an article's
author or date, what somebody said); a candidate that cannot state it is left out of the
running, and when none can, the selection is empty: the answer is a refusal. A question
that asks two things ("Zu welchem Datum …, und wie lange dauerte …?", split by
`question_parts`) is ranked part by part as well: a part that the chosen sentences leave
open (its kind of fact not stated, or under half the best coverage of its key terms)
adds the best sentence for that part alone (`part_answers`); a part that no candidate
states is kept in `open_parts`, and the other parts are still answered, even where the
question's first part decides its answer type and nothing states it. Any other question gets a
second sentence from another article when the first leaves a large share of the key
terms open and that sentence covers them ("… – einmal gegenüber Trump, einmal gegenüber
dem Kreml?": `complement`).

`confidence` is the probability that the softmax of the scores gives the chosen
sentence: a number for `--json` and the dim note when the best was not clearly ahead.
`unmatched` is the share of the question's key-term weight that no candidate holds at
all (for the rendering that matches best): words like "geboren" or "Hauptstadt" that
appear nowhere in what was retrieved say the answer is probably not there either.
Left out: model calls (the answer is phrased in `rag.answering.phrase`), and passages (see
`rag.answering.sentences` for where candidates come from).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from rag.answering.question_kinds import WORD, AnswerType, answer_type, can_state, question_parts
from rag.answering.sentences import Candidate
from rag.index.keyword import answer_terms, stop_words

if TYPE_CHECKING:
    from rag.index.embed import Embedder

# Weights of the standardised signals beside coverage (1.0). Chosen on `evals/` as the
# values of the grid {0, 0.25, 0.5, 0.75, 1} with the highest selection precision,
# the smaller one on ties (see evals/RESULTS.md).
DENSE_WEIGHT = 0.5
RANK_WEIGHT = 0.25
# A sentence that can state the asked-for quantity or date must also hold this share of
# the best coverage of any candidate: a number beside the point does not answer.
MIN_TYPED_COVERAGE_SHARE = 0.5
# A second sentence is added when the first leaves at least this share of the
# key-term weight open and the second holds at least 40 % of what is open.
MIN_OPEN_SHARE = 0.3
MIN_COMPLEMENT = 0.4
# A part of a question is answered by a chosen sentence that states its kind of fact and
# holds at least this share of the best coverage of the part's key terms by any candidate
# (the rule of MIN_TYPED_COVERAGE_SHARE: words like "Datum" are in no answer).
MIN_PART_COVERAGE_SHARE = 0.5

_NOT_KEY_TERMS = frozenset(
    "wann wer wen wem wessen warum weshalb wieso wie wieviel wieviele wozu womit wovon wohin woher wo was "
    "welche welcher welches welchen welchem why what which who whom whose when where how laut zudem "
    "außerdem artikel quelle quellen text bericht autor autorin according article source sources report viel "
    "viele vielen many much "
    "und and".split()
)


@dataclass(frozen=True)
class KeyTerms:
    """The question's key words (each as its index terms) with rarity weights over the candidates."""

    words: tuple[frozenset[str], ...]
    weights: tuple[float, ...]

    @classmethod
    def of(cls, question: str, sentence_terms: Sequence[set[str]]) -> KeyTerms:
        stopped = stop_words()
        folded = {w.casefold() for w in WORD.findall(question) if len(w) > 1}
        words = [
            terms for w in sorted(folded - stopped - _NOT_KEY_TERMS) if (terms := frozenset(answer_terms(w)))
        ]
        count = len(sentence_terms)
        weights = [math.log(1 + count / (1 + sum(bool(t & s) for s in sentence_terms))) for t in words]
        return cls(tuple(words), tuple(weights))

    def coverage(self, held: set[str], among: Sequence[bool] | None = None) -> float:
        """The weighted share of the key words that `held` holds (of those flagged in `among`)."""
        flags = among or [True] * len(self.words)
        total = sum(w for w, f in zip(self.weights, flags, strict=True) if f)
        if not total:
            return 1.0 if among is None else 0.0
        found = sum(w for t, w, f in zip(self.words, self.weights, flags, strict=True) if f and t & held)
        return found / total

    def missing(self, held: set[str]) -> list[bool]:
        """For each key word, whether `held` lacks it."""
        return [not (t & held) for t in self.words]


def question_coverages(question: str, sentence_terms: Sequence[set[str]]) -> list[float]:
    """For each sentence (given by its index terms), the share of the question's key terms it holds."""
    keys = KeyTerms.of(question, sentence_terms)
    return [keys.coverage(held) for held in sentence_terms]


def standardize(values: Sequence[float]) -> np.ndarray:
    """z-scores (zero mean, unit spread); all zeros when the values do not vary."""
    array = np.asarray(values, dtype=np.float64)
    spread = float(array.std())
    return (array - array.mean()) / spread if spread > 1e-9 else np.zeros_like(array)


@dataclass(frozen=True)
class Scored:
    """A candidate with its signals and combined score."""

    candidate: Candidate
    coverage: float
    similarity: float
    score: float
    fits: bool  # can state the kind of fact asked for


@dataclass(frozen=True)
class Selection:
    """The chosen evidence (best first; empty when nothing can answer) and how sure the choice is."""

    chosen: tuple[Scored, ...]
    ranked: tuple[Scored, ...]  # every candidate, best first
    answer_type: AnswerType
    confidence: float  # softmax probability of the first choice among the candidates that fit
    unmatched: float = 0.0  # share of the question's key-term weight that no candidate holds at all
    parts: int = 1  # how many things the question asks (`question_parts`)
    open_parts: tuple[str, ...] = ()  # the parts that no candidate states

    @property
    def empty(self) -> bool:
        return not self.chosen


def select_evidence(
    questions: Sequence[str],
    similarity_question: str,
    candidates: Sequence[Candidate],
    encoder: Embedder | None,
    kind_question: str | None = None,
) -> Selection:
    """Rank `candidates` for the question and choose the evidence (see module doc).

    `questions` are the renderings whose key terms count (the question without the
    names of articles, its German translation, a follow-up's previous question):
    each candidate takes its best coverage. `similarity_question` is compared with
    each sentence by `encoder` (None: no dense signal). `kind_question` decides the
    answer type (default: the first rendering).
    """
    asked = kind_question or questions[0]
    kind = answer_type(asked)
    if not candidates:
        return Selection((), (), kind, 0.0, 1.0)
    terms = [set(answer_terms(c.text)) for c in candidates]
    keys = [keys for q in questions if (keys := KeyTerms.of(q, terms)).words] or [KeyTerms.of("", terms)]
    everywhere = set().union(*terms)
    unmatched = min(1.0 - k.coverage(everywhere) if k.words else 0.0 for k in keys)
    parts = question_parts(asked)
    part_texts = parts if len(parts) > 1 else []
    similarities = _similarities([similarity_question, *part_texts], candidates, encoder)
    coverage, scores, fits = _scored_signals(keys, similarities[0], candidates, terms, kind, asked)
    scored = [
        Scored(c, cov, sim, float(s), fit)
        for c, cov, sim, s, fit in zip(candidates, coverage, similarities[0], scores, fits, strict=True)
    ]
    ranked = sorted(scored, key=lambda s: (not s.fits, -s.score))
    eligible = [s for s in ranked if s.fits]
    best = eligible[0] if eligible else None
    chosen = [best] if best else []
    open_parts: list[str] = []
    if len(parts) > 1:  # a part may be answered where the question as a whole is not
        answers, open_parts = part_answers(best, parts, questions, scored, terms, similarities[1:])
        chosen += answers
    elif best and (second := complement(best, ranked, keys[0], terms, candidates)):
        chosen.append(second)
    confidence = float(1.0 / np.exp([s.score - best.score for s in eligible]).sum()) if best else 0.0
    return Selection(tuple(chosen), tuple(ranked), kind, confidence, unmatched, len(parts), tuple(open_parts))


def _similarities(
    texts: Sequence[str], candidates: Sequence[Candidate], encoder: Embedder | None
) -> list[list[float]]:
    """For each of `texts`, the encoder's cosine with every candidate (all zeros without an encoder)."""
    if encoder is None:
        return [[0.0] * len(candidates) for _ in texts]
    vectors = encoder.encode([*texts, *(c.text for c in candidates)])
    return [[float(np.dot(vectors[i], v)) for v in vectors[len(texts) :]] for i in range(len(texts))]


def _scored_signals(
    keys: Sequence[KeyTerms],
    similarity: Sequence[float],
    candidates: Sequence[Candidate],
    terms: Sequence[set[str]],
    kind: AnswerType,
    asked: str,
) -> tuple[list[float], np.ndarray, list[bool]]:
    """Each candidate's coverage, combined score and whether it can state the `kind` of fact asked."""
    coverage = [max(k.coverage(held) for k in keys) for held in terms]
    scores = (
        standardize(coverage)
        + DENSE_WEIGHT * standardize(similarity)
        - RANK_WEIGHT * standardize([c.rank for c in candidates])
    )
    fits = [c.heading if kind == "byline" else can_state(kind, c.text, asked) for c in candidates]
    if kind == "byline" and not any(fits):
        fits = [True] * len(candidates)  # no heading among the candidates: rank them all
    if kind in ("quantity", "duration", "date", "day", "speech"):
        floor = MIN_TYPED_COVERAGE_SHARE * max(coverage)
        fits = [fit and cov >= floor for fit, cov in zip(fits, coverage, strict=True)]
    return coverage, scores, fits


def part_answers(
    best: Scored | None,
    parts: Sequence[str],
    questions: Sequence[str],
    scored: Sequence[Scored],
    terms: Sequence[set[str]],
    similarities: Sequence[Sequence[float]],
) -> tuple[list[Scored], list[str]]:
    """For each part of the question that the sentences chosen so far leave open, its own best
    sentence; and the parts that no sentence answers.

    A part is answered by a chosen sentence that states its kind of fact and holds
    `MIN_PART_COVERAGE_SHARE` of the best coverage of its key terms. Each part is
    ranked as a whole question is, by its own key terms (from every rendering that
    splits the same way), its own dense similarity and the retrieval rank; a sentence
    without any of its key terms is not its answer. `best` is the choice for the whole
    question (None: nothing states what it asks first, but a later part may be stated).
    """
    candidates = [s.candidate for s in scored]
    chosen_at = [] if best is None else [candidates.index(best.candidate)]
    first_added = len(chosen_at)
    open_parts = []
    for i, part in enumerate(parts):
        renderings = [split[i] for q in questions if len(split := question_parts(q)) == len(parts)] or [part]
        keys = [k for r in renderings if (k := KeyTerms.of(r, terms)).words]
        if not keys:
            continue
        kind = answer_type(part)
        coverage, scores, fits = _scored_signals(keys, similarities[i], candidates, terms, kind, part)
        if any(fits[j] and coverage[j] >= MIN_PART_COVERAGE_SHARE * max(coverage) for j in chosen_at):
            continue
        options = [j for j in range(len(candidates)) if fits[j] and coverage[j] > 0 and j not in chosen_at]
        if options:
            chosen_at.append(max(options, key=lambda j: scores[j]))
        else:
            open_parts.append(part)
    return [scored[j] for j in chosen_at[first_added:]], open_parts


def complement(
    best: Scored,
    ranked: Sequence[Scored],
    keys: KeyTerms,
    terms: Sequence[set[str]],
    candidates: Sequence[Candidate],
) -> Scored | None:
    """A second sentence, from another article, for the key terms the best one leaves open.

    Any candidate may serve: the asked-for kind of fact belongs to one part of a
    two-part question ("Wie viele Abkommen …, und welchen Preis …?"), not to both.
    """
    index = {id(c): i for i, c in enumerate(candidates)}
    open_terms = keys.missing(terms[index[id(best.candidate)]])
    total = sum(keys.weights)
    open_share = sum(w for w, o in zip(keys.weights, open_terms, strict=True) if o) / total if total else 0.0
    if open_share < MIN_OPEN_SHARE:
        return None
    others = [s for s in ranked if s.candidate.source != best.candidate.source]
    if not others:
        return None
    second = max(others, key=lambda s: (keys.coverage(terms[index[id(s.candidate)]], open_terms), s.score))
    if keys.coverage(terms[index[id(second.candidate)]], open_terms) < MIN_COMPLEMENT:
        return None
    return second
