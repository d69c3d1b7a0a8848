"""A `ChatModel` behind an OpenAI-compatible HTTP server (llama.cpp, llama_cpp.server, Ollama, vLLM).

`ServerChatModel` sends every model call to `{llm_url}/chat/completions` with httpx,
streams answers as server-sent events, and turns every network failure into a
one-line `ServerError`: a refused connection, a timeout (`llm_timeout` seconds
without a byte), an HTTP error, and a stream that ends without a finish reason (a
server killed mid-answer) all raise instead of returning a shortened answer, so no
unverified text becomes an answer.

Token counts for the prompt budget come from the server's own tokenizer where it
has one (llama.cpp's `POST /tokenize`, llama_cpp.server's `POST /extras/tokenize/count`);
a chat prompt is counted as its messages' text plus a generous `MESSAGE_OVERHEAD_TOKENS`
per message for the template's markup, which over-counts by a few tokens per message. A server without a
tokenizer endpoint gets `estimate_tokens`: UTF-8 bytes / 2, about twice the true
count of ordinary prose, so the budget stays on the safe side.

Sampling matches the in-process model: temperature from the settings, the seed, and
`repeat_penalty` 1.0 (llama_cpp.server would otherwise apply 1.1). The server renders
the chat template itself; the context window is taken from the `n_ctx` setting, which
must match the server's. Left out: retries (a failed call is reported, not repeated)
and choosing a model among several (`llm_model` names it).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from rag.answering.chat_model import Usage
from rag.answering.server_events import StopScanner, choice_text, event_json, sse_data
from rag.errors import PromptError, ServerError

if TYPE_CHECKING:
    import httpx

    from rag.settings import Settings

API_KEY_ENV = "RAG_LLM_API_KEY"
CONNECT_TIMEOUT_SECONDS = 3.0
# Template markup around one message: 5 tokens in ChatML when the vocabulary has its special
# tokens, ~13 when it spells them out (gemma-3 under ChatML); generous, so the budget over-counts.
MESSAGE_OVERHEAD_TOKENS = 16
# The opening of the assistant's turn after the last message.
REPLY_OVERHEAD_TOKENS = 16


def estimate_tokens(text: str) -> int:
    """A tokenizer-free count: UTF-8 bytes / 2, rounded up (prose runs 3-5 bytes per token)."""
    return math.ceil(len(text.encode("utf-8")) / 2)


class ServerChatModel:
    """One model at an OpenAI-compatible endpoint; every call is an HTTP request."""

    def __init__(self, client: httpx.Client, base_url: str, model: str, n_ctx: int, seed: int) -> None:
        self._client = client
        self.base_url = base_url
        self.model = model
        self.seed = seed
        self.last_usage: Usage | None = None
        self._n_ctx = n_ctx
        self._tokenizer: str | None = None  # the endpoint that counts tokens; "" for the estimate

    @classmethod
    def connect(cls, settings: Settings) -> ServerChatModel:
        """Check the server answers `GET /models` within seconds, and pick the model."""
        import httpx

        assert settings.llm_url is not None
        headers = {"Authorization": f"Bearer {key}"} if (key := os.environ.get(API_KEY_ENV)) else {}
        client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(settings.llm_timeout, connect=CONNECT_TIMEOUT_SECONDS),
        )
        model = cls(client, settings.llm_url, settings.llm_model or "", settings.n_ctx, settings.seed)
        served = [
            str(entry.get("id"))
            for entry in model._request("GET", "/models", timeout=CONNECT_TIMEOUT_SECONDS).get("data", [])
            if isinstance(entry, dict)
        ]
        if not settings.llm_model:
            if not served:
                raise ServerError(f"The model server at {settings.llm_url} lists no model — give --llm-model")
            model.model = served[0]
        elif served and settings.llm_model not in served:
            raise ServerError(
                f"The model server at {settings.llm_url} does not serve {settings.llm_model!r} "
                f"(it serves {', '.join(served)}) — fix --llm-model"
            )
        return model

    @property
    def model_path(self) -> str:
        return f"{self.model} at {self.base_url}"

    @property
    def sha256(self) -> str:
        return "unknown (a server model)"

    @property
    def n_ctx(self) -> int:
        return self._n_ctx

    # Token counting ------------------------------------------------------
    def count_tokens(self, text: str) -> int:
        """The server tokenizer's count (BOS included where it adds one), else `estimate_tokens`."""
        if not text:
            return 0
        if self._tokenizer is None:
            self._tokenizer = self._find_tokenizer()
        if self._tokenizer == "/extras/tokenize/count":
            return int(
                self._request("POST", self._tokenizer, root=True, json=self._tokenize_body(text))["count"]
            )
        if self._tokenizer == "/tokenize":
            return len(self._request("POST", self._tokenizer, root=True, json={"content": text})["tokens"])
        return estimate_tokens(text)

    def count_messages(self, messages: list[dict[str, str]]) -> int:
        text = "\n".join(message["content"] for message in messages)
        return self.count_tokens(text) + MESSAGE_OVERHEAD_TOKENS * len(messages) + REPLY_OVERHEAD_TOKENS

    def _tokenize_body(self, text: str) -> dict[str, str]:
        return {"input": text, "model": self.model}

    def _find_tokenizer(self) -> str:
        """llama_cpp.server's count endpoint, llama.cpp's /tokenize, or "" (estimate) when neither answers."""
        import httpx

        probes = {"/extras/tokenize/count": self._tokenize_body("a"), "/tokenize": {"content": "a"}}
        for path, body in probes.items():
            try:
                response = self._client.post(self._root_url + path, json=body)
            except httpx.HTTPError as error:
                raise self._failure(error, path) from None
            if response.status_code == 200:
                return path
        return ""

    @property
    def _root_url(self) -> str:
        """The server's address without the API version (`/tokenize` lives beside `/v1`)."""
        return self.base_url.removesuffix("/v1")

    # Generation ----------------------------------------------------------
    def _chat_body(
        self, messages: list[dict[str, str]], max_tokens: int, stop: list[str] | None, temperature: float
    ) -> dict[str, Any]:
        return {
            "model": self.model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "seed": self.seed,
            "repeat_penalty": 1.0,
            **({"stop": stop} if stop else {}),
        }

    def stream_chat(
        self,
        messages: list[dict[str, str]],
        max_tokens: int,
        stop: list[str] | None = None,
        temperature: float = 0.0,
    ) -> Iterator[str]:
        """Yield the answer's text deltas from the server's event stream; see the module doc for failures."""
        started = time.perf_counter()
        prompt_tokens = self.count_messages(messages)
        if prompt_tokens >= self.n_ctx:
            raise PromptError(
                f"the prompt needs about {prompt_tokens} tokens but the context window holds {self.n_ctx} — "
                "use fewer passages (top_k) or a larger n_ctx (on the server too)"
            )
        body = {**self._chat_body(messages, max_tokens, stop, temperature), "stream": True}
        self.last_usage = None
        return self._stream(body, prompt_tokens, stop or [], started)

    def _stream(
        self, body: dict[str, Any], prompt_tokens: int, stop: list[str], started: float
    ) -> Iterator[str]:
        import httpx

        pieces: list[str] = []
        first_token_ms: float | None = None
        finish_reason = "interrupted"
        usage: dict[str, Any] = {}
        held = StopScanner(stop)
        try:
            with self._client.stream("POST", self.base_url + "/chat/completions", json=body) as response:
                self._check_status(response, "/chat/completions")
                for event in sse_data(response.iter_lines()):
                    if event == "[DONE]":
                        break
                    chunk = event_json(event, self.base_url)
                    if "error" in chunk:
                        detail = _one_line(chunk["error"])
                        raise ServerError(f"The model server at {self.base_url} failed mid-answer: {detail}")
                    usage = chunk.get("usage") or usage
                    text, finished = choice_text(chunk, held)
                    finish_reason = finished or finish_reason
                    if text:
                        if first_token_ms is None:
                            first_token_ms = (time.perf_counter() - started) * 1000
                        pieces.append(text)
                        yield text
                    if held.stopped:
                        finish_reason = "stop"
                        break
            if finish_reason == "interrupted":
                raise ServerError(
                    f"The model server at {self.base_url} ended the answer without finishing it "
                    "— check the server, then ask again"
                )
        except httpx.HTTPError as error:
            raise self._failure(error, "/chat/completions", mid_answer=bool(pieces)) from None
        finally:
            self.last_usage = Usage(
                prompt_tokens=int(usage.get("prompt_tokens") or prompt_tokens),
                cached_tokens=int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0),
                completion_tokens=int(usage.get("completion_tokens") or len(pieces)),
                first_token_ms=first_token_ms,
                total_ms=(time.perf_counter() - started) * 1000,
                finish_reason=finish_reason,
            )

    def complete_chat(
        self,
        messages: list[dict[str, str]],
        max_tokens: int,
        stop: list[str] | None = None,
        temperature: float = 0.0,
    ) -> str:
        return "".join(self.stream_chat(messages, max_tokens, stop, temperature))

    def next_token_logprobs(self, messages: list[dict[str, str]], top_k: int) -> dict[str, float]:
        """The server's `top_logprobs` for the first answer token; ServerError if it returns none."""
        body = {**self._chat_body(messages, 1, None, 0.0), "logprobs": True, "top_logprobs": top_k}
        unsupported = (
            f"The model server at {self.base_url} returns no token log-probabilities — start "
            "llama_cpp.server with --logits_all true (llama-server and vLLM return them), or run in-process"
        )
        try:
            reply = self._request("POST", "/chat/completions", json=body)
        except ServerError as error:
            if "logits_all" in str(error) or "logprobs" in str(error):
                raise ServerError(unsupported) from None
            raise
        try:
            first = reply["choices"][0]["logprobs"]["content"][0]
            return {str(entry["token"]): float(entry["logprob"]) for entry in first["top_logprobs"][:top_k]}
        except (KeyError, IndexError, TypeError) as error:
            raise ServerError(unsupported) from error

    def continuation_logprob(self, messages: list[dict[str, str]], continuation: str) -> float:
        """The log-probability of the continuation's first token, from the server's `top_logprobs`.

        An OpenAI-compatible API gives next-token probabilities only, so through a server
        just the opening token is scored: an upper bound of the continuation's probability
        (in-process, every token of it is). A first token missing from the top 20 counts as
        improbable (log-probability -20).
        """
        import math

        first = continuation.split()[0]
        scored = self.next_token_logprobs(messages, top_k=20)
        matches = [logprob for token, logprob in scored.items() if token.strip() == first]
        return math.log(sum(math.exp(logprob) for logprob in matches)) if matches else -20.0

    # HTTP ----------------------------------------------------------------
    def _request(
        self, method: str, path: str, root: bool = False, timeout: float | None = None, **kwargs: Any
    ) -> Any:
        """One JSON request; every failure becomes a one-line ServerError."""
        import httpx

        url = (self._root_url if root else self.base_url) + path
        try:
            response = self._client.request(
                method, url, timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT, **kwargs
            )
            self._check_status(response, path)
            return response.json()
        except httpx.HTTPError as error:
            raise self._failure(error, path) from None
        except ValueError as error:  # not JSON: something else answers at this address
            raise ServerError(
                f"{url} does not answer like an OpenAI-compatible server ({error}) — check --llm-url"
            ) from None

    def _check_status(self, response: httpx.Response, path: str) -> None:
        if response.status_code < 400:
            return
        response.read()
        detail = _error_detail(response)
        if response.status_code in (401, 403):
            fix = f"set {API_KEY_ENV} to a key the server accepts"
        elif response.status_code == 404:
            fix = "check --llm-url (it usually ends in /v1)"
        else:
            fix = "check the server's log"
        raise ServerError(
            f"The model server at {self.base_url} answered HTTP {response.status_code} on {path}"
            f"{': ' + detail if detail else ''} — {fix}"
        )

    def _failure(self, error: Exception, path: str, mid_answer: bool = False) -> ServerError:
        import httpx

        url = self.base_url
        if isinstance(error, httpx.ConnectError):
            return ServerError(
                f"Cannot reach the model server at {url} ({_one_line(error)}) — start it, or fix --llm-url"
            )
        if isinstance(error, httpx.TimeoutException):
            return ServerError(
                f"The model server at {url} sent nothing for too long on {path} — check that it is running "
                "and not overloaded, or raise llm_timeout"
            )
        where = "mid-answer" if mid_answer else f"on {path}"
        return ServerError(
            f"The connection to the model server at {url} broke {where} ({type(error).__name__}) "
            "— check the server, then ask again"
        )


def _error_detail(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return _one_line(response.text)[:200]
    error = data.get("error", data.get("detail", data)) if isinstance(data, dict) else data
    if isinstance(error, dict):
        error = error.get("message", error)
    return _one_line(error)[:200]


def _one_line(value: object) -> str:
    return " ".join(str(value).split())
