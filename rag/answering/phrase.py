"""Phrasing: the model writes a short answer from the selected evidence, and code checks it.

The evidence is a few sentences that `rag.answering.select` chose, numbered [1]…[n] inside a
delimited, untrusted block (`prompts/phrase-de`, `prompts/phrase-en`: a fixed system
prompt and three examples, so the prefix stays in llama.cpp's cache). The model is asked
for one short sentence in the question's language, cited.

Before anything is generated, `refusal_probability` reads how likely the model is to
open its reply with the refusal sentence: one signal of whether the evidence answers at
all, read from the model's probabilities rather than from its greedy choice.

`check_phrasing` holds the written answer to the evidence it cites, with the strict
lexical check of `rag.answering.cite.is_supported`: every number exactly, names by spelling
variant, most words (across languages, the names and numbers alone); a denial must
find nearly all its words there. It must also say something the question does not
and, where a quantity or a date is asked for, state one. A follow-up's answer must draw
on the sentence the selection chose.
A phrasing that fails is not repaired: the caller quotes the evidence instead.
Left out: choosing the evidence (`rag.answering.select`) and deciding to refuse (`rag.answering.answer`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rag.answering.cite import (
    REFUSALS,
    adds_information,
    is_refusal,
    is_supported,
    only_negates,
    parse_markers,
    split_answer_sentences,
    states_denied,
)
from rag.answering.prompts import load_prompt
from rag.answering.question_kinds import AnswerType, can_state
from rag.answering.sentences import Candidate
from rag.ingest.read import normalize_whitespace
from rag.text.language import Language
from rag.text.sanitize import for_prompt

if TYPE_CHECKING:
    from rag.answering.chat_model import ChatModel

STOP_SEQUENCES = ["\n\n", "<belege>", "</belege>", "<evidence>", "</evidence>", "Frage:", "Question:", "###"]
PREVIOUS_LABEL = {"de": "Vorherige Frage", "en": "Previous question"}
# How the refusal sentence of each language opens: its first words are enough to tell it.
_REFUSAL_OPENING = {language: " ".join(sentence.split()[:2]) for language, sentence in REFUSALS.items()}


def evidence_block(evidence: Sequence[Candidate]) -> str:
    """The evidence sentences numbered [1]…[n], one per line, control sequences removed."""
    return "\n".join(
        f"[{n}] {normalize_whitespace(for_prompt(candidate.text))}" for n, candidate in enumerate(evidence, 1)
    )


def phrase_messages(
    question: str, evidence: Sequence[Candidate], language: Language, previous_question: str | None = None
) -> list[dict[str, str]]:
    """The chat messages that ask for a short answer from `evidence` (a follow-up shows its predecessor)."""
    shown = (
        question if not previous_question else f"{question} ({PREVIOUS_LABEL[language]}: {previous_question})"
    )
    return load_prompt(f"phrase-{language}").render(evidence=evidence_block(evidence), question=shown)


def refusal_probability(llm: ChatModel, messages: list[dict[str, str]], language: Language) -> float:
    """The model's probability of opening its reply with the refusal sentence."""
    import math

    return math.exp(llm.continuation_logprob(messages, _REFUSAL_OPENING[language]))


@dataclass
class Phrasing:
    """The checked answer: its sentences with the evidence numbers they cite, or why it failed."""

    sentences: list[tuple[str, list[int]]] = field(default_factory=list)  # (text, evidence numbers)
    refused: bool = False  # the model wrote the refusal sentence
    failure: str | None = None  # why the phrasing cannot stand, if it cannot

    @property
    def ok(self) -> bool:
        return not self.refused and self.failure is None

    def cited(self) -> list[int]:
        return sorted({n for _, numbers in self.sentences for n in numbers})


def _supporting(sentence: str, claimed: Sequence[int], evidence: Sequence[Candidate]) -> list[int]:
    """The evidence numbers that back `sentence`: the ones it cites, else the single one that does."""
    valid = [n for n in claimed if 1 <= n <= len(evidence)]
    if valid and is_supported(sentence, " ".join(evidence[n - 1].text for n in valid)):
        return [n for n in valid if is_supported(sentence, evidence[n - 1].text)] or valid
    backing = [n for n in range(1, len(evidence) + 1) if is_supported(sentence, evidence[n - 1].text)]
    return backing[:1]


def check_phrasing(
    text: str,
    evidence: Sequence[Candidate],
    questions: Sequence[str],
    kind: AnswerType,
    follow_up: bool = False,
) -> Phrasing:
    """Check every sentence of the model's `text` against the evidence it cites (see module doc).

    A `follow_up` must draw on the first evidence sentence, the selection's choice: the
    model, shown the previous question beside the follow-up, answered from another
    sentence in two of eight follow-ups on `evals/` ("By whom?": "Trump"; "Welches Amt
    hat er?": Trump's), wrongly both times, and in none of them rightly
    (bench/replay_answers.py). Other questions keep the model's choice: there it was
    right in four cases where the first sentence was not.
    """
    result = Phrasing()
    for position, raw in enumerate(split_answer_sentences(text)):
        clean, claimed = parse_markers(raw)
        if not clean:
            continue
        if is_refusal(clean):
            result.refused = position == 0
            break
        backing = _supporting(clean, claimed, evidence)
        if backing and only_negates(clean, questions):
            backing = [n for n in backing if states_denied(clean, evidence[n - 1].text)]
        if not backing:
            result.failure = f"not backed by the evidence: {clean}"
            return result
        result.sentences.append((clean, backing))
    stated = [sentence for sentence, _ in result.sentences]
    if result.refused or not stated:
        result.failure = result.failure or ("refused" if result.refused else "empty")
    elif not adds_information(stated, questions):
        result.failure = "restates the question"
    elif not can_state(kind, " ".join(stated)):
        result.failure = f"states no {kind}"
    elif follow_up and 1 not in result.cited():
        result.failure = "a follow-up answered from another sentence than the one selected"
    return result
