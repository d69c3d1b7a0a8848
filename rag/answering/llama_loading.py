"""Loading llama.cpp: a model from a GGUF file, or another context on an already loaded model.

Every failure becomes a one-line `ModelError` that names the file and the fix: llama.cpp's
own log lines are captured instead of printed, and the first error line among them is
the reason given. `open_context_on` gives a further context (its own KV cache) on the
weights another `Llama` has loaded, which llama-cpp-python 0.3 has no argument for.
Leaves out: chat templates, generation and prompt prefixes (`rag.answering.generate`).
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.answering.models import check_gguf, display_path, spec_for_file
from rag.errors import ModelError

if TYPE_CHECKING:
    from llama_cpp import Llama

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


def load_llama(path: Path, n_ctx: int, n_threads: int, seed: int) -> Llama:
    """Load the GGUF at `path` with a context of `n_ctx` tokens."""
    check_gguf(path)
    from llama_cpp import Llama

    with _load_errors(path):
        return Llama(model_path=str(path), **_context_arguments(n_ctx, n_threads, seed))


def open_context_on(owner: Llama, path: Path, n_ctx: int, seed: int) -> Llama:
    """A further context of `n_ctx` tokens on the weights `owner` has loaded from `path`.

    It computes exactly what a separately loaded model would (the weights are the same
    buffers), and costs a KV cache and compute buffers instead of a second copy of the
    repacked weights.
    """
    with _load_errors(path):
        return _llama_on_loaded_model(owner, **_context_arguments(n_ctx, owner.n_threads, seed))


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
