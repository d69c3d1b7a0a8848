"""The one interface answering needs from a language model: `ChatModel`, and what a call cost (`Usage`).

`rag.answering.generate.LocalLLM` implements it in-process with llama.cpp,
`rag.answering.llm_client.ServerChatModel` through an OpenAI-compatible server, and the
tests' `ScriptedLLM` with scripted replies; the rest of the code depends on the protocol
only. Leaves out: how a model is loaded, prompts and token budgeting.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class Usage:
    """What one chat call cost; read from `LocalLLM.last_usage` after the stream ends."""

    prompt_tokens: int  # tokens of the rendered chat prompt
    cached_tokens: int  # leading prompt tokens already in the KV cache from the previous call
    completion_tokens: int  # tokens of the generated text
    first_token_ms: float | None  # from the call to the first text delta; None if nothing came
    total_ms: float
    finish_reason: str  # "stop", "length" or "interrupted"


class ChatModel(Protocol):
    """What answering (with its refusal odds) and query translation need from a language model.

    Messages are OpenAI-style `{"role": ..., "content": ...}` dicts. `last_usage` is set
    when a stream ends or is interrupted. A model serves one call at a time.
    """

    last_usage: Usage | None

    @property
    def model_path(self) -> Path | str:
        """Where the weights come from: the GGUF file, or the model's name at its server."""
        ...

    @property
    def sha256(self) -> str:
        """Hash of the weights file; a server model says so instead, as it cannot tell."""
        ...

    @property
    def n_ctx(self) -> int:
        """The context window in tokens."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens of plain text (an estimate that never under-counts where no tokenizer is at hand)."""
        ...

    def count_messages(self, messages: list[dict[str, str]]) -> int:
        """Tokens of the rendered chat prompt (same rule: exact or an over-count)."""
        ...

    def stream_chat(
        self,
        messages: list[dict[str, str]],
        max_tokens: int,
        stop: list[str] | None = None,
        temperature: float = 0.0,
    ) -> Iterator[str]:
        """Yield the answer as text deltas."""
        ...

    def continuation_logprob(self, messages: list[dict[str, str]], continuation: str) -> float:
        """The log-probability that the reply to `messages` opens with `continuation`."""
        ...

    def complete_chat(
        self,
        messages: list[dict[str, str]],
        max_tokens: int,
        stop: list[str] | None = None,
        temperature: float = 0.0,
    ) -> str:
        """The whole answer at once."""
        ...

    def next_token_logprobs(self, messages: list[dict[str, str]], top_k: int) -> dict[str, float]:
        """The `top_k` most likely first tokens of the answer with their natural-log probabilities."""
        ...
