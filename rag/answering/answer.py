"""Answer one question, evidence first: select the sentence that answers, then phrase it.

`ask` is the single core function behind `rag ask`, `rag chat` and `rag eval`. A
question passes through each stage once:
1. **query**: detect the language; a non-German question gets a German rendering for
   the keyword search (`translate_for_search`); a follow-up in a chat is read with the
   question before it (`rag.answering.conversation.previous_question`), whose words join the search;
2. **passages**: retrieve them (or take the ones given: the eval's oracle mode), and the
   opening lines of each article they come from (title and byline);
3. **sentences**: every sentence of those, with its exact span (`rag.answering.sentences`);
4. **selection**: rank the sentences by every signal there is and choose the evidence,
   or none when no sentence can state what is asked (`rag.answering.select`);
5. **answer**: the model reads the best few sentences; if it is more likely than not to
   open with the refusal sentence, the answer is a refusal; otherwise it writes a short
   cited answer (`rag.answering.phrase`), streamed;
6. **check**: the written answer is held to the sentences it cites. When it fails the
   check, the answer is the selected sentence itself, quoted and cited: a confident
   selection never becomes a refusal because the model phrased it badly.

Every citation quotes its sentence character for character, with the sentence's span in
the source document: quotes are copied by code, never generated. It never prints;
callers get tokens through `on_token` and the result as `Answer`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rag.answering.cite import REFUSALS, adds_information, with_markers
from rag.answering.conversation import Turn, previous_question
from rag.answering.phrase import STOP_SEQUENCES, check_phrasing, phrase_messages, refusal_probability
from rag.answering.prompts import load_prompt
from rag.answering.select import Selection, select_evidence
from rag.answering.sentences import Candidate, candidate_sentences, widened
from rag.retrieval.retrieve import check_query
from rag.text.language import Language, question_language
from rag.types import Citation, Passage, SearchFilters

if TYPE_CHECKING:
    from rag.answering.generate import ChatModel
    from rag.answering.pipeline import Pipeline

_TRANSLATE_MAX_TOKENS = 64
# The model reads this many of the best sentences (each with the next one where it only sets up its answer).
EVIDENCE_SHOWN = 3
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


@dataclass(frozen=True)
class Evidence:
    """One piece of selected evidence: what an answer quotes, and what the model reads around it."""

    quote: Candidate  # the sentence, with the next one where it only sets up its answer
    context: Candidate  # the sentence with its neighbours in the passage: what the model is shown


def select_windows(
    selection: Selection, shown: Sequence[Passage], questions: Sequence[str]
) -> list[Evidence]:
    """The chosen sentences first, then the next best: at most `EVIDENCE_SHOWN`, none overlapping.

    The model reads each sentence with its neighbours, so that "es" and "er" find what
    they refer to. A sentence that says nothing the question does not ("Doch Toqajew hat
    eine andere Trumpfkarte im Ärmel.") or ends in a colon is quoted with the sentence
    after it.
    """
    ordered = [s.candidate for s in selection.chosen]
    ordered += [s.candidate for s in selection.ranked if s.fits and s.candidate not in ordered]
    windows: list[Evidence] = []
    for candidate in ordered:
        if len(windows) == EVIDENCE_SHOWN:
            break
        sets_up = candidate.text.rstrip().endswith(":") or not adds_information([candidate.text], questions)
        context = widened(candidate, shown, before=True)
        if not any(_overlap(w.context, context) for w in windows):
            windows.append(Evidence(widened(candidate, shown) if sets_up else candidate, context))
    return windows


def _overlap(a: Candidate, b: Candidate) -> bool:
    return a.source == b.source and a.start < b.end and b.start < a.end


def _citations(
    windows: Sequence[Candidate], numbers: Sequence[int], shown: Sequence[Passage]
) -> list[Citation]:
    """One citation per cited evidence sentence, quoting it exactly, under its passage's number."""
    return [
        Citation(
            n=numbers[i],
            source=window.source,
            title=shown[window.passage - 1].title,
            start=window.start,
            end=window.end,
            quote=window.text,
            page=shown[window.passage - 1].page,
        )
        for i, window in enumerate(windows)
    ]


def _quote(window: Candidate) -> str:
    return f"„{window.text.strip()}“"


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
    """Answer `question` from the index with checked, quoted citations (see module doc).

    Given `passages`, answer from exactly those instead of searching (the eval's oracle
    mode: what the system makes of perfect retrieval).
    """
    started = time.perf_counter()
    question = check_query(question)
    language = question_language(question)
    llm = pipeline.answer_llm(language)
    llm_ms = 0.0

    # 1. query
    previous = previous_question(history, question)
    translated = None
    if language != "de" and pipeline.settings.translate_queries:
        translated = translate_for_search(pipeline, question)
        usage = pipeline.aux_llm.last_usage
        llm_ms += usage.total_ms if usage else 0.0
        if on_status:
            on_status("translate", translated)
    if previous and on_status:
        on_status("follow_up", previous)

    # 2. passages
    retrieve_started = time.perf_counter()
    retriever = pipeline.retriever
    if passages is None:
        expansions = [q for q in (translated, previous) if q]
        found = pipeline.search(question, k=k, filters=filters, expansions=expansions)
    else:
        found = list(passages)
    headings = retriever.headings(found)
    shown = [*found, *headings]

    # 3. sentences and 4. selection
    renderings = [retriever.without_names(q) for q in (question, translated) if q]
    if previous:
        renderings += [f"{q} {retriever.without_names(previous)}" for q in renderings]
    selection = select_evidence(
        renderings,
        f"{previous} {question}" if previous else question,
        candidate_sentences(found, headings),
        pipeline.multilingual if pipeline.settings.multilingual_weight > 0 else None,
        kind_question=question,
    )
    windows = select_windows(selection, shown, renderings)
    contexts = [w.context for w in windows]
    retrieve_ms = (time.perf_counter() - retrieve_started) * 1000

    # 5. answer
    messages = phrase_messages(question, contexts, language, previous) if windows else []
    p_refuse = refusal_probability(llm, messages, language) if windows else None
    # Two signs that the answer is absent: the model's odds of refusing, and the share of the
    # question's key terms found nowhere in what was retrieved. Above the threshold together,
    # the answer is a refusal.
    absent = (p_refuse + selection.unmatched) if p_refuse is not None else None
    refused = absent is None or absent > pipeline.settings.refusal_threshold
    generated = _generate(pipeline, llm, messages, started, on_token) if not refused else _Generated()
    llm_ms += generated.llm_ms

    # 6. check
    phrasing = check_phrasing(generated.text, contexts, renderings, selection.answer_type)
    refused = refused or generated.interrupted
    quoted = not refused and not phrasing.ok
    cited = [] if refused else [1] if quoted else phrasing.cited()
    quotes = [windows[0].quote] if quoted else [contexts[n - 1] for n in cited]
    answer_passages, numbers = _answer_passages(found, shown, quotes)
    number_of = dict(zip(cited, numbers, strict=True))
    if refused:
        text = REFUSALS[language]
    elif quoted:
        text = with_markers(_quote(windows[0].quote), [number_of[1]])
    else:
        text = " ".join(
            with_markers(sentence, sorted({number_of[n] for n in evidence}))
            for sentence, evidence in phrasing.sentences
        )
    return Answer(
        question=question,
        language=language,
        answer=text,
        refused=refused,
        citations=_citations(quotes, numbers, shown),
        passages=answer_passages,
        raw=generated.text,
        confidence=selection.confidence if windows else 0.0,
        refusal_probability=p_refuse,
        unmatched=selection.unmatched,
        evidence=_citations(contexts, [w.passage for w in contexts], shown),
        quoted=quoted,
        phrasing_failure=phrasing.failure if generated.text else None,
        previous_question=previous,
        search_query=translated,
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
        interrupted=generated.interrupted,
    )


def _answer_passages(
    found: Sequence[Passage], shown: Sequence[Passage], cited: Sequence[Candidate]
) -> tuple[list[Passage], list[int]]:
    """The retrieved passages plus the headings that a citation points into; each citation's number there."""
    passages = list(found)
    numbers = []
    for window in cited:
        passage = shown[window.passage - 1]
        if passage not in passages:
            passages.append(passage)
        numbers.append(passages.index(passage) + 1)
    return passages, numbers
