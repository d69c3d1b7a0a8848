"""Checks the evaluation sets `evals/questions.jsonl` and `evals/heldout.jsonl` against the schema
and the articles.

Covers structure (JSON Schema, ids, follow-up links), exact evidence spans, grounding of the required
facts in that evidence, the rules for multi-doc, comment, spelling-variant and language tags, and the
coverage minimums of the main set (the held-out set passes the per-line checks). Seed evidence is
checked against the seeds decoded here independently; questions with a `corpus` (saved web pages
outside the repository) against the canonical text that `rag.ingest.read.read_source` extracts, and
are skipped when the corpus is absent. It does not run the pipeline: answer quality is measured by
`rag eval` (`rag.evaluation.run`).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from rag.ingest.read import BYTES_PER_MB, read_source
from rag.types import Document

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS_PATH = ROOT / "evals" / "questions.jsonl"
HELDOUT_PATH = ROOT / "evals" / "heldout.jsonl"
SCHEMA_PATH = ROOT / "evals" / "questions.schema.json"
SEEDS = ROOT / "seeds"
HTML_NEWS_CORPUS = "../../shared/corpora/html-news"  # relative to evals/, as questions name it

# Start of the reader-comment section in a seed ("Kommentare ( 21 )").
COMMENTS_MARKER = re.compile(r"Kommentare\s*\(\s*\d+\s*\)")

# Spellings of names that occur across the seeds; a spelling-variant question must use one its sources lack.
NAME_SPELLINGS = (
    "Tokajew", "Toqajew", "Toqaev", "Tokayev", "Tokaev", "Kasachstan", "Kazakhstan",
    "Selenskyj", "Zelensky", "Zelenskyy", "Lawrow", "Lavrov", "Nasarbajew", "Nazarbayev",
)  # fmt: skip

# Function words that tell the two question languages apart ("in" and "so" are shared and left out).
GERMAN_WORDS = frozenset({
    "der", "die", "das", "und", "wer", "was", "wie", "welche", "welcher", "welchen", "welches", "wann",
    "warum", "wo", "wohin", "wozu", "woher", "laut", "dem", "den", "mit", "hat", "hatte", "ist", "von",
    "wem", "sich", "nach", "im", "zu", "auf", "seit", "er", "sie", "es", "wurde", "bei", "ein", "eine",
    "einem", "einen", "dass",
})  # fmt: skip
ENGLISH_WORDS = frozenset({
    "the", "and", "who", "what", "which", "when", "why", "where", "how", "did", "does", "is", "was", "of",
    "to", "according", "by", "whom", "his", "her", "it", "a", "at", "has", "had", "into",
})  # fmt: skip


def normalize(text: str) -> str:
    """Casefolded NFC text with every run of whitespace (including no-break spaces) as one space."""
    return " ".join(unicodedata.normalize("NFC", text).casefold().split())


def load_questions(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


QUESTIONS = load_questions(QUESTIONS_PATH)
LINES = QUESTIONS + load_questions(HELDOUT_PATH)  # what every line of either set must satisfy
BY_ID = {question["id"]: question for question in QUESTIONS}
ANSWERABLE = [question for question in LINES if question["answerable"]]
SPELLING_VARIANTS = [question for question in QUESTIONS if "spelling-variant" in question.get("notes", "")]
NEEDS_NOTES = [question for question in LINES if question["type"] in ("unanswerable", "false-premise")]


@cache
def seed_text(name: str) -> str:
    """The seed decoded exactly as the index decodes it (BOM dropped, CRLF -> LF, NFC)."""
    raw = (SEEDS / name).read_text(encoding="utf-8-sig").replace("\r\n", "\n")
    return unicodedata.normalize("NFC", raw)


def corpus_dir(question: dict[str, Any]) -> Path:
    """The folder of a question's corpus; skips the test when it is absent."""
    folder = (QUESTIONS_PATH.parent / question["corpus"]).resolve()
    if not folder.is_dir():
        pytest.skip(f"corpus {question['corpus']} is absent ({folder})")
    return folder


@cache
def corpus_document(folder: Path, name: str) -> Document:
    return read_source(name, folder, 50 * BYTES_PER_MB)


def source_text(question: dict[str, Any], name: str) -> str:
    """The canonical text of one of the question's sources: a seed, or an article of its corpus."""
    if "corpus" not in question:
        return seed_text(name)
    return corpus_document(corpus_dir(question), name).text


