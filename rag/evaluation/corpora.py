"""Question corpora: the folders some questions are asked about instead of the given index.

A question may name a `corpus`: a folder (relative to the questions file) that is
indexed into an index of its own beside the given one (`<index_dir>-<folder name>`,
incrementally) and searched for that question alone. That index belongs to the run:
when it was built with other settings, it is rebuilt rather than reported stale, as no
command of the user's could rebuild it. When the folder is absent (a
corpus kept outside the repository), its questions are skipped and the run records
how many and why.

Left out: indexing itself (`rag.answering.pipeline.Pipeline.index`) and the run that
uses the pipelines opened here (`rag.evaluation.run`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rag.errors import EvalError, StaleIndexError
from rag.evaluation.questions import Question

if TYPE_CHECKING:
    from rag.answering.pipeline import Pipeline

# (stage, done, total), e.g. ("retrieving", 10, 108)
ProgressCallback = Callable[[str, int, int], None]


def without_absent_corpora(
    questions: Sequence[Question], questions_path: Path
) -> tuple[list[Question], dict[str, int]]:
    """The questions whose corpus folder exists (or that need none), and how many each absent one cost."""
    absent = {q.corpus for q in questions if q.corpus and not (questions_path.parent / q.corpus).is_dir()}
    skipped = Counter(q.corpus for q in questions if q.corpus in absent)
    kept = [question for question in questions if question.corpus not in absent]
    if questions and not kept:
        names = ", ".join(sorted(f"{questions_path.parent / corpus}" for corpus in absent))
        raise EvalError(
            f"Every selected question needs an absent corpus ({names}) — add it or change --limit"
        )
    return kept, {str(corpus): count for corpus, count in sorted(skipped.items())}


def corpus_index_dir(index_dir: Path, folder: Path) -> Path:
    """Where a question corpus is indexed: beside the main index, e.g. `index-html-news/`."""
    return index_dir.with_name(f"{index_dir.name}-{folder.resolve().name}")


def open_corpora(
    pipeline: Pipeline, corpora: set[str], questions_path: Path, on_progress: ProgressCallback | None
) -> dict[str, Pipeline]:
    """A pipeline per corpus folder on the shared models, its index brought up to date first."""
    opened: dict[str, Pipeline] = {}
    for corpus in sorted(corpora):
        folder = questions_path.parent / corpus
        index_dir = corpus_index_dir(Path(pipeline.settings.index_dir), folder)
        other = pipeline.sharing_models(pipeline.settings.with_overrides(index_dir=index_dir))
        try:
            other.index([folder], on_progress=on_progress)
        except StaleIndexError:
            other.index([folder], rebuild=True, on_progress=on_progress)
        opened[corpus] = other
    return opened
