"""Conversation state for `rag chat`: the turns so far, and which question a follow-up continues.

A follow-up such as "Und was sagte er über territoriale Fragen?" or "By whom?" is read
together with the question before it: that question's words join the search and the
evidence selection, and the model is shown it beside the follow-up. Nothing is
rewritten by the model: a 1.5B model's free rewrite of a follow-up turned "Und welcher
Zeitung gab Lawrow sein Interview?" into a garbled question that was then refused.

A question counts as a follow-up when it opens with "und"/"and", refers back with a
pronoun or "dort"/"there", or is too short to stand alone (`is_follow_up`). Old answers
are not used: they are model text. Left out: summarising old turns.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

# A question of fewer words than this cannot stand alone ("By whom?", "Und wann?").
MIN_STANDALONE_WORDS = 4
_REFERS_BACK = re.compile(
    r"^\s*(und|and|also|aber|but)\b|"
    r"\b(er|ihn|ihm|ihnen|sein|seine[mnrs]?|dort|damals|dazu|darin|darüber|davon|dafür|he|him|his|she|her|"
    r"they|them|their|it|its|there)\b",
    re.IGNORECASE,
)


@dataclass
class Turn:
    """One finished exchange, kept as chat history.

    `question` is the question as it was read: a follow-up carries the question it continued.
    """

    question: str
    answer: str


def is_follow_up(question: str) -> bool:
    """Whether the question leans on the one before it (see module doc)."""
    return len(re.findall(r"\w+", question)) < MIN_STANDALONE_WORDS or bool(_REFERS_BACK.search(question))


def previous_question(history: Sequence[Turn], question: str) -> str | None:
    """The question that a follow-up continues, or None for a question that stands alone."""
    if not history or not is_follow_up(question):
        return None
    return history[-1].question


def as_read(question: str, previous: str | None) -> str:
    """The question as it was read: with the one it continues, for the next turn's history."""
    return f"{previous} {question}" if previous else question
