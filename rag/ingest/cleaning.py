"""Label the parts of a scraped article: body, reader comments, boilerplate.

`RULES` is the one readable table of patterns; adding an outlet's boilerplate is one
more `Rule(...)` line. `label_sections(text)` applies the table and returns contiguous,
non-overlapping sections that cover the whole text, in order. Nothing is removed or
rewritten: labels only decide what retrieval searches (body, optionally comments) and
what it merely shows. `OUTLETS` names the outlets whose self-references we recognise.
This module does no I/O and no sentence splitting.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from rag.types import Section, SectionKind

LinePredicate = Callable[[Sequence[str]], Iterable[int]]
Extent = Literal["match", "line", "rest"]

_FLAGS = re.IGNORECASE | re.MULTILINE


def whole_line(pattern: str) -> re.Pattern[str]:
    """A pattern that must fill a whole line (surrounding blanks and list dashes allowed)."""
    return re.compile(rf"^[ \t]*(?:[-–•][ \t]*)?(?:{pattern})[ \t]*$", _FLAGS)


def line_starting(pattern: str) -> re.Pattern[str]:
    """A pattern that must open a line."""
    return re.compile(rf"^[ \t]*(?:{pattern})", _FLAGS)


def anywhere(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, _FLAGS)


_SENTENCE_END = re.compile(r"[.!?:;…“”\"')\]]$")
_TEASER_LINE_MAX_CHARS = 90
_PARAGRAPH_MIN_CHARS = 200


def _is_title_like(line: str) -> bool:
    stripped = line.strip()
    return 0 < len(stripped) <= _TEASER_LINE_MAX_CHARS and not _SENTENCE_END.search(stripped)


def teaser_stack(lines: Sequence[str]) -> Iterable[int]:
    """Two or more short title-like lines glued (no blank line) onto the top of a paragraph.

    Scraped "related article" boxes land there without any label; real subheadings
    are single lines. Only used in texts that separate paragraphs with blank lines,
    where glued lines stand out.
    """
    if sum(1 for line in lines if not line.strip()) < 3:
        return
    top = 0
    while top < len(lines):
        if not _is_title_like(lines[top]):
            top += 1
            continue
        bottom = top
        while bottom + 1 < len(lines) and _is_title_like(lines[bottom + 1]):
            bottom += 1
        opens_block = top == 0 or not lines[top - 1].strip()
        glued_to_paragraph = (
            bottom + 1 < len(lines) and len(lines[bottom + 1].strip()) >= _PARAGRAPH_MIN_CHARS
        )
        if opens_block and glued_to_paragraph and bottom > top:
            yield from range(top, bottom + 1)
        top = bottom + 1


@dataclass(frozen=True)
class Rule:
    """Label `kind` on what `pattern` finds.

    extent "match": exactly the matched characters (for teasers glued into a line);
    "line": the whole line; "rest": from that line to the end of the text, until a
    later "rest" rule switches the kind (comment sections, page footers). Line and
    match rules win over "rest" regions, and boilerplate wins over comments.
    """

    kind: Literal["comments", "boilerplate"]
    extent: Extent
    pattern: re.Pattern[str] | LinePredicate
    description: str


RULES: tuple[Rule, ...] = (
    # Reader comments: from the heading or comment form to the end of the page.
    Rule(
        "comments",
        "rest",
        whole_line(r"(\d+\s+)?(Leser)?(Kommentare|Comments)(\s*\(\s*\d+\s*\))?:?|\d+\s+(Kommentar|Comment)"),
        "comment-section heading: 'Kommentare ( 21 )', '21 Comments', 'Leserkommentare'",
    ),
    Rule(
        "comments",
        "rest",
        whole_line(r"(Schreibe|Hinterlasse|Schreiben Sie) einen Kommentar|Kommentar (schreiben|verfassen)"),
        "comment form heading",
    ),
    # Comment-section furniture.
    Rule(
        "boilerplate", "line", whole_line(r"Liebe Leser(innen)?( und Leser)?!?"), "moderation notice greeting"
    ),
    Rule(
        "boilerplate",
        "line",
        anywhere(r"Wir sind dankbar für Ihre Kommentare|Kommentare werden moderiert"),
        "moderation notice (Tichys Einblick)",
    ),
    Rule(
        "boilerplate",
        "line",
        anywhere(r"E-Mail-Adresse wird nicht veröffentlicht|Erforderliche Felder sind mit"),
        "comment form notice",
    ),
    Rule("boilerplate", "line", anywhere(r"\bAkismet\b"), "spam-filter notice"),
    Rule(
        "boilerplate",
        "line",
        whole_line(
            r"neu(e)?ste|älteste( beste Bewertung)?|beste Bewertung|Inline Feedbacks|Alle Kommentare ansehen"
        ),
        "comment sorting and navigation buttons",
    ),
    # Cross-links, teasers, newsletters, donations, ads.
    Rule(
        "boilerplate",
        "line",
        line_starting(
            r"(Lest|Lesen Sie|Lies) auch\b|Auch interessant:|Mehr zum Thema:"
            r"|Das könnte (Sie|dich) auch interessieren"
        ),
        "'Lest auch auf …', 'Lesen Sie auch' cross-links",
    ),
    Rule(
        "boilerplate", "line", teaser_stack, "unlabelled related-article teaser lines glued onto a paragraph"
    ),
    Rule(
        "boilerplate",
        "line",
        line_starting(r"Unterstützt Novastan|Unterstützen Sie (uns|unsere Arbeit|unabhängigen Journalismus)"),
        "donation appeal heading",
    ),
    Rule(
        "boilerplate",
        "match",
        anywhere(r"Als vereinsgetragene, unabhängige Plattform lebt Novastan.*?Unterstützung!"),
        "Novastan donation teaser, often glued to the next paragraph",
    ),
    Rule(
        "boilerplate",
        "line",
        whole_line(r"Anzeige|Werbung|Advertisement|Unterstützung|Jetzt spenden|Spenden|oder"),
        "ad markers and donation-button labels",
    ),
    Rule(
        "boilerplate",
        "line",
        anywhere(
            r"Social[- ]Media[- ]Kanälen|Newsletter (abonnieren|anmelden|bestellen)"
            r"|zu unserem (wöchentlichen )?Newsletter"
        ),
        "social-media and newsletter teaser",
    ),
    Rule(
        "boilerplate",
        "line",
        whole_line(
            r"((Teilen|Share|Drucken|Twittern|Link kopieren|Artikel teilen|Facebook|WhatsApp|E-Mail)"
            r"[ \t|/•·]*)+"
        ),
        "share buttons",
    ),
    # Credits and legal lines.
    Rule(
        "boilerplate",
        "line",
        whole_line(
            r"((Foto|Bild|Bildquelle|Quelle):\s*)?"
            r"(IMAGO|dpa|AFP|Reuters|picture alliance|Getty Images|AP Photo)(\s*/\s*[^/\n]+)*"
        ),
        "photo agency credit",
    ),
    Rule(
        "boilerplate",
        "line",
        line_starting(r"Veröffentlichung mit freundlicher Genehmigung|\[?Zum Originalbeitrag"),
        "republication note and link to the original",
    ),
    Rule(
        "boilerplate",
        "line",
        line_starting(r"©|\(c\)\s|Copyright\b|Alle Rechte vorbehalten"),
        "copyright line",
    ),
    # Page footers: tag lists and everything after them.
    Rule(
        "boilerplate",
        "rest",
        whole_line(r"(Themen|Schlagworte|Schlagwörter|Tags):"),
        "tag list that opens the page footer",
    ),
)


# Outlets recognised in metadata, with the phrases by which an article names its own outlet.
def rules_fingerprint() -> str:
    """A hash of the rule table: changing a rule changes the sections, so the index is stale."""
    import hashlib

    described = [
        f"{r.kind}|{r.extent}|{getattr(r.pattern, 'pattern', getattr(r.pattern, '__name__', ''))}"
        for r in RULES
    ]
    return hashlib.sha256("\n".join(described).encode()).hexdigest()[:16]


OUTLETS: dict[str, re.Pattern[str]] = {
    "Novastan": re.compile(r"\bNovastan\b"),
    "Tichys Einblick": re.compile(r"Tichys Einblick|tichyseinblick\.de"),
    "Kettner Edelmetalle": re.compile(r"Kettner Edelmetalle"),
    "DER STANDARD": re.compile(r"\bDER STANDARD\b|derstandard\.at"),
}

_KIND_CODES: dict[SectionKind, int] = {"body": 0, "comments": 1, "boilerplate": 2}
_KIND_BY_CODE = {code: kind for kind, code in _KIND_CODES.items()}
_RUN = re.compile(rb"\x00+|\x01+|\x02+")


def _line_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each line, end excluding the newline."""
    spans, start = [], 0
    for line in text.split("\n"):
        spans.append((start, start + len(line)))
        start += len(line) + 1
    return spans