def comments_start(question: dict[str, Any], name: str) -> int | None:
    """Where the reader comments of a source begin (the marker in seeds, the comments section else)."""
    if "corpus" in question:
        document = corpus_document(corpus_dir(question), name)
        return next((s.start for s in document.sections if s.kind == "comments"), None)
    match = COMMENTS_MARKER.search(seed_text(name))
    return match.start() if match else None


def contains_fact(text: str, alternatives: list[str]) -> bool:
    haystack = normalize(text)
    return any(normalize(alternative) in haystack for alternative in alternatives)


def evidence_text(question: dict[str, Any], source: str | None = None) -> str:
    return "\n".join(e["text"] for e in question["evidence"] if source is None or e["source"] == source)


def by_id(items: list[dict[str, Any]]) -> list[Any]:
    return [pytest.param(item, id=item["id"]) for item in items]


def test_schema_is_valid_draft_2020_12() -> None:
    Draft202012Validator.check_schema(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))


@pytest.mark.parametrize("question", by_id(LINES))
def test_line_matches_schema(question: dict[str, Any]) -> None:
    validator = Draft202012Validator(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))
    errors = [f"{list(error.path)}: {error.message}" for error in validator.iter_errors(question)]
    assert not errors


def test_schema_rejects_broken_lines() -> None:
    """The conditional rules must bite, or the per-line schema test proves nothing."""
    validator = Draft202012Validator(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))
    fact = next(q for q in QUESTIONS if q["type"] == "fact")
    follow_up = next(q for q in QUESTIONS if q["type"] == "follow-up")
    comment = next(q for q in QUESTIONS if q["type"] == "comments")
    broken = [
        {**fact, "type": "unanswerable", "answerable": False},  # unanswerable with sources
        {**fact, "answerable": False},  # answerable type marked unanswerable
        {k: v for k, v in follow_up.items() if k != "follows"},
        {**fact, "follows": "q001"},
        {k: v for k, v in comment.items() if k != "include_comments"},
        {**fact, "include_comments": True},
        {**fact, "type": "english", "lang": "de"},
        {**fact, "type": "multi-doc"},  # one source only
        {**fact, "lang": "fr"},
        {**fact, "extra": 1},
    ]
    for line in broken:
        assert not validator.is_valid(line), line


def test_ids_are_unique() -> None:
    """Unique across both sets, so runs of either can be compared question by question."""
    counts = Counter(question["id"] for question in LINES)
    assert [qid for qid, n in counts.items() if n > 1] == []


@pytest.mark.parametrize("question", by_id([q for q in QUESTIONS if "follows" in q]))
def test_follow_up_points_to_earlier_fact_question(question: dict[str, Any]) -> None:
    ids = [q["id"] for q in QUESTIONS]
    target = BY_ID[question["follows"]]
    assert ids.index(target["id"]) < ids.index(question["id"])
    assert target["type"] == "fact"
    assert set(target["sources"]) & set(question["sources"]), "a follow-up stays on its predecessor's article"
    assert len(question["question"]) < len(target["question"]), "a follow-up leans on context, so it is short"


@pytest.mark.parametrize("question", by_id(ANSWERABLE))
def test_evidence_spans_match_source_text(question: dict[str, Any]) -> None:
    folder = corpus_dir(question) if "corpus" in question else SEEDS
    for evidence in question["evidence"]:
        assert (folder / evidence["source"]).is_file()
        assert evidence["source"] in question["sources"]
        assert evidence["start"] < evidence["end"]
        text = source_text(question, evidence["source"])
        assert text[evidence["start"] : evidence["end"]] == evidence["text"]
        assert len(evidence["text"]) <= 900, "evidence is one passage of a few sentences"
    assert set(question["sources"]) == {e["source"] for e in question["evidence"]}


@pytest.mark.parametrize("question", by_id(ANSWERABLE))
def test_every_required_fact_is_stated_in_the_evidence(question: dict[str, Any]) -> None:
    """At least one alternative of each fact occurs verbatim in the evidence; the rest are renderings
    (English, inflected) of it. So no fact can demand something the sources do not say."""
    text = evidence_text(question)
    missing = [facts for facts in question["required_facts"] if not contains_fact(text, facts)]
    assert missing == []


