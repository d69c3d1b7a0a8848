"""Hybrid retrieval: BM25 and two dense scores, standardised and fused per query.

BM25 carries German; MiniLM is English-only; the multilingual encoder (Universal
Sentence Encoder) puts German and English in one space, so it links an English
question to German text and a German paraphrase to its source. Reciprocal rank
fusion throws away how sure each retriever is, and on GermanQuAD any RRF mix scored
below BM25 alone. So fusion works on scores instead: each retriever's scores are
z-standardised over the union of all retrievers' candidates and added with weights
(BM25 1.0, MiniLM 0.5, multilingual 0.75 by default). A confident BM25 hit stays on
top; when BM25 has no clear winner (e.g. an English question over German text), the
dense sides decide. On GermanQuAD each dense side adds to BM25 and the three beat any
two (bench/germanquad.py). Extra query variants (a German translation of an English
question) add BM25 score vectors; each candidate takes its best one. Hits from one
document that overlap are merged into one passage, so the model sees one coherent
span instead of two fragments.

A question often names its article ("laut Tichys Einblick", "according to Novastan",
"laut Korybko", "im Artikel „Machtkampf um Zentralasien“"). Such a name says where to look: the
named documents' chunks get a bonus of `DOCUMENT_HINT_BONUS` times the summed
weights of the retrievers taking part (in standard deviations of their scores).
Other documents stay in the running, so a question over several articles still
finds them. The name (with its frame, "laut dem Artikel") says which article, not
which passage, so the question without it is scored as one more keyword variant;
each chunk takes its best variant. The chunks of an article named by its title
are ranked by the name-free variants alone: the answering passage can then outrank
the title passage that only repeats the title. An outlet's or author's name stays
in: it marks bylines and credits ("Joseph Fischer für Novastan / Aus dem Englischen
von …"), which are answers too. Finding the names is `rag.retrieval.names`.

Left out: cross-encoder re-ranking (no multilingual model is available offline).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from rag.errors import InputError
from rag.index.store import nearest_kept, where_clause
from rag.retrieval.names import QUOTED, cut_names, fold, name_mentions, without_document_names
from rag.settings import Settings
from rag.types import Chunk, Passage, SearchFilters

if TYPE_CHECKING:
    from rag.index.embed import Embedder
    from rag.index.reader import IndexReader
    from rag.index.store import VectorStore

MAX_QUERY_CHARS = 2000
# Dense search filters in code (`nearest_kept`) when at least this share of chunks may be
# returned: the first request is then at most twice as long as a filtered one, and an
# unfiltered search costs ~2 ms where Chroma's filter reads every row (docs/scaling.md).
OVERSAMPLE_MIN_SHARE = 0.5
# Merged passages stay short: at most this many chunks of one document.
MAX_CHUNKS_PER_PASSAGE = 2


# Fused scores are weighted sums of z-scores; a named document's chunks gain this share of the weights.
DOCUMENT_HINT_BONUS = 0.8


def standardize(scores: np.ndarray) -> np.ndarray:
    """z-scores (zero mean, unit spread); all zeros when the scores do not vary."""
    spread = float(scores.std())
    if spread < 1e-9:
        return np.zeros_like(scores, dtype=np.float64)
    return (scores - scores.mean()) / spread


def fuse_scores(signals: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """Weighted sum of z-standardised score vectors over the same candidates."""
    fused = np.zeros(len(signals[0]), dtype=np.float64)
    for signal, weight in zip(signals, weights, strict=True):
        fused += weight * standardize(np.asarray(signal, dtype=np.float64))
    return fused


def check_query(query: str) -> str:
    """The stripped query, or an InputError for an empty or oversized one."""
    stripped = query.strip()
    if not stripped:
        raise InputError("The question is empty — type a question, e.g. rag search 'Wer ist Tokajew?'")
    if len(stripped) > MAX_QUERY_CHARS:
        raise InputError(
            f"The question is {len(stripped):,} characters, over the {MAX_QUERY_CHARS:,} limit — shorten it"
        )
    return stripped


def chunk_allowed(chunk: Chunk, filters: SearchFilters) -> bool:
    """Whether a chunk passes the metadata filters (body only unless comments are on)."""
    allowed_sections = ("body", "comments") if filters.include_comments else ("body",)
    if chunk.section not in allowed_sections:
        return False
    if filters.sources and not any(
        chunk.source == s or chunk.source.endswith("/" + s) for s in filters.sources
    ):
        return False
    if filters.outlet and (chunk.outlet or "").casefold() != filters.outlet.casefold():
        return False
    if filters.date_from and (not chunk.date or chunk.date < filters.date_from):
        return False
    return not (filters.date_to and (not chunk.date or chunk.date > filters.date_to))


class Retriever:
    """Searches one opened index. Each encoder is loaded on first use only."""

    def __init__(
        self,
        reader: IndexReader,
        embedder: Callable[[], Embedder],
        settings: Settings,
        multilingual: Callable[[], Embedder],
    ) -> None:
        self.reader = reader
        self._embedder_factory = embedder
        self._multilingual_factory = multilingual
        self.settings = settings

    @cached_property
    def _documents(self) -> dict[str, Chunk]:
        """One chunk per indexed source, for the article's metadata."""
        return {source: chunks[0] for source, chunks in self.reader.chunks_by_source.items()}

    @cached_property
    def embedder(self) -> Embedder:
        return self._embedder_factory()

    @cached_property
    def multilingual(self) -> Embedder:
        return self._multilingual_factory()

    def open(self) -> None:
        """Load now what the first search would: the chunk table, BM25, each dense encoder and its vectors."""
        self.reader.keyword  # noqa: B018
        self._documents  # noqa: B018
        self._dense_sides()

    def _dense_sides(self) -> list[tuple[float, Embedder, VectorStore]]:
        """(weight, encoder, its vectors) for each dense retriever that takes part.

        A retriever weighted 0 costs nothing: neither its encoder nor Chroma is loaded.
        """
        settings, sides = self.settings, []
        if settings.dense_weight > 0:
            sides.append((settings.dense_weight, self.embedder, self.reader.store))
        if settings.multilingual_weight > 0:
            sides.append((settings.multilingual_weight, self.multilingual, self.reader.multilingual_store))
        return sides

    def resolve_filters(self, filters: SearchFilters) -> SearchFilters:
        """Filters with `sources` expanded to indexed paths (a bare file name matches its path)."""
        if not filters.sources:
            return filters
        indexed = self.reader.chunks_by_source
        sources = tuple(
            source
            for source in indexed
            if any(source == wanted or source.endswith("/" + wanted) for wanted in filters.sources)
        )
        return replace(filters, sources=sources or filters.sources)

    def rank_chunks(
        self, query: str, filters: SearchFilters, expansions: Sequence[str] = ()
    ) -> list[tuple[str, float]]:
        """Fused (chunk id, score) pairs, best first, for the query and its variants."""
        settings = self.settings
        filters = self.resolve_filters(filters)
        allowed = {cid for cid, chunk in self.reader.chunks.items() if chunk_allowed(chunk, filters)}
        if not allowed:
            return []
        variants = [query, *expansions]
        mentions = [name_mentions(text, self._documents) for text in variants]
        named = frozenset().union(*(sources for found in mentions for _, sources in found))
        if named:
            variants += [
                cut
                for text, found in zip(variants, mentions, strict=True)
                if (cut := cut_names(text, found)) != fold(text) and cut
            ]
        keyword_hits = [
            dict(self.reader.keyword.search(text, settings.candidates, allowed_ids=allowed))
            for text in variants
        ]
        dense = self._dense_hits(query, filters, allowed)
        candidates = sorted(set().union(*keyword_hits, *(hits for *_, hits in dense)))
        if not candidates:
            return []
        signals: list[np.ndarray] = []
        weights: list[float] = []
        if any(keyword_hits):
            all_keyword = [
                self._keyword_scores(text, candidates, hits)
                for text, hits in zip(variants, keyword_hits, strict=True)
            ]
            standardized = np.array([standardize(scores) for scores in all_keyword])
            keyword = standardized.max(axis=0)
            # Within an article named by its title, the title's words tell nothing about
            # which passage answers. (An outlet's or author's name does: it marks credits.)
            titled = frozenset().union(*(s for found in mentions for m, s in found if m.re is QUOTED))
            if titled:
                name_free = [i for i in range(len(variants)) if i >= len(mentions) or not mentions[i]]
                in_titled = self._in_sources(candidates, titled)
                keyword = np.where(in_titled, standardized[name_free].max(axis=0), keyword)
            signals.append(keyword)
            weights.append(settings.bm25_weight)
        for weight, store, vector, hits in dense:
            if hits:
                signals.append(self._dense_scores(store, vector, candidates, hits))
                weights.append(weight)
        fused = fuse_scores(signals, weights)
        if named:
            fused += DOCUMENT_HINT_BONUS * sum(weights) * self._in_sources(candidates, named)
        order = np.argsort(-fused, kind="stable")
        return [(candidates[i], float(fused[i])) for i in order]

    def _dense_hits(
        self, query: str, filters: SearchFilters, allowed: set[str]
    ) -> list[tuple[float, VectorStore, np.ndarray, dict[str, float]]]:
        """(weight, store, query vector, {chunk id: cosine}) for each dense retriever."""
        candidates = self.settings.candidates
        allowed_share = len(allowed) / len(self.reader.chunks)
        dense = []
        for weight, encoder, store in self._dense_sides():
            vector = encoder.encode([query])[0]
            if allowed_share >= OVERSAMPLE_MIN_SHARE:
                found = nearest_kept(store, vector, candidates, allowed, kept_share=allowed_share)
            else:
                found = store.query(vector, candidates, where=where_clause(filters))
            dense.append((weight, store, vector, dict(found)))
        return dense

    def _in_sources(self, candidates: Sequence[str], sources: frozenset[str]) -> np.ndarray:
        """Whether each candidate chunk comes from one of `sources` (a bool per candidate)."""
        return np.array([self.reader.chunks[c].source in sources for c in candidates])

    def _keyword_scores(self, text: str, candidates: list[str], hits: dict[str, float]) -> np.ndarray:
        """BM25 scores of every candidate (those outside the top hits are looked up)."""
        if all(cid in hits for cid in candidates):
            return np.array([hits[cid] for cid in candidates])
        row_scores = self.reader.keyword.scores(text)
        rows = self.reader.keyword.rows([cid for cid in candidates])
        return row_scores[rows].astype(np.float64)

    @staticmethod
    def _dense_scores(
        store: VectorStore, vector: np.ndarray, candidates: list[str], hits: dict[str, float]
    ) -> np.ndarray:
        """Cosine similarity of every candidate; vectors of the other retrievers' candidates are fetched."""
        missing = [cid for cid in candidates if cid not in hits]
        fetched = store.embeddings(missing) if missing else {}
        sims = dict(hits)
        for cid, embedding in fetched.items():
            sims[cid] = float(np.dot(np.asarray(embedding, dtype=np.float32), vector))
        floor = min(hits.values()) if hits else 0.0
        return np.array([sims.get(cid, floor) for cid in candidates])

    def headings(self, passages: Sequence[Passage]) -> list[Passage]:
        """The opening chunk (title, byline) of each article that `passages` come from."""
        sources = dict.fromkeys(p.source for p in passages)
        return [_passage(chunks[0], 0.0) for s in sources if (chunks := self.reader.chunks_by_source.get(s))]

    def sequels(self, passages: Sequence[Passage]) -> list[Passage | None]:
        """For each passage, the chunk that overlaps its end and runs on past it (None: none does).

        Within a paragraph chunks overlap by whole sentences, so that chunk holds the
        sentence that follows the passage: a quote that does not stand alone takes it
        (`rag.answering.sentences`). Chunks of different paragraphs do not overlap.
        """
        sequels: list[Passage | None] = []
        for passage in passages:
            chunks = self.reader.chunks_by_source.get(passage.source, [])
            runs_on = (c for c in chunks if c.section == passage.section and c.start <= passage.end < c.end)
            sequels.append(next((_passage(chunk, 0.0) for chunk in runs_on), None))
        return sequels

    def without_names(self, query: str) -> str:
        """`query` without the phrases that name indexed articles (see `without_document_names`)."""
        return without_document_names(query, self._documents)

    def search(
        self,
        query: str,
        k: int | None = None,
        filters: SearchFilters | None = None,
        expansions: Sequence[str] = (),
    ) -> list[Passage]:
        """The k best passages for `query`, neighbouring hits merged."""
        query = check_query(query)
        k = k or self.settings.top_k
        filters = filters or SearchFilters(include_comments=self.settings.include_comments)
        ranked = self.rank_chunks(query, filters, expansions)
        return merge_hits([(self.reader.chunks[cid], score) for cid, score in ranked], k)


