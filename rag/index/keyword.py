"""Keyword retrieval: BM25 (bm25s) over chunks with German analysis and name folding.

`analyze` turns text into index terms: lower-cased word tokens without German or
English stop words, Snowball-stemmed (German), plus one phonetic term per word
(Kölner Phonetik). The phonetic term lets spellings of one name meet across
transliterations: Tokajew, Toqajew, Toqaev and Tokayev all fold to the key 243,
Kasachstan and Kazakhstan to 484826, and many German/English cognates
(Präsident/president) fold together too. An exact spelling still scores higher,
because it matches the stem term as well as the phonetic one.

Answer-time matching (`answer_terms`: which key words of a question a
sentence holds, and whether an answer's words are in its evidence) decides word by word,
so a collision there counts a whole word as present: "Flagge" and "Folgen" share the key
354. There each key also carries the sounds of the stem's first two letters (vowels
apart, consonants by their Kölner class), so only words that begin alike meet by sound.
Between the questions of `evals/` and their candidate sentences this kept every name
variant (Tokayev/Toqajew, Usbekistan/Uzbekistan, Selenskyj/Zelensky); of the 27
phonetic-only matches it removed, 26 were collisions (Moskau/message, Vorgang/Vergang,
Titel/Detail) and one a cognate (central/zentral). The index keeps plain keys: BM25
weighs every term of a query, and on GermanQuAD it ranked the same with phonetic keys
and without any (MRR@10 0.919 both).

Left out: compound splitting, synonyms and translation; the dense retriever and
query translation cover meaning across languages.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.types import Chunk

if TYPE_CHECKING:
    import numpy as np

_WORD = re.compile(r"\w+", re.UNICODE)
PHONETIC_PREFIX = "~"
# Shorter words and codes collide too often to be useful as name keys.
_MIN_PHONETIC_WORD = 4
_MIN_PHONETIC_CODE = 3
_IDS_FILE = "chunk_ids.json"


@cache
def stop_words() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN, STOPWORDS_GERMAN

    return frozenset(STOPWORDS_GERMAN) | frozenset(STOPWORDS_EN)


@cache
def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("german")


@cache
def phonetic_key(word: str) -> str:
    """Kölner Phonetik code of one word ('' when too short to be distinctive)."""
    import cologne_phonetics

    if len(word) < _MIN_PHONETIC_WORD or word.isdigit():
        return ""
    code: str = cologne_phonetics.encode(word)[0][1]
    return code if len(code) >= _MIN_PHONETIC_CODE else ""


def analyze(text: str) -> list[str]:
    """Index terms of `text`: stems of non-stop words plus their phonetic keys."""
    return _terms(text, onset=False)


def answer_terms(text: str) -> list[str]:
    """Terms for answer-time matching: the stems, and phonetic keys that carry the stem's onset
    sounds (see the module doc)."""
    return _terms(text, onset=True)


def _terms(text: str, onset: bool) -> list[str]:
    stopped = stop_words()
    words = [w for w in (m.group().lower() for m in _WORD.finditer(text)) if w not in stopped]
    stems: list[str] = _stemmer().stemWords(words)
    # Keys come from the stem without a final s: the stemmer leaves the genitive s on
    # names (Selenskyjs, Tokajews), which would otherwise give them another key.
    keys = [
        PHONETIC_PREFIX + (onset_sounds(stem) if onset else "") + key
        for stem in stems
        if (key := phonetic_key(stem.removesuffix("s")))
    ]
    return stems + keys


# Sounds of a word's first letters: vowels as themselves, consonants by Kölner class.
_ONSET_SOUND = str.maketrans("äöüyjbpdtfvwgkqclmnrszßxh", "aouiiBBDDFFFKKKKLNNRSSSXH")


def onset_sounds(stem: str) -> str:
    """The sounds of the first two letters of `stem` ("flagg" → "FL", "folg" → "Fo")."""
    return stem[:2].translate(_ONSET_SOUND)


class KeywordIndex:
    """A bm25s index whose rows are chunk ids, saved beside the vector store."""

    def __init__(self, retriever: Any, chunk_ids: list[str]) -> None:
        self._retriever = retriever
        self.chunk_ids = chunk_ids
        self._row_of = {chunk_id: row for row, chunk_id in enumerate(chunk_ids)}

    @classmethod
    def build(cls, chunks: Sequence[Chunk]) -> KeywordIndex:
        import bm25s

        retriever = bm25s.BM25()
        if chunks:
            retriever.index([analyze(chunk.text) for chunk in chunks], show_progress=False)
        return cls(retriever, [chunk.id for chunk in chunks])

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        if self.chunk_ids:
            self._retriever.save(str(directory), show_progress=False)
        (directory / _IDS_FILE).write_text(json.dumps(self.chunk_ids), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> KeywordIndex:
        import bm25s

        chunk_ids: list[str] = json.loads((directory / _IDS_FILE).read_text(encoding="utf-8"))
        retriever = bm25s.BM25.load(str(directory), show_progress=False) if chunk_ids else bm25s.BM25()
        return cls(retriever, chunk_ids)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every row for `query` (zeros when no term is known)."""
        import numpy as np

        vocab = getattr(self._retriever, "vocab_dict", None) or {}
        terms = [term for term in analyze(query) if term in vocab]
        if not terms or not self.chunk_ids:
            return np.zeros(len(self.chunk_ids), dtype=np.float32)
        return np.asarray(self._retriever.get_scores(terms), dtype=np.float32)

    def rows(self, chunk_ids: Sequence[str]) -> list[int]:
        """Row numbers of the given chunk ids (all must be indexed)."""
        return [self._row_of[chunk_id] for chunk_id in chunk_ids]

    def search(self, query: str, k: int, allowed_ids: set[str] | None = None) -> list[tuple[str, float]]:
        """Top-k (chunk id, score) pairs with a positive score, best first."""
        import numpy as np

        scores = self.scores(query)
        if allowed_ids is not None:
            mask = np.zeros(len(scores), dtype=bool)
            mask[[self._row_of[i] for i in allowed_ids if i in self._row_of]] = True
            scores = np.where(mask, scores, 0.0)
        positive = np.flatnonzero(scores > 0)
        if positive.size == 0:
            return []
        top = positive[np.argsort(-scores[positive], kind="stable")[:k]]
        return [(self.chunk_ids[row], float(scores[row])) for row in top]


def matching_spans(query: str, text: str) -> list[tuple[int, int]]:
    """Character spans of words in `text` that match a query term (for highlighting)."""
    query_terms = set(analyze(query))
    spans = []
    for match in _WORD.finditer(text):
        if any(term in query_terms for term in analyze(match.group())):
            spans.append(match.span())
    return spans
