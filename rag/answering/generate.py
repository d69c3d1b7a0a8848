"""Text generation: the `ChatModel` protocol, and its in-process implementation with llama.cpp.

`ChatModel` is everything answering and query translation need from a
language model; `LocalLLM` implements it in-process, `rag.answering.llm_client.ServerChatModel`
through an OpenAI-compatible server, and the rest of the code depends on the protocol.

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
a fresh process loads it instead of processing the prefix again. llama.cpp's own logging is captured instead
of printed; its first error line explains a load failure in a one-line
`ModelError`. A `LocalLLM` serves one call at a time (no locking). `new_context` opens
another context on the same loaded weights: its own KV cache, so another prompt prefix
stays cached, for ~0.2 GB instead of a second model load (~1.8 GB, bench/results/memory.json).
Retrieval, prompt wording and token budgeting live elsewhere.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import threading
import time
from collections import deque
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from rag.answering.model_files import file_sha256
from rag.answering.models import check_gguf, display_path, spec_for_file
from rag.errors import ModelError, PromptError

if TYPE_CHECKING:
    from llama_cpp import Llama
    from llama_cpp.llama_chat_format import ChatFormatterResponse, Jinja2ChatFormatter

FALLBACK_CHAT_FORMAT = "chatml (fallback: the model has no chat template)"
GGUF_CHAT_FORMAT = "gguf chat template"
_CHATML_END = "<|im_end|>"

_log_lines: deque[str] = deque(maxlen=50)
_log_callback: Any = None  # the ctypes callback must stay referenced while llama.cpp may call it


def _capture_llama_logs() -> None:
    """Route llama.cpp's log output into `_log_lines` instead of stderr (installed once)."""
    global _log_callback
    if _log_callback is not None:
        return
    import llama_cpp

    def keep(level: int, text: bytes, user_data: Any) -> None:
        _log_lines.append(text.decode("utf-8", errors="replace").rstrip())

    _log_callback = llama_cpp.llama_log_callback(keep)
    llama_cpp.llama_log_set(_log_callback, None)


def _load_failure_reason() -> str:
    """The first llama.cpp error line (the root cause; later lines only repeat "failed")."""
    lines = [line.strip() for line in _log_lines if line.strip()]
    errors = [line for line in lines if "error" in line.lower() or "failed" in line.lower()]
    reason = (errors or lines or ["no details from llama.cpp"])[0]
    return re.sub(r"^\w+: ", "", reason)  # drop the C function name


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


# A prefix shorter than this is cheaper to process than to look up on disk.
MIN_STORED_PREFIX_TOKENS = 64


class PrefixStore:
    """llama.cpp states of fixed prompt prefixes, one file per model, llama.cpp build and prefix.

    The file name hashes everything the state depends on: the weights' sha256, the
    llama-cpp-python version, the context size and the prefix tokens themselves (so the
    prompt file and the chat template are in it). A file is written under a temporary
    name and renamed, with its own sha256 beside it; a file whose hash or tokens do not
    match is deleted and rebuilt, never loaded. Leaves out: eviction (a state is ~30 KB
    per token, one file per prompt and model) and sharing between machines.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path_for(self, model_sha256: str, n_ctx: int, prefix: list[int]) -> Path:
        import llama_cpp

        key = hashlib.sha256(
            f"{model_sha256}|{llama_cpp.__version__}|{n_ctx}|{','.join(map(str, prefix))}".encode()
        ).hexdigest()[:24]
        return self.directory / f"{key}.state"

    def load(self, llama: Llama, path: Path, prefix: list[int]) -> bool:
        """Put the stored state of `prefix` into `llama`'s context; False if there is none to trust."""
        import ctypes

        import llama_cpp

        digest = path.with_suffix(".sha256")
        try:
            intact = hashlib.sha256(path.read_bytes()).hexdigest() == digest.read_text().strip()
        except OSError:
            return False
        tokens = (llama_cpp.llama_token * len(prefix))()
        count = ctypes.c_size_t(0)
        loaded = intact and llama_cpp.llama_state_load_file(
            llama.ctx, os.fsencode(path), tokens, len(prefix), ctypes.byref(count)
        )
        if loaded and list(tokens[: count.value]) == prefix:
            llama.input_ids[: len(prefix)] = prefix
            llama.n_tokens = len(prefix)
            return True
        llama.n_tokens = 0  # the next evaluation drops whatever a failed load left in the cache
        path.unlink(missing_ok=True)
        digest.unlink(missing_ok=True)
        return False

    def save(self, llama: Llama, path: Path, prefix: list[int]) -> None:
        """Store `llama`'s state, whose cache holds exactly `prefix`, atomically; failures are ignored."""
        import llama_cpp

        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tokens = (llama_cpp.llama_token * len(prefix))(*prefix)
            if not llama_cpp.llama_state_save_file(llama.ctx, os.fsencode(temporary), tokens, len(prefix)):
                return
            digest = hashlib.sha256(temporary.read_bytes()).hexdigest()
            path.with_suffix(".sha256").write_text(digest + "\n")
            os.replace(temporary, path)
        except OSError:
            pass  # a read-only or full cache only costs the next process the prefix's processing
        finally:
            temporary.unlink(missing_ok=True)


