"""Answer one question: retrieve, prompt within a token budget, generate, verify.

`ask` is the single core function behind `rag ask`, `rag chat` and `rag eval`:
1. detect the question's language; rewrite a follow-up into a standalone question
   (when there is history); translate a non-German question into German for the
   keyword search (the dense search uses the original);
2. retrieve passages (or take the ones given: the eval's oracle mode); leave out
   those that share far less of the question's key terms than the best one
   (`on_topic_passages`: shorter prompts, less to copy; the words that name an article
   are not key terms); number the rest [1]…[k] inside a delimited, untrusted block;
3. drop the lowest-ranked passages until system prompt + examples + passages +
   question + room for the answer fit the context window, and report the drop;
4. stream the model's answer, then verify every sentence's citations in code
   (`rag.cite`);
5. if nothing verified remains, or the verified answer strays from the question
   (copied from a sentence far weaker on its key terms than the best one), and one
   passage holds most of the question's key terms, take a *second look*: ask again
   with that passage alone (a 1.5B model often misses an answer among five passages
   that it finds in one); its answer is verified the same way and, when it refuses,
   a straying first answer stands;
6. if still nothing verified remains, return the fixed refusal sentence in the
   question's language, with the closest passages for the reader.

It never prints; callers get tokens through `on_token` and the result as `Answer`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rag.cite import (
    CITATION,
    REFUSALS,
    SourceSentences,
    citations_for,
    passage_relevance,
    strays_from_question,
    verify_answer,
)
from rag.ingest import normalize_whitespace
from rag.language import Language, detect_language
from rag.prompts import load_prompt
from rag.retrieve import check_query
from rag.types import Citation, Passage, SearchFilters

if TYPE_CHECKING:
    from rag.generate import ChatModel
    from rag.pipeline import Pipeline

STOP_SEQUENCES = ["\n\n", "<quellen>", "</quellen>", "Frage:", "Question:", "###", "<|im_end|>"]
# Chat-template tokens and our own delimiters must not appear inside untrusted text.
_CONTROL = re.compile(r"<\|[^|>]{1,40}\|>|</?quellen>|^###.*$", re.IGNORECASE | re.MULTILINE)
_TRANSLATE_MAX_TOKENS = 64


@dataclass
class Turn:
    """One finished exchange, kept as chat history."""

    question: str
    answer: str


@dataclass
class Answer:
    """The verified result of one question (see `to_json` for the stable shape)."""

    question: str
    language: Language
    answer: str
    refused: bool
    citations: list[Citation]
    passages: list[Passage]
    raw: str = ""
    unverified: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    standalone_question: str | None = None
    search_query: str | None = None
    dropped_passages: int = 0  # left out to fit the context window
    off_topic_passages: int = 0  # left out as sharing too little of the question's key terms
    model_path: str = ""
    model_sha256: str = ""
    timings_ms: dict[str, float] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=dict)
    interrupted: bool = False
    second_look: int | None = None  # the passage number asked about again, when that gave the answer

    def to_json(self) -> dict[str, Any]:
        """The `rag ask --json` object. Field names are fixed; fields may be added."""
        return {
            "question": self.question,
            "answer": self.answer,
            "refused": self.refused,
            "citations": [
                {
                    "n": c.n,
                    "source": c.source,
                    "title": c.title,
                    "start": c.start,
                    "end": c.end,
                    "quote": c.quote,
                }
                for c in self.citations
            ],
            "passages": [
                {
                    "n": n,
                    "source": p.source,
                    "title": p.title,
                    "outlet": p.outlet,
                    "start": p.start,
                    "end": p.end,
                    "text": p.text,
                    "score": round(p.score, 6),
                }
                for n, p in enumerate(self.passages, 1)
            ],
            "model": {"path": self.model_path, "sha256": self.model_sha256},
            "timings_ms": {key: round(value, 1) for key, value in self.timings_ms.items()},
            "tokens": self.tokens,
            "language": self.language,
            "standalone_question": self.standalone_question,
            "search_query": self.search_query,
            "unverified": self.unverified,
            "replaced_by_quotes": self.replaced,
            "dropped_passages": self.dropped_passages,
            "off_topic_passages": self.off_topic_passages,
            "raw": self.raw,
            "interrupted": self.interrupted,
            "second_look": self.second_look,
        }


def format_passages(passages: Sequence[Passage]) -> str:
    """Number passages [1]…[k], one per line, with control sequences removed."""
    lines = []
    for n, passage in enumerate(passages, 1):
        text = normalize_whitespace(_CONTROL.sub(" ", passage.text))
        lines.append(f"[{n}] {text}")
    return "\n".join(lines)


def answer_messages(question: str, passages: Sequence[Passage], language: Language) -> list[dict[str, str]]:
    return load_prompt(f"answer-{language}").render(passages=format_passages(passages), question=question)


# However weak, the two best-ranked passages always reach the model: a question over
# two articles may have each half answered by a passage that covers only that half.
MIN_PASSAGES_SHOWN = 2


def on_topic_passages(
    passages: Sequence[Passage], questions: Sequence[str], min_relevance: float
) -> list[Passage]:
    """The passages whose best sentence covers at least `min_relevance` of what the best one covers.

    A 1.5B model copies whatever text is put before it, and every passage costs prompt
    time; a passage that shares little of the question's key terms is more likely to
    be copied than to answer. The top `MIN_PASSAGES_SHOWN` stay regardless.
    """
    relevance = passage_relevance(passages, questions)
    top = max(relevance, default=0.0)
    return [
        passage
        for rank, (passage, value) in enumerate(zip(passages, relevance, strict=True))
        if rank < MIN_PASSAGES_SHOWN or value >= min_relevance * top
    ]


def fit_passages(
    pipeline: Pipeline, llm: ChatModel, question: str, passages: list[Passage], language: Language
) -> tuple[list[dict[str, str]], list[Passage]]:
    """The prompt and the passages that fit n_ctx with room for the answer (lowest dropped first)."""
    settings = pipeline.settings
    kept = list(passages)
    while True:
        messages = answer_messages(question, kept, language)
        if not kept or llm.count_messages(messages) + settings.max_answer_tokens <= settings.n_ctx:
            return messages, kept
        kept.pop()


def translate_for_search(pipeline: Pipeline, question: str) -> str:
    """A German rendering of the question, used as an extra keyword query."""
    messages = load_prompt("translate").render(question=question)
    text = pipeline.aux_llm.complete_chat(
        messages, max_tokens=_TRANSLATE_MAX_TOKENS, stop=["\n"], temperature=0.0
    )
    return text.strip()


@dataclass
class _Generated:
    """One streamed generation and what it cost."""

    text: str = ""
    interrupted: bool = False
    first_token_ms: float = 0.0  # since the question arrived
    llm_ms: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0


def _generate(
    pipeline: Pipeline,
    llm: ChatModel,
    messages: list[dict[str, str]],
    started: float,
    on_token: Callable[[str], None] | None,
) -> _Generated:
    """Stream one answer; Ctrl-C stops it and keeps what came so far."""
    result = _Generated()
    pieces: list[str] = []
    try:
        for delta in llm.stream_chat(
            messages,
            max_tokens=pipeline.settings.max_answer_tokens,
            stop=STOP_SEQUENCES,
            temperature=pipeline.settings.temperature,
        ):
            if not pieces:
                result.first_token_ms = (time.perf_counter() - started) * 1000
            pieces.append(delta)
            if on_token:
                on_token(delta)
    except KeyboardInterrupt:
        result.interrupted = True
    result.text = "".join(pieces)
    if usage := llm.last_usage:
        result.llm_ms = usage.total_ms
        result.prompt_tokens, result.completion_tokens = usage.prompt_tokens, usage.completion_tokens
        result.cached_tokens = usage.cached_tokens
    return result


def ask(
    pipeline: Pipeline,
    question: str,
    *,
    filters: SearchFilters | None = None,
    k: int | None = None,
    history: Sequence[Turn] = (),
    on_token: Callable[[str], None] | None = None,
    on_status: Callable[[str, str], None] | None = None,
    passages: Sequence[Passage] | None = None,
) -> Answer:
    """Answer `question` from the index with verified citations (see module doc).

    Given `passages`, answer from exactly those instead of searching (the eval's oracle
    mode: what the model makes of perfect retrieval); they are shown as they come.
    """
    from rag.conversation import rewrite_followup

    started = time.perf_counter()
    question = check_query(question)
    language = detect_language(question)
    llm = pipeline.answer_llm(language)
    llm_ms = 0.0

    def llm_time() -> float:
        usage = pipeline.aux_llm.last_usage
        return usage.total_ms if usage else 0.0

    standalone = rewrite_followup(pipeline, history, question) if history else None
    llm_ms += llm_time() if standalone else 0.0
    if standalone and on_status:
        on_status("rewrite", standalone)
    search_question = standalone or question
    translated = None
    if language != "de" and pipeline.settings.translate_queries:
        translated = translate_for_search(pipeline, search_question)
        llm_ms += llm_time()
        if on_status:
            on_status("translate", translated)
    retrieve_started = time.perf_counter()
    questions = [q for q in (search_question, translated) if q]
    # The words that name an article ("laut Tichys Einblick", a quoted title) say where, not what.
    key_questions = [pipeline.retriever.without_names(q) for q in questions]
    if passages is None:
        found = pipeline.search(
            search_question, k=k, filters=filters, expansions=[translated] if translated else []
        )
        on_topic = on_topic_passages(found, key_questions, pipeline.settings.min_passage_relevance)
    else:
        found = on_topic = list(passages)
    retrieve_ms = (time.perf_counter() - retrieve_started) * 1000
    messages, kept = fit_passages(pipeline, llm, search_question, on_topic, language)
    dropped = len(on_topic) - len(kept)

    generated = _generate(pipeline, llm, messages, started, on_token) if kept else _Generated()
    raw, interrupted = generated.text, generated.interrupted
    llm_ms += generated.llm_ms
    sources = SourceSentences.of(kept, key_questions)
    verified = verify_answer(raw, kept, questions, sources)
    second_look = None
    if (
        not interrupted
        and pipeline.settings.second_look
        and (verified.refused or strays_from_question(verified, sources))
    ):
        focus = sources.focus()
        if focus is not None:
            if on_status:
                on_status("second_look", f"[{focus}] {kept[focus - 1].source}")
            focused = answer_messages(search_question, [kept[focus - 1]], language)
            retry = _generate(pipeline, llm, focused, started, on_token)
            llm_ms += retry.llm_ms
            interrupted = retry.interrupted
            # The retry saw one passage as [1]; point its markers at that passage's number here.
            renumbered = CITATION.sub(lambda m: f" [{focus}]" if m.group(1) == "1" else " [0]", retry.text)
            second = verify_answer(renumbered, kept, questions, sources)
            if not second.refused and not interrupted:
                raw, verified, second_look = renumbered, second, focus
    refused = verified.refused or interrupted
    return Answer(
        question=question,
        language=language,
        answer=REFUSALS[language] if refused else verified.text(),
        refused=refused,
        citations=[] if refused else citations_for(verified, kept),
        passages=kept,
        raw=raw,
        unverified=[s.text for s in verified.unverified],
        replaced=verified.replaced,
        standalone_question=standalone,
        search_query=translated,
        dropped_passages=dropped,
        off_topic_passages=len(found) - len(on_topic),
        model_path=str(llm.model_path),
        model_sha256=llm.sha256,
        timings_ms={
            "retrieve": retrieve_ms,
            "first_token": generated.first_token_ms,
            "total": (time.perf_counter() - started) * 1000,
            "llm": llm_ms,
        },
        tokens={
            "prompt": generated.prompt_tokens,
            "completion": generated.completion_tokens,
            "cached": generated.cached_tokens,
        },
        interrupted=interrupted,
        second_look=second_look,
    )
