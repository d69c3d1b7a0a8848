"""The wiring of all stages behind one object, shared by the CLI, the REPL and eval.

`Pipeline` loads each heavy piece (index, embedding model, LLM) on first use and
keeps it, so a REPL or an eval run loads the model once. The model is a
`rag.answering.chat_model.ChatModel`: the GGUF in-process, or the server at `llm_url`. Tests inject fakes or
real components through the constructor. It holds no logic of its own beyond
choosing which stage to call.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

from rag.settings import Settings
from rag.text.language import Language
from rag.types import IndexReport, Passage, SearchFilters

AUX_CONTEXT_TOKENS = 2048  # translation prompts are short

if TYPE_CHECKING:
    from rag.answering.chat_model import ChatModel
    from rag.index.embed import Embedder
    from rag.index.reader import IndexReader
    from rag.ingest.formats.collection import CollectionOptions
    from rag.retrieval.retrieve import Retriever


class Pipeline:
    """Lazily opened index, embedder and model for one settings object."""

    def __init__(
        self,
        settings: Settings,
        *,
        embedder: Embedder | None = None,
        multilingual: Embedder | None = None,
        llm: ChatModel | None = None,
        aux_llm: ChatModel | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.settings = settings
        self.cwd = cwd or Path.cwd()
        self._embedder = embedder
        self._query_embedder: Embedder | None = None
        self._multilingual = multilingual
        self._llm = llm
        # A given model answers in every language (there is no loading another context
        # of it) and also does the short calls unless a second one is given.
        self._other_language_llms: dict[Language, ChatModel] = (
            {language: llm for language in get_args(Language) if language != "de"} if llm is not None else {}
        )
        self._aux_llm = aux_llm or llm
        self._reader: IndexReader | None = None
        self._retriever: Retriever | None = None

    def sharing_models(self, settings: Settings) -> Pipeline:
        """A pipeline for other settings (e.g. another index) on this one's encoders and loaded models."""
        other = Pipeline(settings, embedder=self._embedder, multilingual=self.multilingual, cwd=self.cwd)
        other._query_embedder = self.query_embedder if self._embedder is None else None
        other._llm, other._aux_llm = self._llm, self._aux_llm
        other._other_language_llms = self._other_language_llms
        return other

    # Embedding model -----------------------------------------------------
    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            from rag.index.embed import load_embedder

            settings = self.settings
            export_dir = settings.model_dir / "onnx"
            self._embedder = load_embedder(settings.embedding_model, settings.embed_precision, export_dir)
        return self._embedder

    @property
    def query_embedder(self) -> Embedder:
        """The embedding model for questions, always in float32: without torch where it can be.

        A one-shot question needs one vector; `load_query_embedder` gives the same vectors
        as a float32 `embedder` without importing torch (~4 s and ~0.5 GB). A loaded
        `embedder` serves questions too, unless it is the int8 one.
        """
        from rag.index.embed import OnnxEmbedder, load_query_embedder

        if self._embedder is not None and not isinstance(self._embedder, OnnxEmbedder):
            return self._embedder
        if self._query_embedder is None:
            self._query_embedder = load_query_embedder(self.settings.embedding_model)
        return self._query_embedder

    @property
    def multilingual(self) -> Embedder:
        if self._multilingual is None:
            from rag.index.embed import load_multilingual_encoder

            self._multilingual = load_multilingual_encoder()
        return self._multilingual

    # Index ---------------------------------------------------------------
    def index(
        self,
        paths: Sequence[Path],
        rebuild: bool = False,
        on_progress: Callable[[str, int, int], None] | None = None,
        collection: CollectionOptions | None = None,
    ) -> IndexReport:
        from rag.index.update import update_index

        self.close()
        return update_index(
            self.settings,
            paths,
            lambda: self.embedder,
            cwd=self.cwd,
            rebuild=rebuild,
            on_progress=on_progress,
            multilingual=lambda: self.multilingual,
            collection=collection,
        )

    def close(self) -> None:
        """Release the opened index (Chroma keeps file handles open)."""
        if self._reader is not None:
            self._reader.close()
        self._reader = self._retriever = None

    @property
    def reader(self) -> IndexReader:
        if self._reader is None:
            from rag.index.reader import open_index

            self._reader = open_index(self.settings)
        return self._reader

    @property
    def retriever(self) -> Retriever:
        if self._retriever is None:
            from rag.retrieval.retrieve import Retriever

            self._retriever = Retriever(
                self.reader, lambda: self.query_embedder, self.settings, lambda: self.multilingual
            )
        return self._retriever

    def search(
        self,
        query: str,
        k: int | None = None,
        filters: SearchFilters | None = None,
        expansions: Sequence[str] = (),
    ) -> list[Passage]:
        from rag.retrieval.retrieve import check_query

        query = check_query(query)  # a bad question fails before the index is opened
        return self.retriever.search(query, k=k, filters=filters, expansions=expansions)

    def documents(self) -> list[dict[str, Any]]:
        return self.reader.documents()

    def prepare(self, languages: Collection[Language]) -> None:
        """Open everything that questions in `languages` need: the index, encoders and model contexts.

        llama.cpp loads the model in C without holding the GIL, so it loads in a thread
        while this one opens the index, Chroma and the encoders (mostly Python): on two
        cores a one-shot question waits for the longer of the two, not their sum.
        """
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="rag-model") as pool:
            contexts = pool.submit(self._open_contexts, languages)
            self.retriever.open()
            contexts.result()

    def _open_contexts(self, languages: Collection[Language]) -> None:
        for language in sorted(set(languages), key=lambda language: language != "de"):
            self.answer_llm(language)
        if any(language != "de" for language in languages) and self.settings.translate_queries:
            self.aux_llm  # noqa: B018

    # Language model ------------------------------------------------------
    def _load_llm(self, n_ctx: int) -> ChatModel:
        """A new in-process model context of `n_ctx` tokens, or the connection to the model server.

        The first context loads the model; every further one opens on the same weights
        (`LocalLLM.new_context`), so it adds its KV cache and compute buffers only.
        """
        if self.settings.llm_url:
            from rag.answering.llm_client import ServerChatModel

            return ServerChatModel.connect(self.settings)
        from rag.answering.generate import LocalLLM
        from rag.answering.models import resolve_model

        loaded = [self._llm, self._aux_llm, *self._other_language_llms.values()]
        for model in loaded:
            if isinstance(model, LocalLLM):
                return model.new_context(n_ctx)
        return LocalLLM.load(
            resolve_model(self.settings),
            n_ctx=n_ctx,
            n_threads=self.settings.n_threads,
            seed=self.settings.seed,
            prefix_dir=self.settings.prefix_cache_dir,
        )

    @property
    def llm(self) -> ChatModel:
        """The model context that writes German answers; its fixed prompt prefix stays in the KV cache."""
        if self._llm is None:
            self._llm = self._load_llm(self.settings.n_ctx)
        return self._llm

    def answer_llm(self, language: Language) -> ChatModel:
        """The model context that writes answers in `language`.

        Each language's answer prompt has its own fixed prefix (~780 tokens). Sharing one
        context, a question in the other language evicts it, and the next question pays
        ~9 s to process it again. So each further language gets its own context on the
        loaded weights, opened on first use (the KV cache and compute buffers, see
        `_load_llm`). A model server keeps its own cache, so every language shares its
        connection.
        """
        if language == "de" or self.settings.llm_url:
            return self.llm
        if language not in self._other_language_llms:
            self._other_language_llms[language] = self._load_llm(self.settings.n_ctx)
        return self._other_language_llms[language]

    @property
    def aux_llm(self) -> ChatModel:
        """A further, short model context on the loaded weights for translating questions.

        Short calls in the answer context would evict its cached prefix (system prompt
        and examples, ~630 tokens, ~5 s to recompute on 2 cores), so they get a context
        of their own. A model server gets the same connection as the answers.
        """
        if self._aux_llm is None:
            self._aux_llm = self.llm if self.settings.llm_url else self._load_llm(AUX_CONTEXT_TOKENS)
        return self._aux_llm

    @property
    def llm_loaded(self) -> bool:
        return self._llm is not None
