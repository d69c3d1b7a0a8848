"""Conversation state for `rag chat`: history within a token budget and follow-up rewriting.

A follow-up such as "Und was sagte Lawrow dazu?" is rewritten by the model into a
standalone question before retrieval, using the most recent turns. History is
trimmed oldest-first to fit `HISTORY_TOKEN_BUDGET`, so a long conversation can
never overflow the context. Citations always refer to the current turn's passages;
old answers are passed without their markers. Left out: summarising old turns.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rag.cite import CITATION
from rag.prompts import load_prompt

if TYPE_CHECKING:
    from rag.answer import Turn
    from rag.pipeline import Pipeline

HISTORY_TOKEN_BUDGET = 600
_REWRITE_MAX_TOKENS = 80


def recent_history(pipeline: Pipeline, history: Sequence[Turn]) -> list[Turn]:
    """The newest turns (at most settings.history_turns) that fit the token budget."""
    kept: list[Turn] = []
    used = 0
    for turn in reversed(
        history[-pipeline.settings.history_turns :] if pipeline.settings.history_turns else []
    ):
        cost = pipeline.aux_llm.count_tokens(turn.question + turn.answer)
        if used + cost > HISTORY_TOKEN_BUDGET:
            break
        kept.insert(0, turn)
        used += cost
    return kept


def format_history(turns: Sequence[Turn]) -> str:
    return "\n".join(f"Frage: {t.question}\nAntwort: {CITATION.sub('', t.answer).strip()}" for t in turns)


def rewrite_followup(pipeline: Pipeline, history: Sequence[Turn], question: str) -> str | None:
    """A standalone version of `question`, or None when there is no usable history."""
    turns = recent_history(pipeline, history)
    if not turns:
        return None
    messages = load_prompt("rewrite").render(history=format_history(turns), question=question)
    text = pipeline.aux_llm.complete_chat(
        messages, max_tokens=_REWRITE_MAX_TOKENS, stop=["\n"], temperature=0.0
    )
    rewritten = re.sub(r"^(Frage|Question|Letzte Frage)\s*:\s*", "", text.strip())
    return rewritten or None
