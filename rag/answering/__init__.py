"""Answering: from a question and its passages to a cited, checked answer.

`answer.ask` runs a question through every step: `sentences` lists the candidate
sentences with their spans, `question_kinds` reads what kind of fact a question asks
for and in how many parts, `select` chooses the evidence, `phrase` has the model
write a short answer and checks it with `cite`; `conversation` links a follow-up to
the question before it. The model behind it is a `chat_model.ChatModel` (llama.cpp
in-process, or a server through `llm_client`), found by `models`, checked on disk
by `model_files` and fetched by `model_pull`, prompted from the files that
`prompts` loads. `pipeline.Pipeline` wires the index, retrieval and the model
together for every command. Left out: building the index (rag.index), ranking
passages (rag.retrieval), scoring answers (rag.evaluation) and any rendering (rag.ui).

Each name below is imported from its module on first use (PEP 562 `__getattr__`), so
importing one module of the stage does not import the rest of it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rag.answering.answer import ask
    from rag.answering.chat_model import ChatModel
    from rag.answering.cite import is_refusal, is_supported, parse_markers, split_answer_sentences
    from rag.answering.conversation import Turn, previous_question
    from rag.answering.generate import LocalLLM
    from rag.answering.llm_client import ServerChatModel
    from rag.answering.model_files import list_models, verify
    from rag.answering.model_pull import pull
    from rag.answering.models import KNOWN_MODELS, resolve_model
    from rag.answering.phrase import check_phrasing, phrase_messages, refusal_probability
    from rag.answering.pipeline import Pipeline
    from rag.answering.prompts import Prompt, load_prompt
    from rag.answering.result import Answer
    from rag.answering.select import Selection, select_evidence
    from rag.answering.sentences import Candidate, candidate_sentences

__all__ = [
    "KNOWN_MODELS",
    "Answer",
    "Candidate",
    "ChatModel",
    "LocalLLM",
    "Pipeline",
    "Prompt",
    "Selection",
    "ServerChatModel",
    "Turn",
    "ask",
    "candidate_sentences",
    "check_phrasing",
    "is_refusal",
    "is_supported",
    "list_models",
    "load_prompt",
    "parse_markers",
    "phrase_messages",
    "previous_question",
    "pull",
    "refusal_probability",
    "resolve_model",
    "select_evidence",
    "split_answer_sentences",
    "verify",
]

# Public name -> the module it is imported from on first use.
_EXPORTS = {
    "Answer": "rag.answering.result",
    "ask": "rag.answering.answer",
    "is_refusal": "rag.answering.cite",
    "is_supported": "rag.answering.cite",
    "parse_markers": "rag.answering.cite",
    "split_answer_sentences": "rag.answering.cite",
    "Turn": "rag.answering.conversation",
    "previous_question": "rag.answering.conversation",
    "ChatModel": "rag.answering.chat_model",
    "LocalLLM": "rag.answering.generate",
    "ServerChatModel": "rag.answering.llm_client",
    "KNOWN_MODELS": "rag.answering.models",
    "list_models": "rag.answering.model_files",
    "verify": "rag.answering.model_files",
    "pull": "rag.answering.model_pull",
    "resolve_model": "rag.answering.models",
    "check_phrasing": "rag.answering.phrase",
    "phrase_messages": "rag.answering.phrase",
    "refusal_probability": "rag.answering.phrase",
    "Pipeline": "rag.answering.pipeline",
    "Prompt": "rag.answering.prompts",
    "load_prompt": "rag.answering.prompts",
    "Selection": "rag.answering.select",
    "select_evidence": "rag.answering.select",
    "Candidate": "rag.answering.sentences",
    "candidate_sentences": "rag.answering.sentences",
}


def __getattr__(name: str) -> Any:
    """Import the module of a public name on its first use (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
