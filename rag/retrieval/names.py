"""Which documents a question names, by quoted title, outlet or author, and the question without them.

"laut Tichys Einblick", "according to Novastan", "laut Korybko", "im Artikel „Machtkampf
um Zentralasien“": a name says where to look (`rag.retrieval.retrieve` gives the named
documents' chunks a bonus), and the rest of the question says which passage.

Leaves out: names that are not in the index's metadata (a title never indexed, an
outlet the extractor did not find) and fuzzy spellings of names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from rag.types import Chunk

_MIN_TITLE_WORDS = 2
# "laut dem Artikel „…“", "in the Novastan article": the words that frame a name belong to it.
_DOCUMENT_NOUN = r"(?:artikels?|beitrags?|berichts?|texts?|articles?|reports?|pieces?)"
_FRAME_BEFORE = re.compile(
    rf"(?:\b(?:laut|nach|im|in|according to)\s+)?(?:\b(?:dem|den|der|des|the)\s+)?(?:\b{_DOCUMENT_NOUN}\s*)?$"
)
_FRAME_AFTER = re.compile(rf"^\s*{_DOCUMENT_NOUN}\b")
QUOTED = re.compile(r"[„“\"»«]([^„“”\"»«]{4,200})[“”\"«»]")


def name_mentions(query: str, documents: Mapping[str, Chunk]) -> list[tuple[re.Match[str], set[str]]]:
    """Where the case-folded `query` names documents, and which (see `named_documents`)."""
    folded = fold(query)
    mentions: list[tuple[re.Match[str], set[str]]] = []
    for match in QUOTED.finditer(folded):
        phrase = match.group(1).strip()
        if len(phrase.split()) < _MIN_TITLE_WORDS:
            continue  # „Kasachstan“ is a word in quotes, not a title
        titled = {s for s, c in documents.items() if phrase in (title := fold(c.title)) or title in phrase}
        if titled:
            mentions.append((match, titled))
    names: dict[str, set[str]] = {}
    for source, chunk in documents.items():
        for name in (chunk.outlet or "", chunk.author.split()[-1] if chunk.author else ""):
            if name:
                names.setdefault(fold(name), set()).add(source)
    for name, sources in names.items():
        mentions += [(m, sources) for m in re.finditer(rf"(?<!\w){re.escape(name)}s?(?!\w)", folded)]
    return mentions


def fold(text: str) -> str:
    """Case-folded, with hyphens as spaces: "Tichys-Einblick-Artikel" names Tichys Einblick."""
    return text.casefold().replace("-", " ")


def named_documents(query: str, documents: Mapping[str, Chunk]) -> frozenset[str]:
    """Sources `query` names (`documents`: one chunk per source, for its metadata).

    A quoted phrase of two or more words names a document when it is part of that
    document's title (or the title part of it); an outlet or an author's surname names every document it
    belongs to when it occurs in the question as a word (a genitive s allowed).
    """
    return frozenset().union(*(sources for _, sources in name_mentions(query, documents)))


def without_document_names(query: str, documents: Mapping[str, Chunk]) -> str:
    """The case-folded query with the phrases that name documents cut out.

    The name says which article; the rest of the question says which passage in it.
    Scored as one more keyword variant, it lets the passage that answers outrank the
    title passage that merely repeats the name.
    """
    return cut_names(query, name_mentions(query, documents))


def cut_names(query: str, mentions: Sequence[tuple[re.Match[str], set[str]]]) -> str:
    """The case-folded query without the mentions found in it, each with its frame."""
    folded = fold(query)
    for match, _ in sorted(mentions, key=lambda m: -m[0].start()):
        before, after = folded[: match.start()], folded[match.end() :]
        before = _FRAME_BEFORE.sub(" ", before, count=1)
        after = _FRAME_AFTER.sub(" ", after, count=1)
        folded = f"{before} {after}"
    return " ".join(folded.split())
