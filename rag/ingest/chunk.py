"""Cut documents into sentence-aligned chunks that fit the embedding model.

Sentences come from sentencex (MIT, rule-based, fast) with character offsets into the
canonical text, corrected by a short table of German patterns it splits wrongly: dates
and ordinals ("am 7. | November", "in der 56. | Minute"), numbered lists, a few
abbreviations ("Abs.", "Wr.") and hyphenated compounds ("K.-o.-Tropfen"). Line breaks
are hard boundaries (scraped articles put headings and paragraphs on their own lines)
except inside hard-wrapped blocks. Chunks never cross a section boundary, hold whole
sentences up to `max_tokens`, and repeat trailing sentences of the previous chunk as
overlap. Every chunk is an exact span of the document text.

Left out: embedding and storage. Known gaps kept from sentencex: no split before a
sentence that starts with a digit ("… gestiegen. 2014 waren es …"), none inside a
quotation or parentheses, and none after "…".
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from rag.types import Chunk, Document

TokenCounter = Callable[[str], int]

# Bump when sentence splitting or packing changes: it is part of the index fingerprint.
CHUNKER_VERSION = 2
_BLOCK_SEPARATOR = re.compile(r"\n[^\S\n]*\n\s*")
_LINE = re.compile(r"[^\n]+")
_WORD = re.compile(r"\S+")
_WORD_CHARACTER = re.compile(r"\w")
_SENTENCE_END = re.compile(r"[.!?:;…“”\"')]$")
# A block is hard-wrapped when it has at least three lines, all but the last of a
# similar, typical wrap width, and most of those stop mid-sentence. Two-line blocks are
# far more often a heading over its paragraph, so they stay separate lines.
_WRAP_MIN_LINES = 3
_WRAP_MIN_CHARS, _WRAP_MAX_CHARS = 30, 100
_WRAP_MAX_SPREAD = 0.3
# Characters a sentence neither starts nor ends with: whitespace and invisible format marks.
_INVISIBLE = "\u00ad\u200b\u200c\u200d\u2060\ufeff"

# Words that follow a day or an ordinal number ("am 7. November", "in der 56. Minute").
_AFTER_ORDINAL = (
    "Jänner|Januar|Feber|Februar|März|April|Mai|Juni|Juli|August|September|Oktober|November|Dezember"
    "|Jan|Febr?|Mär|Apr|Jun|Jul|Aug|Sept?|Okt|Nov|Dez"
    "|Jahrhunderts?|Minute|Runde|Platz|Rang|Stock|Bezirk|Lebensjahr|Geburtstag|Jahrestag|Quartal|Spieltag|Etappe"
)
# Words after which a number with a full stop is an ordinal, not the end of a sentence.
_DETERMINERS = (
    "am|ans|aufs|im|ins|vom|zum|zur|beim|dem|den|der|des|die|das|seine?[mnrs]?|ihre?[mnrs]?|jede[mnrs]?"
)
# Abbreviations sentencex does not know, as they appear in (Austrian) news text; the
# titles are listed for compounds such as "Univ.-Prof." and "Dipl.-Ing.".
_ABBREVIATIONS = (
    "Abg|Abs|Aufl|Bd|Bgm|bspw|Dez|Dir|Doz|Dr|dt|ehem|Febr|geb|gest|Hrn|Hrsg|Ing|inkl|insb|Jh|MMag|Okt|österr"
    "|Präs|Prof|Tel|Tsd|verh|Vzbgm|Wr|zzgl"
)
# Where sentencex ends a sentence but German text does not. Each rule is a pattern for
# the end of the sentence so far (searched in its last 48 characters; no rule matches
# that many, so `^` is the sentence start) and one matched right after that end.
_NOT_A_BOUNDARY = tuple(
    (re.compile(before), re.compile(after))
    for before, after in (
        (r"\b\d{1,3}\.$", rf"\s*(?:{_AFTER_ORDINAL})\b"),  # "am 7. | Nov. 2025", "52. | Minute: Tor"
        (rf"\b(?i:{_DETERMINERS})\s+\d{{1,3}}\.$", ""),  # an ordinal: "der 3. | Sieg", "sein 39. | Album"
        (r"(?:^|[–(;]\s*|,\s+|(?<!\d):\s*)\d{1,3}\.$", ""),  # a list: "Endstand: 1. | Ogier – 2. | Latvala"
        (rf"(?:^|[\s(„\"'-])(?:{_ABBREVIATIONS})\.$", ""),  # an abbreviation: "Abs. | 2"
        (r"", r"-"),  # a hyphenated compound: "K.-o. | -Tropfen", "Dipl. | -Ing."
    )
)
_RULE_WINDOW = 48


def _is_hard_wrapped(lines: list[str]) -> bool:
    if len(lines) < _WRAP_MIN_LINES:
        return False
    inner = [line.strip() for line in lines[:-1]]
    lengths = [len(line) for line in inner]
    if min(lengths) < _WRAP_MIN_CHARS or max(lengths) > _WRAP_MAX_CHARS:
        return False
    if max(lengths) - min(lengths) > _WRAP_MAX_SPREAD * max(lengths):
        return False
    return sum(1 for line in inner if not _SENTENCE_END.search(line)) * 2 >= len(inner)


def _units(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """Spans that no sentence may cross: lines, or whole blocks when hard-wrapped."""
    block_start = start
    for separator in [*_BLOCK_SEPARATOR.finditer(text, start, end), None]:
        block_end = separator.start() if separator else end
        lines = list(_LINE.finditer(text, block_start, block_end))
        if _is_hard_wrapped([line.group() for line in lines]):
            yield lines[0].start(), lines[-1].end()
        else:
            yield from (line.span() for line in lines)
        if separator:
            block_start = separator.end()


def _trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    """The span without leading and trailing whitespace or invisible marks."""
    while start < end and (text[start].isspace() or text[start] in _INVISIBLE):
        start += 1
    while end > start and (text[end - 1].isspace() or text[end - 1] in _INVISIBLE):
        end -= 1
    return start, end


def _continues(unit: str, sentence_start: int, sentence_end: int) -> bool:
    """Whether the sentence ending at `sentence_end` goes on, by the `_NOT_A_BOUNDARY` table."""
    before = unit[max(sentence_start, sentence_end - _RULE_WINDOW) : sentence_end]
    after = unit[sentence_end : sentence_end + _RULE_WINDOW]
    return any(ending.search(before) and opening.match(after) for ending, opening in _NOT_A_BOUNDARY)


def _german_sentences(unit: str) -> Iterator[tuple[int, int]]:
    """Trimmed sentence spans of one unit: sentencex's, with wrong boundaries removed."""
    import sentencex

    current: tuple[int, int] | None = None
    for boundary in sentencex.get_sentence_boundaries("de", unit):
        start, end = _trimmed(unit, boundary["start_index"], boundary["end_index"])
        if start == end:
            continue
        if current is None:
            current = start, end
        elif _continues(unit, *current) or not _WORD_CHARACTER.search(unit, start, end):
            current = current[0], end  # a piece without words ("😊", ")") belongs to the sentence before
        else:
            yield current
            current = start, end
    if current is not None:
        yield current


