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
5. **answer**: the model reads the best few sentences; if its odds of opening with the
   refusal sentence, plus the share of key terms found nowhere, pass the threshold, the
   answer is a refusal; what somebody said, and a question in parts, are answered by
   quoting the selected sentences (`is_answered_by_quote`); otherwise the model writes
   a short cited answer (`rag.answering.phrase`), streamed;
6. **check**: the written answer is held to the quotes it cites, not to the neighbours
   the model read around them: on `evals/`, a phrasing drawn from a neighbour was wrong
   in two of three cases (bench/replay_answers.py). When it fails the
   check, the answer is the selected sentence itself, quoted and cited: a confident
   selection never becomes a refusal because the model phrased it badly.

Every citation quotes its sentence character for character, with the sentence's span in
the source document: quotes are copied by code, never generated. It never prints;
callers get tokens through `on_token` and the result as `Answer`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rag.answering.cite import OPEN_PART, REFUSALS, with_markers
from rag.answering.conversation import Turn, previous_question
from rag.answering.evidence import Evidence, select_windows
from rag.answering.phrase import STOP_SEQUENCES, check_phrasing, phrase_messages, refusal_probability
from rag.answering.prompts import load_prompt
from rag.answering.result import Answer
from rag.answering.select import Selection, select_evidence
from rag.answering.sentences import Candidate, candidate_sentences, continued
from rag.retrieval.retrieve import check_query
from rag.text.language import Language, question_language
from rag.types import Citation, Passage, SearchFilters

if TYPE_CHECKING:
    from rag.answering.chat_model import ChatModel
    from rag.answering.pipeline import Pipeline

_TRANSLATE_MAX_TOKENS = 64


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


_OPENING_QUOTES, _CLOSING_QUOTES = '„“”"«»‚‘', '“”"«»‘’'


def _quote(window: Candidate) -> str:
    """The sentence in quotation marks, unless it is a quotation already (reported speech)."""
    text = window.text.strip()
    if text[:1] in _OPENING_QUOTES and text[-1:] in _CLOSING_QUOTES:
        return text
    return f"„{text}“"


@dataclass
class _Query:
    """Stage 1: what the question is, with what the search and the selection read it by."""

    question: str
    language: Language
    previous: str | None  # the question a follow-up is read with
    translated: str | None  # a German rendering of a question in another language
    llm_ms: float  # what the translation cost


@dataclass
class _Found:
    """Stages 2-4: the passages, the selection among their sentences, and the evidence shown."""

    passages: list[Passage]  # as retrieved (or given)
    shown: list[Passage]  # the passages, then the headings of their articles
    renderings: list[str]  # the question (and its translation, and with the previous one) without names
    selection: Selection
    windows: list[Evidence]
    retrieve_ms: float


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
    query = _read_query(pipeline, question, history, on_status)
    llm = pipeline.answer_llm(query.language)
    found = _find_evidence(pipeline, query, filters, k, passages)

    # 5. answer
    contexts = [w.context for w in found.windows]
    messages = phrase_messages(query.question, contexts, query.language, query.previous) if contexts else []
    odds_started = time.perf_counter()
    p_refuse = refusal_probability(llm, messages, query.language) if contexts else None
    odds_ms = (time.perf_counter() - odds_started) * 1000  # where the prompt is processed
    refused = is_refusal_decided(p_refuse, found.selection.unmatched, pipeline.settings.refusal_threshold)
    phrased = not refused and not is_answered_by_quote(found.selection)
    generated = _generate(pipeline, llm, messages, started, on_token) if phrased else _Generated()

    # 6. check
    answer = _checked_answer(query, found, generated, refused)
    shown_ms = (time.perf_counter() - started) * 1000  # a quote nothing streamed is shown whole, now
    first_token_ms = generated.first_token_ms or (0.0 if answer.refused else shown_ms)
    answer.refusal_probability = p_refuse
    answer.model_path, answer.model_sha256 = str(llm.model_path), llm.sha256
    answer.timings_ms = {
        "retrieve": found.retrieve_ms,
        "first_token": first_token_ms,
        "total": (time.perf_counter() - started) * 1000,
        "refusal_odds": odds_ms,
        "llm": query.llm_ms + odds_ms + generated.llm_ms,
    }
    return answer


def is_refusal_decided(p_refuse: float | None, unmatched: float, threshold: float) -> bool:
    """Whether the answer is a refusal before anything is written.

    Two signs that the answer is absent: the model's odds of refusing (None: there was no
    evidence to ask about) and the share of the question's key terms found nowhere in what
    was retrieved. Above the threshold together, the answer is a refusal.
    """
    return p_refuse is None or p_refuse + unmatched > threshold


def is_answered_by_quote(selection: Selection) -> bool:
    """Whether the answer is the selected evidence quoted, with no phrasing asked of the model.

    What somebody said is given in their words: the model's rewording of reported speech
    was wrong where the quote held the answer ("Er sagte, dass territoriale Fragen nicht
    stellen sich"). A question in parts gets the sentence of each part, and a line for
    each part that no source states (`OPEN_PART`): one short sentence from the model
    answered one part and dropped the other ("Warum reiste Vance …, und welche Länder
    besuchte er?": the countries, not the reason). On `evals/` each rule
    turned one wrong answer into a correct one and no correct one into a wrong one
    (bench/replay_answers.py, then a full run).
    """
    return selection.answer_type == "speech" or selection.parts > 1