@pytest.mark.parametrize("question", by_id(ANSWERABLE))
def test_required_facts_are_not_given_away_by_the_question(question: dict[str, Any]) -> None:
    """An answer that merely repeats the question must not satisfy any fact."""
    echoed = [facts for facts in question["required_facts"] if contains_fact(question["question"], facts)]
    assert echoed == []


@pytest.mark.parametrize("question", by_id([q for q in QUESTIONS if q["type"] == "multi-doc"]))
def test_multi_doc_question_needs_every_source(question: dict[str, Any]) -> None:
    assert len(question["sources"]) >= 2
    for source in question["sources"]:
        alone = evidence_text(question, source)
        covered = [facts for facts in question["required_facts"] if contains_fact(alone, facts)]
        assert covered, f"{source} contributes no fact"
        assert len(covered) < len(question["required_facts"]), f"{source} alone answers the question"


@pytest.mark.parametrize("question", by_id(ANSWERABLE))
def test_comment_evidence_only_for_comment_questions(question: dict[str, Any]) -> None:
    for evidence in question["evidence"]:
        start = comments_start(question, evidence["source"])
        in_comments = start is not None and evidence["start"] >= start
        assert in_comments == (question["type"] == "comments")


@pytest.mark.parametrize("question", by_id([q for q in QUESTIONS if q["type"] == "comments"]))
def test_comment_answers_are_absent_from_the_article_body(question: dict[str, Any]) -> None:
    for source in question["sources"]:
        start = comments_start(question, source)
        assert start is not None
        body = source_text(question, source)[:start]
        assert [facts for facts in question["required_facts"] if contains_fact(body, facts)] == []


@pytest.mark.parametrize("question", by_id(SPELLING_VARIANTS))
def test_spelling_variant_differs_from_the_sources(question: dict[str, Any]) -> None:
    sources = normalize(" ".join(source_text(question, name) for name in question["sources"]))
    used = [name for name in NAME_SPELLINGS if re.search(rf"\b{name}", question["question"])]
    assert [name for name in used if normalize(name) not in sources], used


@pytest.mark.parametrize("question", by_id(LINES))
def test_language_tag_matches_the_question(question: dict[str, Any]) -> None:
    words = re.findall(r"[a-zäöüß]+", question["question"].casefold())
    german = sum(word in GERMAN_WORDS for word in words)
    english = sum(word in ENGLISH_WORDS for word in words)
    assert (german > english) if question["lang"] == "de" else (english > german), (german, english)


@pytest.mark.parametrize("question", by_id(NEEDS_NOTES))
def test_unanswerable_and_false_premise_explain_themselves(question: dict[str, Any]) -> None:
    assert question.get("notes"), "say what the sources lack or which premise is wrong"


def test_coverage_minimums() -> None:
    by_type = Counter(q["type"] for q in QUESTIONS)
    langs_of = {t: {q["lang"] for q in QUESTIONS if q["type"] == t} for t in by_type}
    assert len(QUESTIONS) >= 64
    assert by_type["english"] >= 10
    assert by_type["unanswerable"] >= 10
    assert by_type["false-premise"] >= 5
    assert by_type["multi-doc"] >= 5
    assert by_type["follow-up"] >= 5
    assert by_type["comments"] >= 2
    assert langs_of["unanswerable"] == {"de", "en"}
    assert langs_of["false-premise"] == {"de", "en"}
    assert len(SPELLING_VARIANTS) >= 3
    assert {BY_ID[q["follows"]]["type"] for q in QUESTIONS if "follows" in q} == {"fact"}


def test_saved_web_pages_have_their_own_questions() -> None:
    """At least ten questions over the html-news pages, each naming the corpus as evals/ sees it."""
    pages = [q for q in QUESTIONS if q.get("corpus") == HTML_NEWS_CORPUS]
    assert len(pages) >= 10
    assert {q.get("corpus") for q in QUESTIONS} == {None, HTML_NEWS_CORPUS}
    assert all(source.endswith(".html") for q in pages for source in q["sources"])
    assert len({source for q in pages for source in q["sources"]}) == 8, "every page is asked about"


@pytest.mark.parametrize("seed", sorted(path.name for path in SEEDS.glob("*.txt")))
def test_every_article_has_eight_fact_questions(seed: str) -> None:
    facts = [q for q in QUESTIONS if q["type"] == "fact" and seed in q["sources"]]
    assert len(facts) >= 8
