"""The evidence the model reads: the selected sentences, each in its passage's words around it.

After `rag.answering.select` has ranked the candidate sentences, `select_windows` takes
the chosen ones first and then the next best, at most `EVIDENCE_SHOWN` and none
overlapping. The model reads each with its neighbours (so that "es" and "er" find what
they refer to); a citation quotes the sentence itself, or the sentence with the next one
where it only sets up its answer. Leaves out: ranking (`select`) and the prompt
(`phrase`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rag.answering.cite import adds_information
from rag.answering.select import Selection
from rag.answering.sentences import Candidate, widened
from rag.types import Passage

# The model reads this many of the best sentences (each with the next one where it only sets up its answer).
EVIDENCE_SHOWN = 3


@dataclass(frozen=True)
class Evidence:
    """One piece of selected evidence: what an answer quotes, and what the model reads around it."""

    quote: Candidate  # the sentence, with the next one where it only sets up its answer
    context: Candidate  # the sentence with its neighbours in the passage: what the model is shown


def select_windows(
    selection: Selection, shown: Sequence[Passage], questions: Sequence[str]
) -> list[Evidence]:
    """The chosen sentences first, then the next best: at most `EVIDENCE_SHOWN`, none overlapping.

    The model reads each sentence with its neighbours, so that "es" and "er" find what
    they refer to. A sentence that says nothing the question does not ("Doch Toqajew hat
    eine andere Trumpfkarte im Ärmel.") or ends in a colon is quoted with the sentence
    after it.
    """
    ordered = [s.candidate for s in selection.chosen]
    ordered += [s.candidate for s in selection.ranked if s.fits and s.candidate not in ordered]
    windows: list[Evidence] = []
    for candidate in ordered:
        if len(windows) == EVIDENCE_SHOWN:
            break
        sets_up = candidate.text.rstrip().endswith(":") or not adds_information([candidate.text], questions)
        context = widened(candidate, shown, before=True)
        if not any(_overlap(w.context, context) for w in windows):
            windows.append(Evidence(widened(candidate, shown) if sets_up else candidate, context))
    return windows


def _overlap(a: Candidate, b: Candidate) -> bool:
    return a.source == b.source and a.start < b.end and b.start < a.end