def _read_query(
    pipeline: Pipeline,
    question: str,
    history: Sequence[Turn],
    on_status: Callable[[str, str], None] | None,
) -> _Query:
    """1. The question's language, the question a follow-up is read with, and a German rendering."""
    question = check_query(question)
    language = question_language(question)
    previous = previous_question(history, question)
    translated, llm_ms = None, 0.0
    if language != "de" and pipeline.settings.translate_queries:
        translated = translate_for_search(pipeline, question)
        usage = pipeline.aux_llm.last_usage
        llm_ms = usage.total_ms if usage else 0.0
        if on_status:
            on_status("translate", translated)
    if previous and on_status:
        on_status("follow_up", previous)
    return _Query(question, language, previous, translated, llm_ms)


def _find_evidence(
    pipeline: Pipeline,
    query: _Query,
    filters: SearchFilters | None,
    k: int | None,
    passages: Sequence[Passage] | None,
) -> _Found:
    """2. The passages, 3. their sentences, 4. the selection and the evidence the model reads."""
    started = time.perf_counter()
    retriever = pipeline.retriever
    if passages is None:
        expansions = [q for q in (query.translated, query.previous) if q]
        retrieved = pipeline.search(query.question, k=k, filters=filters, expansions=expansions)
        own_ends = [p.end for p in retrieved]
        sequels = retriever.sequels(retrieved)
        found = [continued(p, sequel) for p, sequel in zip(retrieved, sequels, strict=True)]
    else:  # exactly what is given: the oracle's gold evidence alone
        found = list(passages)
        own_ends = [p.end for p in found]
    headings = retriever.headings(found)
    shown = [*found, *headings]
    renderings = [retriever.without_names(q) for q in (query.question, query.translated) if q]
    if query.previous:
        renderings += [f"{q} {retriever.without_names(query.previous)}" for q in renderings]
    selection = select_evidence(
        renderings,
        f"{query.previous} {query.question}" if query.previous else query.question,
        candidate_sentences(found, headings, own_ends),
        pipeline.multilingual if pipeline.settings.multilingual_weight > 0 else None,
        kind_question=query.question,
    )
    windows = select_windows(selection, shown, renderings)
    return _Found(found, shown, renderings, selection, windows, (time.perf_counter() - started) * 1000)


def _checked_answer(query: _Query, found: _Found, generated: _Generated, refused: bool) -> Answer:
    """6. The written answer held to the sentences it cites, or the evidence quoted, or a refusal."""
    quotes_shown, contexts = [w.quote for w in found.windows], [w.context for w in found.windows]
    phrasing = check_phrasing(
        generated.text, quotes_shown, found.renderings, found.selection.answer_type, bool(query.previous)
    )
    refused = refused or generated.interrupted
    quoted = not refused and (not phrasing.ok or is_answered_by_quote(found.selection))
    cited = [] if refused else _quoted_numbers(found) if quoted else phrasing.cited()
    quotes = [quotes_shown[n - 1] for n in cited]
    answer_passages, numbers = _answer_passages(found.passages, found.shown, quotes)
    number_of = dict(zip(cited, numbers, strict=True))
    if refused:
        text = REFUSALS[query.language]
    elif quoted:
        pairs = zip(cited, quotes, strict=True)  # one quote per line, each with its own marker
        lines = [with_markers(_quote(quote), [number_of[n]]) for n, quote in pairs]
        unstated = found.selection.open_parts  # said so, rather than left out in silence
        lines += [OPEN_PART[query.language].format(part=part.strip(" ?")) for part in unstated]
        text = "\n".join(lines)
    else:
        text = " ".join(
            with_markers(sentence, sorted({number_of[n] for n in evidence}))
            for sentence, evidence in phrasing.sentences
        )
    return Answer(
        question=query.question,
        language=query.language,
        answer=text,
        refused=refused,
        citations=_citations(quotes, numbers, found.shown),
        passages=answer_passages,
        raw=generated.text,
        confidence=found.selection.confidence if found.windows else 0.0,
        unmatched=found.selection.unmatched,
        evidence=_citations(contexts, [w.passage for w in contexts], found.shown),
        quoted=quoted,
        phrasing_failure=phrasing.failure if generated.text else None,
        previous_question=query.previous,
        search_query=query.translated,
        tokens={
            "prompt": generated.prompt_tokens,
            "completion": generated.completion_tokens,
            "cached": generated.cached_tokens,
        },
        interrupted=generated.interrupted,
    )


def _quoted_numbers(found: _Found) -> list[int]:
    """The evidence an answer quotes when it is not phrased: the best sentence, and for a question in
    parts the sentence chosen for each other part."""
    if found.selection.parts == 1:
        return [1]
    return [1] + [n for n, window in enumerate(found.windows[1:], 2) if window.chosen]


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