def _rule_spans(
    rule: Rule, text: str, lines: list[str], line_spans: list[tuple[int, int]]
) -> list[tuple[int, int]]:
    """Spans a single rule marks (for "rest" rules: only the opening line's span)."""
    if not isinstance(rule.pattern, re.Pattern):
        return [line_spans[i] for i in rule.pattern(lines)]
    if rule.extent == "match":
        return [match.span() for match in rule.pattern.finditer(text) if match.end() > match.start()]
    spans = []
    for match in rule.pattern.finditer(text):
        line_start = text.rfind("\n", 0, match.start()) + 1
        line_end = text.find("\n", match.end())
        spans.append((line_start, len(text) if line_end < 0 else line_end))
    return spans


def label_sections(text: str) -> tuple[Section, ...]:
    """Label every character of `text`; return the runs as sections in order."""
    if not text:
        return ()
    lines = text.split("\n")
    line_spans = _line_spans(text)
    codes = bytearray(len(text))

    region_starts = sorted(
        (start, _KIND_CODES[rule.kind])
        for rule in RULES
        if rule.extent == "rest"
        for start, _ in _rule_spans(rule, text, lines, line_spans)
    )
    region_ends = [start for start, _ in region_starts[1:]] + [len(text)] if region_starts else []
    for (start, code), end in zip(region_starts, region_ends, strict=True):
        codes[start:end] = bytes([code]) * (end - start)

    for kind in ("comments", "boilerplate"):  # later wins: boilerplate over comments
        for rule in RULES:
            if rule.kind != kind or rule.extent == "rest":
                continue
            for start, end in _rule_spans(rule, text, lines, line_spans):
                codes[start:end] = bytes([_KIND_CODES[kind]]) * (end - start)
    return _merge_runs(text, codes)


def _merge_runs(text: str, codes: bytearray) -> tuple[Section, ...]:
    """Sections from per-character codes; whitespace-only runs join the section before them."""
    sections: list[Section] = []
    for run in _RUN.finditer(codes):
        kind = _KIND_BY_CODE[run.group()[0]]
        if sections and (kind == sections[-1].kind or not text[run.start() : run.end()].strip()):
            sections[-1] = Section(sections[-1].kind, sections[-1].start, run.end())
        else:
            sections.append(Section(kind, run.start(), run.end()))
    return tuple(sections)


def outlet_of(text: str) -> str | None:
    """The outlet that `text` names most often, if it names any we know."""
    counts = {name: len(pattern.findall(text)) for name, pattern in OUTLETS.items()}
    best = max(counts, key=lambda name: counts[name])
    return best if counts[best] else None