def split_sentences(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Sentence spans in `text[start:end]` as offsets into `text`, trimmed of whitespace."""
    end = len(text) if end is None else end
    return [
        (unit_start + sentence_start, unit_start + sentence_end)
        for unit_start, unit_end in _units(text, start, end)
        for sentence_start, sentence_end in _german_sentences(text[unit_start:unit_end])
    ]


@dataclass(frozen=True)
class _Piece:
    """A sentence, or a word-aligned part of an over-long sentence, with its token count."""

    start: int
    end: int
    tokens: int


def _longest_fitting_prefix(word: str, count_tokens: TokenCounter, max_tokens: int) -> int:
    """Length of the longest prefix of `word` within `max_tokens` (at least one character)."""
    low, high = 1, len(word)
    while low < high:
        middle = (low + high + 1) // 2
        if count_tokens(word[:middle]) <= max_tokens:
            low = middle
        else:
            high = middle - 1
    return low


def _word_spans(
    text: str, start: int, end: int, count_tokens: TokenCounter, max_tokens: int
) -> Iterator[_Piece]:
    """Words of text[start:end]; a single word longer than `max_tokens` is cut by characters."""
    for match in _WORD.finditer(text, start, end):
        word_start, word = match.start(), match.group()
        while word:
            tokens = count_tokens(word)
            if tokens <= max_tokens:
                yield _Piece(word_start, word_start + len(word), tokens)
                break
            cut = _longest_fitting_prefix(word, count_tokens, max_tokens)
            yield _Piece(word_start, word_start + cut, count_tokens(word[:cut]))
            word_start, word = word_start + cut, word[cut:]


def _split_long_sentence(
    text: str, piece: _Piece, count_tokens: TokenCounter, max_tokens: int
) -> list[_Piece]:
    """Cut an over-long sentence at word boundaries into parts of at most `max_tokens`."""
    parts: list[_Piece] = []
    words = list(_word_spans(text, piece.start, piece.end, count_tokens, max_tokens))
    first = 0
    while first < len(words):
        last, total = first, words[first].tokens
        while last + 1 < len(words) and total + words[last + 1].tokens <= max_tokens:
            last += 1
            total += words[last].tokens
        while last > first and count_tokens(text[words[first].start : words[last].end]) > max_tokens:
            last -= 1  # tokenizers that merge across spaces can exceed the per-word sum
        start, end = words[first].start, words[last].end
        parts.append(_Piece(start, end, count_tokens(text[start:end])))
        first = last + 1
    return parts


def _pieces(text: str, start: int, end: int, count_tokens: TokenCounter, max_tokens: int) -> list[_Piece]:
    pieces: list[_Piece] = []
    for sentence_start, sentence_end in split_sentences(text, start, end):
        piece = _Piece(sentence_start, sentence_end, count_tokens(text[sentence_start:sentence_end]))
        if piece.tokens <= max_tokens:
            pieces.append(piece)
        else:
            pieces.extend(_split_long_sentence(text, piece, count_tokens, max_tokens))
    return pieces


def _pack(
    text: str, pieces: list[_Piece], count_tokens: TokenCounter, max_tokens: int, overlap_tokens: int
) -> Iterator[tuple[int, int]]:
    """Greedy packing of whole pieces into spans of at most `max_tokens`, with overlap."""
    first = 0
    while first < len(pieces):
        after_last, total = first, 0
        while after_last < len(pieces) and total + pieces[after_last].tokens <= max_tokens:
            total += pieces[after_last].tokens
            after_last += 1
        while after_last - 1 > first and (
            count_tokens(text[pieces[first].start : pieces[after_last - 1].end]) > max_tokens
        ):
            after_last -= 1
        yield pieces[first].start, pieces[after_last - 1].end
        if after_last >= len(pieces):
            return
        next_first, overlap = after_last, 0
        while next_first - 1 > first and overlap + pieces[next_first - 1].tokens <= overlap_tokens:
            next_first -= 1
            overlap += pieces[next_first].tokens
        while next_first < after_last and overlap + pieces[after_last].tokens > max_tokens:
            overlap -= pieces[next_first].tokens  # keep room for at least one new piece
            next_first += 1
        first = next_first


def chunk_id(doc_sha256: str, start: int, end: int, max_tokens: int, overlap_tokens: int) -> str:
    """Content address of a chunk: same document text, span and settings give the same id."""
    key = f"{doc_sha256}:{start}:{end}:{max_tokens}:{overlap_tokens}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def chunk_document(
    doc: Document, count_tokens: TokenCounter, max_tokens: int, overlap_tokens: int
) -> list[Chunk]:
    """Sentence-aligned chunks of each section of `doc`, in document order.

    `count_tokens` must be the embedding model's tokenizer (see
    `rag.index.embed.load_token_counter`), so that no chunk is truncated when embedded.
    Boilerplate sections are chunked too, so they can be shown; retrieval filters them.
    """
    chunks: list[Chunk] = []
    for section in doc.sections:
        pieces = _pieces(doc.text, section.start, section.end, count_tokens, max_tokens)
        for start, end in _pack(doc.text, pieces, count_tokens, max_tokens, overlap_tokens):
            chunks.append(
                Chunk(
                    id=chunk_id(doc.sha256, start, end, max_tokens, overlap_tokens),
                    source=doc.source,
                    start=start,
                    end=end,
                    text=doc.text[start:end],
                    section=section.kind,
                    ordinal=len(chunks),
                    doc_sha256=doc.sha256,
                    title=doc.title,
                    outlet=doc.outlet,
                    date=doc.date,
                    author=doc.author,
                    page=doc.page_at(start),
                )
            )
    return chunks
