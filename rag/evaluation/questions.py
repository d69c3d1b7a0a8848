"""The question set of `rag eval`: loading it, checking every line, and the shape of one question.

- Loading validates each line of the question set against its JSON Schema and names
  the bad line; ids must be unique and a follow-up must follow an earlier question.
- A question may name a `corpus`: a folder (relative to the questions file) that is
  indexed into an index of its own and searched for that question alone
  (`rag.evaluation.corpora`).

Left out: running the questions (`rag.evaluation.run`) and scoring them
(`rag.evaluation.scoring`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.errors import EvalError
from rag.text.language import Language

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator

QUESTION_TYPES = ("fact", "multi-doc", "english", "unanswerable", "false-premise", "follow-up", "comments")
LANGUAGES = ("de", "en")


@dataclass(frozen=True)
class Span:
    """A span read back from JSON (a passage of a results file)."""

    source: str
    start: int
    end: int
    text: str = ""
    context: str = ""  # the article's title and outlet, which back "according to <outlet>"


@dataclass(frozen=True)
class Question:
    """One validated line of the question set."""

    id: str
    question: str
    lang: Language  # the schema allows only the languages the tool answers in
    answerable: bool
    type: str
    sources: tuple[str, ...]
    evidence: tuple[Span, ...]
    required_facts: tuple[tuple[str, ...], ...]
    follows: str | None = None
    include_comments: bool = False
    notes: str | None = None
    corpus: str | None = None  # a folder relative to the questions file; None: the given index

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Question:
        return cls(
            id=data["id"],
            question=data["question"],
            lang=data["lang"],
            answerable=data["answerable"],
            type=data["type"],
            sources=tuple(data["sources"]),
            evidence=tuple(Span(e["source"], e["start"], e["end"], e["text"]) for e in data["evidence"]),
            required_facts=tuple(tuple(alternatives) for alternatives in data["required_facts"]),
            follows=data.get("follows"),
            include_comments=bool(data.get("include_comments", False)),
            notes=data.get("notes"),
            corpus=data.get("corpus"),
        )

    def gold_json(self) -> dict[str, Any]:
        """The gold fields as stored in results.jsonl."""
        return {
            "sources": list(self.sources),
            "evidence": [
                {"source": e.source, "start": e.start, "end": e.end, "text": e.text} for e in self.evidence
            ],
            "required_facts": [list(fact) for fact in self.required_facts],
            "follows": self.follows,
            "include_comments": self.include_comments,
            "notes": self.notes,
            "corpus": self.corpus,
        }


@dataclass(frozen=True)
class QuestionSet:
    """The validated questions of one file, with the file's hash for the run record."""

    path: Path
    sha256: str
    questions: tuple[Question, ...]


def schema_path() -> Path:
    """The packaged `rag/data/questions.schema.json` in a wheel, else the repo's `evals/` copy."""
    import rag

    package_dir = Path(rag.__file__).parent
    packaged = package_dir / "data" / "questions.schema.json"
    return packaged if packaged.is_file() else package_dir.parent / "evals" / "questions.schema.json"


def load_questions(path: Path) -> QuestionSet:
    """Read and validate a question set; any bad line is an EvalError naming file and line."""
    from jsonschema import Draft202012Validator

    try:
        raw = path.read_bytes()
        lines = raw.decode("utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise EvalError(
            f"Cannot read {path}: {error} — pass --questions FILE with one JSON object per line"
        ) from error
    validator = Draft202012Validator(json.loads(schema_path().read_text(encoding="utf-8")))
    questions: list[Question] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        question = _parse_line(line, where, validator)
        if question.id in seen:
            raise EvalError(f"{where}: duplicate id {question.id!r} — give every question its own id")
        if question.follows is not None and question.follows not in seen:
            raise EvalError(
                f"{where}: follows {question.follows!r}, which is not an earlier question — reorder"
            )
        seen.add(question.id)
        questions.append(question)
    if not questions:
        raise EvalError(f"{path} holds no questions — add one JSON object per line")
    return QuestionSet(path=path, sha256=hashlib.sha256(raw).hexdigest(), questions=tuple(questions))


def _parse_line(line: str, where: str, validator: Draft202012Validator) -> Question:
    """One line as a question, once it is JSON that the schema accepts; `where` names it in errors."""
    from jsonschema.exceptions import best_match

    try:
        data = json.loads(line)
    except json.JSONDecodeError as error:
        raise EvalError(f"{where}: invalid JSON ({error.msg}) — fix that line") from error
    problem = best_match(validator.iter_errors(data))
    if problem is not None:
        location = "" if problem.json_path == "$" else f"{problem.json_path}: "
        raise EvalError(f"{where}: {location}{problem.message} — fix that line")
    return Question.from_json(data)
