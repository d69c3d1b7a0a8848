"""The evidence the model reads: the selected sentences, each in its passage's words around it.

After `rag.answering.select` has ranked the candidate sentences, `select_windows` takes
the chosen ones first and then the next best, at most `EVIDENCE_SHOWN` and none
overlapping. The model reads each with the sentence before it (so that "es" and "er"
find what they refer to), and with the sentence after it only where the quote takes that
one too: a written answer is held to its quotes (`rag.answering.answer`), so a
neighbour it could not be drawn from is left out of the prompt. On `evals/` that took
the time to the first token from 3.56 to 3.27 s (p50), gained one correct answer and one
refusal of an unanswerable question, and turned two refusals into wrong answers.

A citation quotes the sentence itself, widened where the text says it does not stand
alone: with the sentence before when it opens by pointing back ("Mit diesem Strom …",
"Damit …") or names its subject by a pronoun ("Allein im vergangenen Jahr wurde es
zweimal bombardiert."), and with the sentence after when it only sets up its answer,
counts a first point ("erstens"), or the next one carries it on ("Denn …", "Und …",
"Zweitens …"). These are rules of the language, not of one corpus: on `evals/` they
changed four quoted answers, all to correct ones (bench/replay_answers.py). A quote
never reaches past its passage. Leaves out: ranking (`select`) and the prompt
(`phrase`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rag.answering.cite import adds_information
from rag.answering.select import Selection
from rag.answering.sentences import Candidate, widened
from rag.types import Passage

# Openings of a sentence that point back at the sentence before it: a demonstrative among
# the first three words, or a pronoun or adverb that stands for what was just said.
_REFERS_BACK = re.compile(
    r"""^\W*(\w+\W+){0,2}(dies(e[mnrs]?)?|this|these|those)\b|^\W*(damit|dadurch|daher|deshalb|deswegen|"""
    r"""dabei|darum|dazu|dafür|er|thus|therefore|he|she)\b""",
    re.IGNORECASE,
)
# A third-person pronoun among the first eight words. Lower case only: mid-sentence "Sie"
# is the polite "you" of an interview question, not a reference.
_PRONOUN_NEAR_START = re.compile(r"^\W*(\S+\s+){0,7}?(er|es|sie|ihm|ihn|ihnen|he|she|it|they|him|them)\b")
# Openings of a sentence that carries on the one before it: "and", a reason, a second point, "that is".
_CONTINUES = re.compile(
    r"""^\W*(denn|und|zweitens|drittens|nämlich|das heißt|because|and|secondly|second|thirdly|namely|"""
    r"""that is)\b""",
    re.IGNORECASE,
)
# A sentence that counts its first point ("erstens") leaves the second to the next one.
_ENUMERATES = re.compile(r"\b(erstens|zum einen|einerseits|firstly|on the one hand)\b", re.IGNORECASE)

# The model reads this many of the best sentences (each with the next one where it only sets up its answer).
EVIDENCE_SHOWN = 3


@dataclass(frozen=True)
class Evidence:
    """One piece of selected evidence: what an answer quotes, and what the model reads around it."""

    quote: Candidate  # the sentence, with its neighbours where it does not stand alone
    context: Candidate  # the sentence with the one before it (and the quote's): what the model is shown
    chosen: bool = False  # one of the selection's choices, not only the next best


def select_windows(
    selection: Selection, shown: Sequence[Passage], questions: Sequence[str]
) -> list[Evidence]:
    """The chosen sentences first, then the next best: at most `EVIDENCE_SHOWN`, none overlapping.

    The model reads each sentence with the one before it, so that "es" and "er" find
    what they refer to. A sentence that says nothing the question does not ("Doch
    Toqajew hat eine andere Trumpfkarte im Ärmel.") or ends in a colon is quoted, and
    read, with the sentence after it (see the module doc for the other cases).
    """
    chosen = [s.candidate for s in selection.chosen]
    ordered = list(chosen)
    ordered += [s.candidate for s in selection.ranked if s.fits and s.candidate not in ordered]
    windows: list[Evidence] = []
    for candidate in ordered:
        if len(windows) == EVIDENCE_SHOWN:
            break
        sets_up = candidate.text.rstrip().endswith(":") or not adds_information([candidate.text], questions)
        after = (
            sets_up or bool(_ENUMERATES.search(candidate.text)) or continues(_next_sentence(candidate, shown))
        )
        context = widened(candidate, shown, before=True, after=after)
        if not any(_overlap(w.context, context) for w in windows):
            quote = widened(candidate, shown, before=refers_back(candidate.text), after=after)
            windows.append(Evidence(quote, context, candidate in chosen))
    return windows


def refers_back(sentence: str) -> bool:
    """Whether the sentence opens by pointing at the one before it ("Mit diesem Strom …", "Damit …"),
    or names its subject by a pronoun near its start ("Allein im vergangenen Jahr wurde es …")."""
    return bool(_REFERS_BACK.match(sentence) or _PRONOUN_NEAR_START.match(sentence))


def continues(sentence: str) -> bool:
    """Whether the sentence carries on the one before it ("Denn …", "Und das …", "Zweitens …")."""
    return bool(_CONTINUES.match(sentence))


def _next_sentence(candidate: Candidate, shown: Sequence[Passage]) -> str:
    """The text after the candidate up to the end of the next sentence in its passage ("" at its end)."""
    return widened(candidate, shown).text[len(candidate.text) :]


def _overlap(a: Candidate, b: Candidate) -> bool:
    return a.source == b.source and a.start < b.end and b.start < a.end
