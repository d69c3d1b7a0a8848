"""Running one question of a `rag eval` run in its mode, and scoring it.

- retrieval-only: one k=10 search for the question; the language model is never used.
- answer: the question goes through `rag.answering.answer.ask`, a follow-up with the
  answers of the questions it follows as chat history, plus one cheap k=10 search
  with the same query (and its expansions) for retrieval recall. Every citation is
  checked against the source's canonical text (`quotes_exact`).
- oracle: as answer, but `ask` is given the question's gold evidence as its passages
  instead of searching: what perfect retrieval would give this model and prompt.

Left out: the loop over all questions and the run files (`rag.evaluation.run`), and
the scores themselves (`rag.evaluation.scoring`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from rag.answering.conversation import Turn, as_read
from rag.errors import EvalError
from rag.evaluation.questions import Question
from rag.evaluation.results import QuestionResult, ResultMode
from rag.evaluation.scoring import RETRIEVAL_K, missing_facts, same_file, score_result
from rag.types import Passage, SearchFilters

if TYPE_CHECKING:
    from rag.answering.pipeline import Pipeline
    from rag.answering.result import Answer

# Source files are read whole to check quotes; no indexed file is larger (see `max_file_mb`).
MAX_SOURCE_BYTES = 1 << 30

# The answers so far by question id, with their questions: the history of the follow-ups.
Answers = dict[str, tuple[Question, "Answer"]]


def run_question(
    question: Question,
    target: Pipeline,
    documents: Sequence[Mapping[str, Any]],
    answers: Answers,
    *,
    mode: ResultMode,
) -> QuestionResult:
    """Run and score one question: its results.jsonl line.

    `target` is the pipeline of the question's corpus and `documents` its index's
    documents (oracle mode finds the gold evidence in them). An answer is added to
    `answers`, for the follow-ups that continue it.
    """
    filters = SearchFilters(include_comments=question.include_comments)
    if mode == "retrieval-only":
        result = _search_only(question, target, filters)
    else:
        gold = gold_passages(question, documents) if mode == "oracle" else None
        result = _answer(question, target, answers, filters=filters, mode=mode, gold=gold)
    return replace(result, scores=score_result(question, result))


def _search_only(question: Question, target: Pipeline, filters: SearchFilters) -> QuestionResult:
    """The retrieval-only result: what one k=10 search for the question finds (not yet scored)."""
    retrieved = target.search(question.question, k=RETRIEVAL_K, filters=filters)
    return QuestionResult(
        mode="retrieval-only",
        id=question.id,
        type=question.type,
        lang=question.lang,
        answerable=question.answerable,
        question=question.question,
        retrieved=[p.to_json(n) for n, p in enumerate(retrieved, 1)],
        gold=question.gold_json(),
    )


def _answer(
    question: Question,
    target: Pipeline,
    answers: Answers,
    *,
    filters: SearchFilters,
    mode: ResultMode,
    gold: list[Passage] | None,
) -> QuestionResult:
    """The answering result (not yet scored): `ask`, its quotes checked, and the search for recall.

    `gold` (oracle mode) replaces retrieval both in `ask` and as the ranking scored.
    """
    from rag.answering.answer import ask

    answer = ask(
        target,
        question.question,
        filters=filters,
        history=_history(question, answers),
        passages=gold,
    )
    if answer.interrupted:  # ask turns Ctrl-C into a refusal; a run must stop instead
        raise KeyboardInterrupt
    answers[question.id] = (question, answer)
    exact = quotes_exact(answer, target) if answer.citations else None
    retrieved = gold or target.search(
        answer.question,
        k=RETRIEVAL_K,
        filters=filters,
        expansions=[q for q in (answer.search_query, answer.previous_question) if q],
    )
    return QuestionResult(
        mode=mode,
        id=question.id,
        type=question.type,
        lang=question.lang,
        answerable=question.answerable,
        question=answer.question,
        retrieved=[p.to_json(n) for n, p in enumerate(retrieved, 1)],
        gold=question.gold_json(),
        asked=answer.to_json(),
        quotes_exact=exact,
        missing_facts=missing_facts(answer.answer, question.required_facts),
    )


def _history(question: Question, answers: Answers) -> list[Turn]:
    """The chain of turns a follow-up continues: its parent's history, then the parent itself."""
    if question.follows is None:
        return []
    parent, parent_answer = answers[question.follows]
    return [
        *_history(parent, answers),
        Turn(as_read(parent.question, parent_answer.previous_question), parent_answer.answer),
    ]


def quotes_exact(answer: Answer, pipeline: Pipeline) -> bool:
    """Whether every citation quotes its source's canonical text character for character at its span."""
    from rag.ingest.read import read_source

    manifest = pipeline.reader.manifest
    texts: dict[str, str] = {}
    for citation in answer.citations:
        if citation.source not in texts:
            options = manifest.collection_options(citation.source)
            texts[citation.source] = read_source(
                citation.source, pipeline.cwd, MAX_SOURCE_BYTES, options
            ).text
        if texts[citation.source][citation.start : citation.end] != citation.quote:
            return False
    return True


def gold_passages(question: Question, documents: Sequence[Mapping[str, Any]]) -> list[Passage]:
    """The question's evidence spans as passages, as if retrieval had found exactly them.

    `documents` are the index's (`IndexReader.documents`), which know each file by its
    path as indexed; evidence names it by its file name.
    """
    passages = []
    for span in question.evidence:
        document = next((d for d in documents if same_file(d["source"], span.source)), None)
        if document is None:
            raise EvalError(
                f"{question.id}: its evidence file {span.source} is not indexed — run `rag index`"
            )
        passages.append(
            Passage(
                source=document["source"],
                start=span.start,
                end=span.end,
                text=span.text,
                score=1.0,
                title=document["title"],
                outlet=document["outlet"],
                date=document["date"],
                author=document["author"],
            )
        )
    return passages
