"""Candidate evidence: the sentences of the passages an answer may quote, with exact spans.

An answer's quote is copied by code from one of these candidates, never generated, so
each candidate carries its character span in its source document
(`document.text[start:end] == text`). The candidates are every sentence of the retrieved
passages (split by `rag.ingest.chunk.split_sentences`, the same splitter that cut the chunks)
and the heading of each article they come from (its title and byline lines, as one
candidate), because people ask who wrote an article and when it appeared.

A candidate can widen to the sentence after it (`widened`): a sentence that only sets up
its answer ("Doch Toqajew hat eine andere Trumpfkarte im Ärmel.") is quoted together
with the sentence that gives it. A passage's last sentence can widen too where a chunk
boundary falls inside a paragraph: `continued` adds the sentence that follows the
passage, from the chunk that overlaps its end, and that sentence is no candidate itself.
Across a paragraph break the chunks do not overlap, and the text between them (the
break) is not in the index, so a quote stops there. Left out: scoring the candidates
(`rag.answering.select`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from rag.ingest.chunk import split_sentences
from rag.types import Passage

# The heading lines of an article: its title and, below it, the byline or date line.
HEADING_LINES = 2


@dataclass(frozen=True)
class Candidate:
    """One sentence (or a sentence and the next) that an answer may quote."""

    passage: int  # 1-based number of its passage in the answer's passage list
    source: str
    start: int  # offsets into the source document's canonical text
    end: int
    text: str
    rank: int  # 0-based retrieval rank of its passage (a heading takes its article's best rank)
    heading: bool = False  # the article's title or byline
    next_end: int | None = None  # where the following sentence of the same passage ends, if any
    previous_start: int | None = None  # where the sentence before it in the same passage starts, if any


def continued(passage: Passage, sequel: Passage | None) -> Passage:
    """`passage` with the sentence that follows it, taken from `sequel`, the chunk that runs on past it."""
    if sequel is None or not sequel.start <= passage.end < sequel.end:
        return passage
    rest = sequel.text[passage.end - sequel.start :]
    spans = split_sentences(rest)
    if not spans:
        return passage
    cut = spans[0][1]
    return replace(passage, end=passage.end + cut, text=passage.text + rest[:cut])


def passage_sentences(
    passage: Passage, number: int, rank: int, own_end: int | None = None
) -> list[Candidate]:
    """The sentences of `passage` as candidates; those from `own_end` on (a continuation) only widen them."""
    spans = split_sentences(passage.text)
    own = len(passage.text) if own_end is None else own_end - passage.start
    candidates = []
    for i, (start, end) in enumerate(spans):
        if start >= own:
            break
        following = spans[i + 1][1] if i + 1 < len(spans) else None
        preceding = spans[i - 1][0] if i > 0 else None
        candidates.append(
            Candidate(
                passage=number,
                source=passage.source,
                start=passage.start + start,
                end=passage.start + end,
                text=passage.text[start:end],
                rank=rank,
                next_end=passage.start + following if following is not None else None,
                previous_start=passage.start + preceding if preceding is not None else None,
            )
        )
    return candidates


def candidate_sentences(
    passages: Sequence[Passage], headings: Sequence[Passage] = (), own_ends: Sequence[int] = ()
) -> list[Candidate]:
    """Every sentence of `passages` (numbered 1…), then one heading per article of `headings`.

    `headings` are the opening chunks of the articles, numbered after the passages. An
    article's heading is one candidate: its title and byline lines together, so that
    "who wrote the article about …" finds the byline under the title it names.
    `own_ends` say where each passage ended before it was `continued`.
    """
    candidates: list[Candidate] = []
    ends = list(own_ends) or [p.end for p in passages]
    for number, (passage, end) in enumerate(zip(passages, ends, strict=True), 1):
        candidates += passage_sentences(passage, number, rank=number - 1, own_end=end)
    for number, opening in enumerate(headings, len(passages) + 1):
        rank = min((r for r, p in enumerate(passages) if p.source == opening.source), default=len(passages))
        if heading := article_heading(opening, number, rank):
            candidates.append(heading)
    return candidates


def article_heading(opening: Passage, number: int, rank: int) -> Candidate | None:
    """The title and byline lines of an article (from its opening chunk) as one candidate."""
    lines = split_sentences(opening.text)[:HEADING_LINES]
    if not lines:
        return None
    start, end = lines[0][0], lines[-1][1]
    return Candidate(
        passage=number,
        source=opening.source,
        start=opening.start + start,
        end=opening.start + end,
        text=opening.text[start:end],
        rank=rank,
        heading=True,
    )


def widened(
    candidate: Candidate, passages: Sequence[Passage], before: bool = False, after: bool = True
) -> Candidate:
    """The candidate with the sentence after it (`after`) and the one before it (`before`) in its passage."""
    passage = passages[candidate.passage - 1]
    start = candidate.previous_start if before and candidate.previous_start is not None else candidate.start
    end = candidate.next_end if after and candidate.next_end is not None else candidate.end
    text = passage.text[start - passage.start : end - passage.start]
    return replace(candidate, start=start, end=end, text=text, next_end=None, previous_start=None)
