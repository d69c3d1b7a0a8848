"""Text generation in-process with llama.cpp: `LocalLLM`, the local `ChatModel`.

`LocalLLM` wraps `llama_cpp.Llama` (imported lazily). Chat messages are rendered
with the model's own chat template from the GGUF metadata (the same Jinja
formatter llama-cpp-python builds from `tokenizer.chat_template`); models without
a template fall back to ChatML, and `chat_format_name` says which was used. The
rendered prompt is tokenized once and passed as tokens, so `count_messages`
counts exactly what the model will read. llama.cpp keeps the KV cache of the
previous call and re-evaluates only the tokens after the longest common prefix,
so a fixed system prompt and few-shot block are processed once per session; we
never reset the model between calls. Across sessions, `PrefixStore` keeps that
prefix's llama.cpp state on disk (the mechanism behind llama.cpp's `--prompt-cache`):
a fresh process loads it instead of processing the prefix again. Loading, with its
one-line errors, is `rag.answering.llama_loading`'s job. A `LocalLLM` serves one call at
a time (no locking). `new_context` opens another context on the same loaded weights:
its own KV cache, so another prompt prefix stays cached, for ~0.2 GB instead of a
second model load (~1.8 GB, bench/results/memory.json). Retrieval, prompt wording and
token budgeting live elsewhere.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from rag.answering.chat_model import Usage
from rag.answering.llama_loading import load_llama, open_context_on
from rag.answering.model_files import file_sha256
from rag.answering.prefix_store import MIN_STORED_PREFIX_TOKENS, PrefixStore
from rag.errors import PromptError

if TYPE_CHECKING:
    from llama_cpp import Llama
    from llama_cpp.llama_chat_format import ChatFormatterResponse, Jinja2ChatFormatter

FALLBACK_CHAT_FORMAT = "chatml (fallback: the model has no chat template)"
GGUF_CHAT_FORMAT = "gguf chat template"
_CHATML_END = "<|im_end|>"


class LocalLLM:
    """One loaded GGUF model with chat rendering, token counting and streaming generation."""

    def __init__(
        self, llama: Llama, model_path: Path, seed: int, prefix_store: PrefixStore | None = None
    ) -> None:
        self._llama = llama
        self.model_path = model_path
        self.seed = seed
        self.last_usage: Usage | None = None
        self.prefix_loaded = 0  # prompt tokens this context took from a stored prefix state
        self._sha256: str | None = None
        self._prefix_store = prefix_store
        self._formatter, self.chat_format_name, self._add_bos = self._chat_formatter()

    @classmethod
    def load(
        cls, path: Path, n_ctx: int, n_threads: int, seed: int, prefix_dir: Path | None = None
    ) -> LocalLLM:
        """Load `path`; every failure becomes a ModelError naming the file and the fix."""
        llama = load_llama(path, n_ctx, n_threads, seed)
        return cls(llama, path, seed, PrefixStore(prefix_dir) if prefix_dir else None)

    def new_context(self, n_ctx: int) -> LocalLLM:
        """Another context of `n_ctx` tokens on this model's loaded weights, with its own KV cache."""
        llama = open_context_on(self._llama, self.model_path, n_ctx, self.seed)
        return LocalLLM(llama, self.model_path, self.seed, self._prefix_store)

    @property
    def n_ctx(self) -> int:
        return int(self._llama.n_ctx())

    @property
    def sha256(self) -> str:
        """Hash of the model file, from the verified sidecar when present (else computed once)."""
        if self._sha256 is None:
            self._sha256 = file_sha256(self.model_path)
        return self._sha256

    def _chat_formatter(self) -> tuple[Jinja2ChatFormatter, str, bool]:
        """The GGUF's own template if it has one, else ChatML; plus whether to prepend BOS ourselves."""
        from llama_cpp import llama_chat_format

        eos_id, bos_id = self._llama.token_eos(), self._llama.token_bos()
        eos, bos = (self._token_text(eos_id), self._token_text(bos_id))
        template = self._llama.metadata.get("tokenizer.chat_template")
        if template:
            # Same construction as llama-cpp-python's default; the template adds BOS where it wants it.
            formatter = llama_chat_format.Jinja2ChatFormatter(template, eos, bos, stop_token_ids=[eos_id])
            return formatter, GGUF_CHAT_FORMAT, False
        formatter = llama_chat_format.Jinja2ChatFormatter(
            llama_chat_format.CHATML_CHAT_TEMPLATE, _CHATML_END, bos, stop_token_ids=[eos_id]
        )
        return formatter, FALLBACK_CHAT_FORMAT, True

    def _token_text(self, token: int) -> str:
        if token == -1:
            return ""
        return self._llama.detokenize([token], special=True).decode("utf-8", errors="replace")

    def _render(self, messages: list[dict[str, str]]) -> ChatFormatterResponse:
        try:
            return self._formatter(messages=messages)  # type: ignore[arg-type]
        except Exception as error:  # templates reject bad turn orders via raise_exception or Jinja errors
            reason = " ".join(str(error).split())
            raise PromptError(
                f"the chat template of {self.model_path.name} rejects these messages: {reason}"
            ) from None

    def render(self, messages: list[dict[str, str]]) -> str:
        """The exact prompt text the model reads for `messages` (for debugging and tests)."""
        return self._render(messages).prompt

    def _prompt_tokens(self, rendered: ChatFormatterResponse) -> list[int]:
        return self._llama.tokenize(rendered.prompt.encode("utf-8"), add_bos=self._add_bos, special=True)

    def _fixed_prefix(self, messages: list[dict[str, str]], tokens: list[int]) -> list[int]:
        """The tokens of `tokens` that do not depend on the last message's content."""
        other = [*messages[:-1], {**messages[-1], "content": "x"}]
        shared = self._llama.longest_token_prefix(tokens, self._prompt_tokens(self._render(other)))
        return tokens[: min(shared, len(tokens) - 1)]

    def _start_from_stored_prefix(self, messages: list[dict[str, str]], tokens: list[int]) -> None:
        """In a fresh context, load the fixed prefix's state from disk, or process and store it."""
        if self._prefix_store is None or self._llama.n_tokens or len(messages) < 2:
            return
        prefix = self._fixed_prefix(messages, tokens)
        if len(prefix) < MIN_STORED_PREFIX_TOKENS:
            return
        path = self._prefix_store.path_for(self.sha256, self.n_ctx, prefix)
        if self._prefix_store.load(self._llama, path, prefix):
            self.prefix_loaded = len(prefix)
            return
        self._llama.eval(prefix)
        self._prefix_store.save(self._llama, path, prefix)

    def count_tokens(self, text: str) -> int:
        """Tokens of plain text (no BOS, special-token markup counted as text)."""
        return len(self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def count_messages(self, messages: list[dict[str, str]]) -> int:
        """Tokens of the full rendered chat prompt, including the opening of the assistant turn."""
        return len(self._prompt_tokens(self._render(messages)))

    def stream_chat(
        self,
        messages: list[dict[str, str]],
        max_tokens: int,
        stop: list[str] | None = None,
        temperature: float = 0.0,
    ) -> Iterator[str]:
        """Yield the answer as text deltas; `last_usage` is set when the stream ends or is interrupted.

        The prompt is rendered and checked against the context window before this returns,
        so a too-long prompt fails at the call, not in the middle of iteration.
        """
        started = time.perf_counter()
        rendered = self._render(messages)
        tokens = self._prompt_tokens(rendered)
        if len(tokens) >= self.n_ctx:
            raise PromptError(
                f"the prompt needs {len(tokens)} tokens but the context window holds {self.n_ctx} — "
                "use fewer passages (top_k) or a larger n_ctx"
            )
        self._start_from_stored_prefix(messages, tokens)
        cached = self._llama.longest_token_prefix(list(self._llama.eval_tokens), tokens)
        stops = [*(stop or []), *_as_list(rendered.stop)]
        self.last_usage = None
        return self._stream(
            tokens, min(cached, len(tokens)), stops, rendered, max_tokens, temperature, started
        )

    def _stream(
        self,
        tokens: list[int],
        cached: int,
        stops: list[str],
        rendered: ChatFormatterResponse,
        max_tokens: int,
        temperature: float,
        started: float,
    ) -> Iterator[str]:
        chunks = self._llama.create_completion(
            prompt=tokens,
            max_tokens=max_tokens,
            temperature=temperature,
            stop=stops,
            seed=self.seed,  # per call, so an answer does not depend on earlier calls
            stream=True,
            stopping_criteria=rendered.stopping_criteria,
        )
        assert isinstance(chunks, Generator)
        pieces: list[str] = []
        first_token_ms: float | None = None
        finish_reason = "interrupted"
        try:
            for chunk in chunks:
                choice = chunk["choices"][0]
                if choice["finish_reason"]:
                    finish_reason = choice["finish_reason"]
                if text := choice["text"]:
                    if first_token_ms is None:
                        first_token_ms = (time.perf_counter() - started) * 1000
                    pieces.append(text)
                    yield text
        finally:
            chunks.close()  # a Ctrl-C or an early break ends llama-cpp-python's generator cleanly
            self.last_usage = Usage(
                prompt_tokens=len(tokens),
                cached_tokens=cached,
                completion_tokens=self.count_tokens("".join(pieces)),
                first_token_ms=first_token_ms,
                total_ms=(time.perf_counter() - started) * 1000,
                finish_reason=finish_reason,
            )

    def continuation_logprob(self, messages: list[dict[str, str]], continuation: str) -> float:
        """The log-probability that the model's reply to `messages` starts with `continuation`.

        The prompt is evaluated as `stream_chat` would (the cached prefix is reused), then
        each continuation token is scored from the last logits and fed in. A following
        `stream_chat` with the same messages finds the whole prompt cached.
        """
        import numpy as np

        tokens = self._prompt_tokens(self._render(messages))
        wanted = self._llama.tokenize(continuation.encode("utf-8"), add_bos=False, special=False)
        if len(tokens) + len(wanted) >= self.n_ctx:
            raise PromptError(
                f"the prompt needs {len(tokens)} tokens but the context window holds {self.n_ctx}"
            )
        self._start_from_stored_prefix(messages, tokens)
        llama = self._llama
        cached = llama.longest_token_prefix(list(llama.eval_tokens), tokens)
        llama.n_tokens = min(cached, len(tokens) - 1)  # the last prompt token is fed again for its logits
        llama.eval(tokens[llama.n_tokens :])
        total = 0.0
        for token in wanted:
            logits = np.ctypeslib.as_array(llama._ctx.get_logits_ith(-1), shape=(llama.n_vocab(),))
            shifted = logits.astype(np.float64) - float(logits.max())
            total += float(shifted[token] - np.log(np.exp(shifted).sum()))
            llama.eval([token])
        return total

    def complete_chat(
        self,
        messages: list[dict[str, str]],
        max_tokens: int,
        stop: list[str] | None = None,
        temperature: float = 0.0,
    ) -> str:
        """The whole answer at once (for short internal calls such as query translation)."""
        return "".join(self.stream_chat(messages, max_tokens, stop, temperature))

    def next_token_logprobs(self, messages: list[dict[str, str]], top_k: int) -> dict[str, float]:
        """The `top_k` most likely first answer tokens and their log-probabilities.

        The model is loaded without `logits_all` (it would hold n_ctx x vocabulary floats),
        so the prompt is evaluated through `generate`, which reuses the KV cache like any
        other call, and the logits of its last token are read from the context.
        """
        import llama_cpp
        import numpy as np

        tokens = self._prompt_tokens(self._render(messages))
        if len(tokens) >= self.n_ctx:
            raise PromptError(
                f"the prompt needs {len(tokens)} tokens but the context window holds {self.n_ctx} — "
                "shorten it or use a larger n_ctx"
            )
        steps = self._llama.generate(tokens, temp=0.0, reset=True)
        try:
            next(steps)  # evaluates the prompt, then samples one token (which is not evaluated)
            vocabulary = self._llama.n_vocab()
            logits = np.ctypeslib.as_array(
                llama_cpp.llama_get_logits_ith(self._llama.ctx, -1), shape=(vocabulary,)
            ).copy()
        finally:
            steps.close()
        logprobs = self._llama.logits_to_logprobs(logits)
        best = np.argsort(-logprobs, kind="stable")[:top_k]
        found: dict[str, float] = {}
        for token in best:
            text = self._llama.detokenize([int(token)], special=True).decode("utf-8", errors="replace")
            found.setdefault(text, float(logprobs[token]))  # two tokens may decode alike: keep the likelier
        return found


def _as_list(stop: str | list[str] | None) -> list[str]:
    if stop is None:
        return []
    return [stop] if isinstance(stop, str) else list(stop)
