"""The wiring of all stages behind one object, shared by the CLI, the REPL and eval.

`Pipeline` loads each heavy piece (index, embedding model, LLM) on first use and
keeps it, so a REPL or an eval run loads the model once. Tests inject fakes or
real components through the constructor. It holds no logic of its own beyond
choosing which stage to call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.settings import Settings
from rag.types import IndexReport, Passage, SearchFilters

if TYPE_CHECKING:
    from rag.embed import Embedder
    from rag.generate import LocalLLM
    from rag.index import IndexReader
    from rag.retrieve import Retriever


class Pipeline:
    """Lazily opened index, embedder and model for one settings object."""

    def __init__(
        self,
        settings: Settings,
        *,
        embedder: Embedder | None = None,
        llm: LocalLLM | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.settings = settings
        self.cwd = cwd or Path.cwd()
        self._embedder = embedder
        self._llm = llm
        self._reader: IndexReader | None = None
        self._retriever: Retriever | None = None

    # Embedding model -----------------------------------------------------
    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            from rag.embed import load_embedder

            self._embedder = load_embedder(self.settings.embedding_model)
        return self._embedder

    # Index ---------------------------------------------------------------
    def index(
        self,
        paths: Sequence[Path],
        rebuild: bool = False,
        on_progress: Callable[[str, int, int], None] | None = None,
    ) -> IndexReport:
        from rag.index import update_index

        self.close()
        return update_index(
            self.settings,
            paths,
            lambda: self.embedder,
            cwd=self.cwd,
            rebuild=rebuild,
            on_progress=on_progress,
        )

    def close(self) -> None:
        """Release the opened index (Chroma keeps file handles open)."""
        if self._reader is not None:
            self._reader.close()
        self._reader = self._retriever = None

    @property
    def reader(self) -> IndexReader:
        if self._reader is None:
            from rag.index import open_index

            self._reader = open_index(self.settings)
        return self._reader

    @property
    def retriever(self) -> Retriever:
        if self._retriever is None:
            from rag.retrieve import Retriever

            self._retriever = Retriever(self.reader, lambda: self.embedder, self.settings)
        return self._retriever

    def search(
        self,
        query: str,
        k: int | None = None,
        filters: SearchFilters | None = None,
        expansions: Sequence[str] = (),
    ) -> list[Passage]:
        from rag.retrieve import check_query

        query = check_query(query)  # a bad question fails before the index is opened
        return self.retriever.search(query, k=k, filters=filters, expansions=expansions)

    def documents(self) -> list[dict[str, Any]]:
        return self.reader.documents()

    # Language model ------------------------------------------------------
    @property
    def llm(self) -> LocalLLM:
        if self._llm is None:
            from rag.generate import LocalLLM
            from rag.models import resolve_model

            self._llm = LocalLLM.load(
                resolve_model(self.settings),
                n_ctx=self.settings.n_ctx,
                n_threads=self.settings.n_threads,
                seed=self.settings.seed,
            )
        return self._llm

    @property
    def llm_loaded(self) -> bool:
        return self._llm is not None
