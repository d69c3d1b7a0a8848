"""What a question asks: the kind of fact it wants, and the parts it asks in.

`answer_type` reads the kind of fact from the question's words: an article's byline, a
day, a date, a quantity, a duration, what somebody said, or anything. `can_state` says
whether a sentence can state that kind (a number for a quantity, a time for a date,
reported speech for "what did … say"); `rag.answering.select` leaves out candidates that
cannot, and `rag.answering.phrase` holds a written answer to the same test.
`question_parts` splits a question that asks two things ("Wie viele Abkommen …, und
welchen Preis …?") before "und"/"and" and a question word. These are rules of German
and English questions, not of one corpus. Left out: ranking sentences (`select`).
"""

from __future__ import annotations

import re
from typing import Literal

AnswerType = Literal["quantity", "duration", "day", "date", "byline", "speech", "any"]

# A word of a question (letters first, then letters, digits and hyphens).
WORD = re.compile(r"[^\W\d_][\w-]*", re.UNICODE)
# Both sides of a split hold at least this many words: "Wann und wo wurde …" is one
# question about one event, not two.
MIN_PART_WORDS = 3
_QUESTION_WORDS = (
    "wer|wen|wem|wessen|was|wann|wo|wohin|woher|wie|warum|weshalb|wieso|wozu|womit|wovon|welche[mnrs]?|"
    "who|whom|whose|what|when|where|which|why|how"
)
# Where a question in parts splits: before "und"/"and" followed by a question word.
_PART_BOUNDARY = re.compile(rf",?\s+(?:und|and)\s+(?=(?:{_QUESTION_WORDS})\b)", re.I)
_ASKS_QUANTITY = re.compile(
    r"\b(wie ?viele?|wie hoch|wie groß|wie alt|how (many|much|old|high|large))\b", re.I
)
_ASKS_DURATION = re.compile(r"\b(wie lange|how long)\b", re.I)
_ASKS_DAY = re.compile(
    r"\b((an|zu|seit) welche[mn]? (datum|tag)|welche[ms]? datum|(on|at|from|since) (which|what) (date|day)|"
    r"(which|what) (date|day))\b",
    re.I,
)
_ASKS_DATE = re.compile(
    r"\b(wann|seit wann|bis wann|(an|zu|in|seit) welche[mn]? (jahr|monat|zeitpunkt)|welche[ms]? jahr|when|"
    r"since when|(in|at) (which|what) (year|month)|(which|what) (year|month))\b",
    re.I,
)
# Questions about an article itself: who wrote it, and when it appeared.
# "Autor" alone is not enough: "Welchen Autor lobt der Leser …?" and "Why does the author
# doubt …?" ask about something else; "der Autor des Artikels" and "who wrote" do not.
_ASKS_BYLINE = re.compile(
    r"\b((wer|von wem)\b.*\b(geschrieben|verfasst|schrieb|verfasste)|autor(in)? (des|dieses|von)\b|"
    r"(who|by whom)\b.*\b(wrote|written|authored)|author of\b|(wann|an welchem tag|when|(which|what) "
    r"(day|date))\b.*\b(erschien|erschienen|veröffentlicht|published))",
    re.I,
)
_NUMBER_WORDS = (
    "zwei|drei|vier|fünf|sechs|sieben|acht|neun|zehn|elf|zwölf|zwanzig|dreißig|hundert|"
    "tausend|dutzend|halbe?|million(en)?|milliarde(n)?|one|two|three|four|five|six|seven|eight|nine|ten|"
    "eleven|twelve|twenty|thirty|hundred|thousand|dozen|half|million|billion|zweitägig\\w*|dreitägig\\w*"
)
# A year answers "when", not "how many".
_STATES_QUANTITY = re.compile(rf"\b(?!1[89]\d\d\b|20\d\d\b)\d|\b({_NUMBER_WORDS})\b", re.I)
# "How long" is also answered by one unit of time: "eine Woche", "a year".
_STATES_ONE_UNIT_OF_TIME = re.compile(
    r"\b(eine?[mnrs]?|one|a|an)\s+(halbe[mnrs]?\s+|half\s+)?(stunde|tag|woche|monat|jahr|jahrzehnt|hour|day|week|"
    r"month|year|decade)\b",
    re.I,
)
_MONTHS = (
    "januar|jänner|februar|märz|april|mai|juni|juli|august|september|oktober|november|dezember|january|"
    "february|march|may|june|july|october|december"
)
_STATES_DATE = re.compile(
    rf"\b(1[89]\d\d|20\d\d|{_MONTHS}|montag|dienstag|mittwoch|donnerstag|freitag|samstag|sonntag|monday|"
    r"tuesday|wednesday|thursday|friday|saturday|sunday|gestern|heute|vorgestern|morgen|yesterday|today|"
    r"frühjahr|frühling|sommer|herbst|winter|spring|summer|autumn|fall|woche|wochen|monat|monaten|jahr|"
    r"jahren|week|weeks|month|months|year|years|tag|tage|tagen|days?|zuvor|damals|bisher)\b",
    re.I,
)


