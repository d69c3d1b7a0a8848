"""One question's result in a `rag eval` run: the typed record behind each line of results.jsonl.

A result says in which mode its question ran: "retrieval-only" (the search alone, no
model), "answer" (through `rag.answering.answer.ask`, retrieval included) or "oracle"
(`ask` given the gold evidence instead of a search). Code that treats the modes
differently asks the result's `mode`, never which keys a record happens to hold.
The whole run shares one mode, which summary.json records under the run's "mode"
(an answering run is called "full" there); reading a run back takes each line's
mode from it, since the lines themselves do not name it.

`to_json` writes exactly the keys and order results.jsonl has always had; the ask
fields are kept as `Answer.to_json` gives them (the `rag ask --json` object).
Left out: running the question (`rag.evaluation.one_question`) and scoring it
(`rag.evaluation.scoring`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

RESULTS_FILE = "results.jsonl"

ResultMode = Literal["answer", "retrieval-only", "oracle"]
# summary.json's name for each mode: a run that answers with its own retrieval is a "full" run.
RUN_MODE_NAMES: dict[ResultMode, str] = {
    "answer": "full",
    "retrieval-only": "retrieval-only",
    "oracle": "oracle",
}
# The keys the evaluation writes itself; every other key of an answered line is the ask object's.
_OWN_KEYS = frozenset(
    {"id", "type", "lang", "answerable", "quotes_exact", "retrieved", "gold", "scores", "missing_facts"}
)


def mode_of_run(run_mode: str) -> ResultMode:
    """The result mode of a run whose summary.json names its mode `run_mode` ("full" -> "answer")."""
    for mode, name in RUN_MODE_NAMES.items():
        if name == run_mode:
            return mode
    raise ValueError(f"unknown run mode {run_mode!r}")


@dataclass(frozen=True)
class QuestionResult:
    """One question run in `mode` and scored: what it was asked, found, answered and scored."""

    mode: ResultMode
    id: str
    type: str
    lang: str
    answerable: bool
    question: str  # as asked; in answering modes also the "question" of `asked`
    retrieved: list[dict[str, Any]]  # the k=10 search (the gold passages in oracle mode), ranked
    gold: dict[str, Any]  # `Question.gold_json`
    scores: dict[str, Any] = field(default_factory=dict)  # `rag.evaluation.scoring.score_result`
    asked: dict[str, Any] | None = None  # answering modes: `Answer.to_json`; None in retrieval-only
    quotes_exact: bool | None = None  # whether every citation quotes its source exactly; None: none
    missing_facts: list[str] | None = None  # answering modes: required facts the answer does not state

    def to_json(self) -> dict[str, Any]:
        """The results.jsonl line, in the key order run files have always had."""
        head = {"id": self.id, "type": self.type, "lang": self.lang, "answerable": self.answerable}
        if self.mode == "retrieval-only":
            return {
                **head,
                "question": self.question,
                "retrieved": self.retrieved,
                "gold": self.gold,
                "scores": self.scores,
            }
        return {
            **head,
            **self._asked,
            "quotes_exact": self.quotes_exact,
            "retrieved": self.retrieved,
            "gold": self.gold,
            "scores": self.scores,
            "missing_facts": self.missing_facts,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], mode: ResultMode) -> QuestionResult:
        """A results.jsonl line read back; `mode` is the run's (`mode_of_run`)."""
        answering = mode != "retrieval-only"
        return cls(
            mode=mode,
            id=data["id"],
            type=data["type"],
            lang=data["lang"],
            answerable=data["answerable"],
            question=data["question"],
            retrieved=data["retrieved"],
            gold=data["gold"],
            scores=data["scores"],
            asked={k: v for k, v in data.items() if k not in _OWN_KEYS} if answering else None,
            quotes_exact=data.get("quotes_exact") if answering else None,  # older runs did not check
            missing_facts=data["missing_facts"] if answering else None,
        )

    @property
    def _asked(self) -> dict[str, Any]:
        """The ask object of an answering mode (a retrieval-only result has none)."""
        if self.asked is None:
            raise ValueError(f"{self.id}: a {self.mode} result was not answered")
        return self.asked

    @property
    def answer(self) -> str:
        """The answer as shown, markers included."""
        return str(self._asked["answer"])

    @property
    def refused(self) -> bool:
        return bool(self._asked["refused"])

    @property
    def raw(self) -> str:
        """The model's own wording, before the checks replaced or quoted it."""
        return str(self._asked.get("raw", ""))

    @property
    def shown(self) -> list[dict[str, Any]]:
        """The numbered passages the answer was given (what its markers point to)."""
        return list(self._asked.get("passages", []))

    @property
    def evidence(self) -> list[dict[str, Any]]:
        """The evidence spans the answer was built from, best first."""
        return list(self._asked.get("evidence", []))

    @property
    def timings_ms(self) -> dict[str, float]:
        return dict(self._asked.get("timings_ms", {}))

    @property
    def completion_tokens(self) -> int:
        return int(self._asked.get("tokens", {}).get("completion", 0))

    @property
    def previous_question(self) -> str | None:
        """The question a follow-up was read with (None for a first question or without an answer)."""
        return self.asked.get("previous_question") if self.asked is not None else None

    @property
    def quoted(self) -> bool:
        """Whether the answer quotes its evidence because the model's wording failed the check."""
        return bool(self._asked.get("quoted"))

    @property
    def phrasing_failure(self) -> str | None:
        return self._asked.get("phrasing_failure")
