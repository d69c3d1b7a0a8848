"""The checked answer to one question, and its stable JSON shape (`rag ask --json`).

`rag.answering.answer.ask` makes it; the terminal, the REPL and the eval read it.
Left out: how it is made.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rag.text.language import Language
from rag.types import Citation, Passage

# Below this selection confidence the terminal adds a note that the choice was close.
CLOSE_CALL = 0.5


@dataclass
class Answer:
    """The checked result of one question (see `to_json` for the stable shape)."""

    question: str
    language: Language
    answer: str
    refused: bool
    citations: list[Citation]
    passages: list[Passage]
    raw: str = ""
    confidence: float = 0.0  # how clearly the selection preferred its first sentence (0-1)
    refusal_probability: float | None = None  # the model's, before it wrote anything
    unmatched: float = 0.0  # share of the question's key-term weight found nowhere in the candidates
    evidence: list[Citation] = field(default_factory=list)  # the sentences the model read, best first
    quoted: bool = False  # the answer is the evidence itself, the phrasing having failed the check
    phrasing_failure: str | None = None
    previous_question: str | None = None  # the question a follow-up was read with
    search_query: str | None = None
    model_path: str = ""
    model_sha256: str = ""
    timings_ms: dict[str, float] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=dict)
    interrupted: bool = False

    @property
    def close_call(self) -> bool:
        """Whether the best sentence was not clearly ahead of the others."""
        return not self.refused and self.confidence < CLOSE_CALL

    def to_json(self) -> dict[str, Any]:
        """The `rag ask --json` object. Field names are fixed; fields may be added."""
        return {
            "question": self.question,
            "answer": self.answer,
            "refused": self.refused,
            "confidence": round(self.confidence, 4),
            "citations": [
                {
                    "n": c.n,
                    "source": c.source,
                    "title": c.title,
                    "start": c.start,
                    "end": c.end,
                    "quote": c.quote,
                    "page": c.page,
                }
                for c in self.citations
            ],
            "passages": [p.to_json(n) for n, p in enumerate(self.passages, 1)],
            "model": {"path": self.model_path, "sha256": self.model_sha256},
            "timings_ms": {key: round(value, 1) for key, value in self.timings_ms.items()},
            "tokens": self.tokens,
            "language": self.language,
            "previous_question": self.previous_question,
            "search_query": self.search_query,
            "evidence": [
                {"source": e.source, "start": e.start, "end": e.end, "text": e.quote} for e in self.evidence
            ],
            "quoted": self.quoted,
            "phrasing_failure": self.phrasing_failure,
            "refusal_probability": (
                round(self.refusal_probability, 4) if self.refusal_probability is not None else None
            ),
            "unmatched": round(self.unmatched, 4),
            "raw": self.raw,
            "interrupted": self.interrupted,
        }