class _LentModel:
    """A loaded `LlamaModel` lent to a further `Llama`, whose clean-up must leave it to its owner.

    llama.cpp runs any number of contexts on one `llama_model`, but llama-cpp-python 0.3's
    `Llama` always loads its own (there is no constructor argument for an existing one).
    `_llama_on_loaded_model` hands this stand-in to the constructor instead: it answers
    for the owner's model, keeps the owner alive as long as the borrower, and its
    `close` (which the borrower calls when it is freed) does nothing.
    """

    def __init__(self, owner: Llama) -> None:
        self._owner = owner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._owner._model, name)

    def close(self) -> None:
        """The weights belong to the owner, which frees them when it is freed itself."""


_model_swap = threading.Lock()


def _llama_on_loaded_model(owner: Llama, **context: Any) -> Llama:
    """A new `Llama` with its own context (`context` = constructor arguments) on `owner`'s weights."""
    from llama_cpp import Llama, _internals

    load = _internals.LlamaModel
    with _model_swap:  # the constructor looks `LlamaModel` up in the module when it runs
        _internals.LlamaModel = lambda **_: _LentModel(owner)  # type: ignore[assignment,misc]
        try:
            return Llama(model_path=owner.model_path, **context)
        finally:
            _internals.LlamaModel = load  # type: ignore[misc]


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
        check_gguf(path)
        from llama_cpp import Llama

        with _load_errors(path):
            llama = Llama(model_path=str(path), **_context_arguments(n_ctx, n_threads, seed))
        return cls(llama, path, seed, PrefixStore(prefix_dir) if prefix_dir else None)

    def new_context(self, n_ctx: int) -> LocalLLM:
        """Another context of `n_ctx` tokens on this model's loaded weights, with its own KV cache.

        It computes exactly what a separately loaded model would (the weights are the same
        buffers), and costs a KV cache and compute buffers instead of a second copy of the
        repacked weights.
        """
        threads = self._llama.n_threads
        with _load_errors(self.model_path):
            llama = _llama_on_loaded_model(self._llama, **_context_arguments(n_ctx, threads, self.seed))
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


def _context_arguments(n_ctx: int, n_threads: int, seed: int) -> dict[str, Any]:
    """The `Llama` constructor arguments of one of our contexts."""
    return {
        "n_ctx": n_ctx,
        "n_threads": n_threads,
        "n_threads_batch": n_threads,  # llama-cpp-python would use all logical cores here
        "seed": seed,
        "verbose": False,
    }


@contextlib.contextmanager
def _load_errors(path: Path) -> Iterator[None]:
    """Turn a failed model or context load into a one-line ModelError naming the file and the fix."""
    _capture_llama_logs()
    _log_lines.clear()
    try:
        yield
    except (ValueError, RuntimeError, OSError) as error:
        reason = _load_failure_reason() if _log_lines else str(error)
        fix = "run `rag models pull` to fetch it again" if spec_for_file(path) else "use a complete GGUF file"
        raise ModelError(f"llama.cpp could not load {display_path(path)} ({reason}) — {fix}") from None


def _as_list(stop: str | list[str] | None) -> list[str]:
    if stop is None:
        return []
    return [stop] if isinstance(stop, str) else list(stop)
