"""Author, date and outlet as an article states them in its text.

`extract_metadata(text)` looks where articles state them: a byline ("Von Andrew
Korybko – 20. Februar 2026") or a date line near the top, a credit line ("Joseph
Fischer für Novastan") and self-references to the outlets in `rag.ingest.cleaning.OUTLETS`.
`parse_date` reads German and ISO dates. Formats that state metadata themselves
(HTML, PDF, collection columns) use this only for what they leave open.
`metadata_fingerprint()` is part of the index fingerprint: the authors and outlets
found here are stored with every chunk, so other patterns make the index stale.
Left out: dates in the running text (events, photo captions), which are ignored on purpose.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from typing import Any

from rag.ingest.cleaning import OUTLETS, outlet_of

METADATA_HEAD_LINES = 12  # bylines and date lines are looked for near the top only

_MONTHS = {
    "januar": 1, "jänner": 1, "jan": 1, "februar": 2, "feber": 2, "feb": 2, "märz": 3, "mär": 3, "mrz": 3,
    "april": 4, "apr": 4, "mai": 5, "juni": 6, "jun": 6, "juli": 7, "jul": 7, "august": 8, "aug": 8,
    "september": 9, "sept": 9, "sep": 9, "oktober": 10, "okt": 10, "november": 11, "nov": 11,
    "dezember": 12, "dez": 12,
}  # fmt: skip
_MONTH_NAMES = "|".join(sorted(_MONTHS, key=len, reverse=True))
_DATE_PATTERNS = (
    re.compile(
        rf"\b(?P<day>\d{{1,2}})\.\s*(?P<month>{_MONTH_NAMES})\.?\s+(?P<year>\d{{4}})\b", re.IGNORECASE
    ),
    re.compile(r"\b(?P<day>\d{1,2})\.\s?(?P<month>\d{1,2})\.\s?(?P<year>\d{4})\b"),
    re.compile(r"\b(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})\b"),
)
_BLANK = r"[^\S\n]"  # a space or tab: names and bylines never continue on the next line
_NAME = rf"[A-ZÄÖÜ][\w'’.-]+(?:{_BLANK}+(?:von|van|de|der|zu|al|el)?{_BLANK}*[A-ZÄÖÜ][\w'’.-]+){{1,3}}"
_BYLINE = re.compile(
    rf"^\s*(?:Von|Ein (?:Beitrag|Kommentar|Gastbeitrag|Interview) von|Autor(?:in)?:|Text:){_BLANK}+"
    rf"(?P<author>{_NAME}(?:{_BLANK}+(?:und|&){_BLANK}+{_NAME})?){_BLANK}*(?:[–—|,-]{_BLANK}*(?P<rest>.*))?$",
    re.MULTILINE,
)
_DATE_LINE = re.compile(
    r"^\s*(?:(?:Veröffentlicht|Publiziert|Erschienen)(?: am)?:?|Stand:|Datum:)?\s*(?P<date>[\w. -]{6,30}?)"
    r"\s*(?:,?\s*\d{1,2}[:.]\d{2}(?:\s*Uhr)?)?\s*$",
    re.MULTILINE,
)
_OUTLET_NAMES = "|".join(re.escape(name) for name in OUTLETS)
_CREDIT_LINE = re.compile(rf"^\s*(?P<author>{_NAME})\s+für\s+(?:{_OUTLET_NAMES})\s*$", re.MULTILINE)


def parse_date(text: str) -> str | None:
    """The first valid date in `text` as ISO YYYY-MM-DD (German formats)."""
    for pattern in _DATE_PATTERNS:
        for match in pattern.finditer(text):
            month_text = match["month"]
            month = int(month_text) if month_text.isdigit() else _MONTHS[month_text.lower()]
            try:
                return dt.date(int(match["year"]), month, int(match["day"])).isoformat()
            except ValueError:
                continue
    return None


def extract_metadata(text: str) -> dict[str, Any]:
    """Author, date and outlet when the text states them; None where it does not.

    Looks only where articles state them: a byline ("Von Andrew Korybko – 20. Februar
    2026") or a date line near the top, a credit line ("Joseph Fischer für Novastan"),
    and self-references to the outlets in `rag.ingest.cleaning.OUTLETS`. Dates in the running
    text (events, photo captions) are deliberately ignored.
    """
    head = "\n".join(text.lstrip().split("\n")[:METADATA_HEAD_LINES])
    author = date = None
    byline = _BYLINE.search(head)
    if byline:
        author = byline["author"].strip()
        date = parse_date(byline["rest"] or "")
    if date is None:
        for line in _DATE_LINE.finditer(head):
            date = parse_date(line["date"])
            if date:
                break
    if author is None:
        credit = _CREDIT_LINE.search(text)
        author = credit["author"] if credit else None
    return {"author": author, "date": date, "outlet": outlet_of(text)}


def metadata_fingerprint() -> str:
    """A hash of everything here that decides an article's author, date and outlet.

    They are stored with every chunk and retrieval filters on them, so editing a
    pattern or the outlet table must make the index stale; otherwise unchanged files
    keep the old values. Every module-level compiled pattern counts, so a new one
    needs no bookkeeping here; `OUTLETS` is read afresh because `outlet_of` uses it.
    """
    patterns = [
        f"{name}|{pattern.flags}|{pattern.pattern}"
        for name, value in sorted(globals().items())
        for pattern in (value if isinstance(value, tuple) else (value,))
        if isinstance(pattern, re.Pattern)
    ]
    outlets = [f"{name}|{pattern.flags}|{pattern.pattern}" for name, pattern in OUTLETS.items()]
    described = {
        "patterns": patterns,
        "outlets": outlets,
        "months": _MONTHS,
        "head_lines": METADATA_HEAD_LINES,
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:16]