# Questions about what somebody said: only reported speech can answer them.
_ASKS_SPEECH = re.compile(
    r"\b((was|wie)\b.*\b(sagte|sagt|sagten|äußerte|erklärte|meinte|bezeichnete|nannte|betonte)|"
    r"what (did|does|do)\b.*\b(say|tell|state|call)|how (did|does|do)\b.*\b(describe|call))\b",
    re.I,
)
# Reported speech: quotation marks, a verb of saying, or the German reported-speech mood.
_STATES_SPEECH = re.compile(
    r"[„“”\"«»]|\b(sagte|sagt|sagten|äußerte|äußert|erklärte|erklärt|meinte|meint|betonte|betont|sprach|"
    r"spricht|bezeichnete|bezeichnet|nannte|nennt|sei|seien|habe|said|says|told|stated|states|called|calls|"
    r"described|describes)\b",
    re.I,
)


def answer_type(question: str) -> AnswerType:
    """What kind of fact the question asks for: the article's byline, a date, a quantity, a duration,
    what somebody said, or anything."""
    if _ASKS_BYLINE.search(question):
        return "byline"
    if _ASKS_DAY.search(question):
        return "day"
    if _ASKS_DATE.search(question):
        return "date"
    if _ASKS_QUANTITY.search(question):
        return "quantity"
    if _ASKS_DURATION.search(question):
        return "duration"
    if _ASKS_SPEECH.search(question):
        return "speech"
    return "any"


_WEEKDAYS = (
    "montag|dienstag|mittwoch|donnerstag|freitag|samstag|sonntag|monday|tuesday|wednesday|thursday|friday|"
    "saturday|sunday"
)
_STATES_DAY = re.compile(
    rf"\b(\d{{1,2}}\.?\s*({_MONTHS})|({_MONTHS})\s+\d{{1,2}}\b|\d{{1,2}}\.\d{{1,2}}\.|{_WEEKDAYS}|gestern|heute|"
    r"vorgestern|yesterday|today)",
    re.I,
)


def can_state(answer: AnswerType, text: str, question: str = "") -> bool:
    """Whether `text` can state the kind of fact asked for (a number for a quantity, a time for a date,
    a day for "on which date", reported speech for "what did … say").

    Numbers that the question already holds do not count: "in January 2022" answers no
    "how many … in January 2022?". A byline question is answered by the article's
    heading lines, which `select_evidence` prefers.
    """
    for number in set(re.findall(r"\d+", question)):
        text = re.sub(rf"(?<!\d){number}(?!\d)", " ", text)
    if answer == "quantity":
        return bool(_STATES_QUANTITY.search(text))
    if answer == "duration":
        return bool(_STATES_QUANTITY.search(text) or _STATES_ONE_UNIT_OF_TIME.search(text))
    if answer == "date":
        return bool(_STATES_DATE.search(text))
    if answer == "day":
        return bool(_STATES_DAY.search(text))
    if answer == "speech":
        return bool(_STATES_SPEECH.search(text))
    return True


def question_parts(question: str) -> list[str]:
    """The parts of a question that asks two things ("Wie viele …, und welchen Preis …?"), or the question."""
    parts = _PART_BOUNDARY.split(question)
    if len(parts) < 2 or any(len(WORD.findall(part)) < MIN_PART_WORDS for part in parts):
        return [question]
    return parts