def _passage(chunk: Chunk, score: float) -> Passage:
    return Passage(
        source=chunk.source,
        start=chunk.start,
        end=chunk.end,
        text=chunk.text,
        score=score,
        title=chunk.title,
        section=chunk.section,
        outlet=chunk.outlet,
        date=chunk.date,
        author=chunk.author,
        chunk_ids=(chunk.id,),
        page=chunk.page,
    )


def _join(passage: Passage, chunk: Chunk) -> Passage | None:
    """`passage` extended by an overlapping chunk of the same section, else None.

    Only overlapping spans are joined, because only then is the union's text known
    exactly from the two pieces (spans must stay exact for citations).
    """
    if chunk.source != passage.source or chunk.section != passage.section:
        return None
    if len(passage.chunk_ids) >= MAX_CHUNKS_PER_PASSAGE:
        return None
    if chunk.start >= passage.start and chunk.end <= passage.end:
        return passage  # already contained
    if passage.start <= chunk.start <= passage.end < chunk.end:
        text = passage.text + chunk.text[passage.end - chunk.start :]
        return replace(passage, end=chunk.end, text=text, chunk_ids=(*passage.chunk_ids, chunk.id))
    if chunk.start < passage.start <= chunk.end <= passage.end:
        text = chunk.text + passage.text[chunk.end - passage.start :]
        return replace(passage, start=chunk.start, text=text, chunk_ids=(chunk.id, *passage.chunk_ids))
    return None


def merge_hits(hits: Sequence[tuple[Chunk, float]], k: int) -> list[Passage]:
    """Turn ranked chunks into at most k passages, joining overlapping neighbours.

    A passage keeps the score and rank of its best chunk. Hits ranked below the
    k-th passage are not looked at, so merging never pads a passage with text that
    did not rank.
    """
    passages: list[Passage] = []
    for chunk, score in hits:
        if len(passages) == k:
            break
        for position, passage in enumerate(passages):
            joined = _join(passage, chunk)
            if joined is not None:
                passages[position] = joined
                break
        else:
            passages.append(_passage(chunk, score))
    return passages
