"""Hybrid retrieval: fusion and merging as pure logic, then searches on the real seed index."""

from __future__ import annotations

import numpy as np
import pytest

from rag.answering.pipeline import Pipeline
from rag.errors import InputError
from rag.retrieval import retrieve
from rag.retrieval.names import named_documents, without_document_names
from rag.retrieval.retrieve import check_query, fuse_scores, merge_hits, standardize
from rag.types import Chunk, SearchFilters


def _chunk(chunk_id: str, start: int, end: int, text: str, source: str = "a.txt") -> Chunk:
    return Chunk(
        id=chunk_id,
        source=source,
        start=start,
        end=end,
        text=text,
        section="body",
        ordinal=start,
        doc_sha256="x",
        title="t",
    )


def test_standardize_and_fuse() -> None:
    assert standardize(np.array([2.0, 2.0])).tolist() == [0.0, 0.0]
    keyword = np.array([10.0, 1.0, 0.0])  # a confident keyword winner
    dense = np.array([0.30, 0.35, 0.32])  # a weak dense preference elsewhere
    fused = fuse_scores([keyword, dense], [1.0, 0.5])
    assert int(np.argmax(fused)) == 0


def test_merge_joins_overlapping_chunks_of_one_document_with_exact_text() -> None:
    document = "Satz eins. Satz zwei. Satz drei."
    first = _chunk("1", 0, 21, document[0:21])
    second = _chunk("2", 11, 32, document[11:32])
    elsewhere = _chunk("3", 0, 5, "Other", source="b.txt")
    passages = merge_hits([(first, 3.0), (elsewhere, 2.0), (second, 1.0)], k=5)
    assert [(p.source, p.start, p.end) for p in passages] == [("a.txt", 0, 32), ("b.txt", 0, 5)]
    assert passages[0].text == document
    assert passages[0].score == 3.0


def test_merge_stops_at_k_passages() -> None:
    hits = [(_chunk(str(i), i * 100, i * 100 + 10, "x" * 10), 1.0) for i in range(5)]
    assert len(merge_hits(hits, k=2)) == 2


def test_named_documents_by_quoted_title_outlet_or_author() -> None:
    def doc(title: str, outlet: str | None = None, author: str | None = None) -> Chunk:
        return Chunk("c", "x", 0, 1, "x", "body", 0, "x", title, outlet=outlet, author=author)

    documents = {
        "a.txt": doc(
            "Machtkampf um Zentralasien: Putin lässt Trump nicht das Feld", outlet="Kettner Edelmetalle"
        ),
        "b.txt": doc("Kasachstans Präsident übertreibt es", author="Andrew Korybko"),
        "c.txt": doc("Zwei Jahre nach Beginn des Krieges", outlet="Novastan"),
    }
    assert named_documents("Was steht im Artikel „Machtkampf um Zentralasien“?", documents) == {"a.txt"}
    assert named_documents("Warum reiste Vance laut Korybkos Analyse?", documents) == {"b.txt"}
    assert named_documents("According to Novastan, who?", documents) == {"c.txt"}
    assert named_documents("Wer ist Tokajew? „Kasachstan“", documents) == set()  # a quote that is no title
    assert named_documents("Was ist ein Novastanist?", documents) == set()  # names match whole words only
    assert named_documents("Wer schrieb den Novastan-Artikel?", documents) == {"c.txt"}  # hyphens fold


def test_without_document_names_cuts_the_name_and_its_frame() -> None:
    title = "Machtkampf um Zentralasien"
    documents = {"a.txt": Chunk("c", "x", 0, 1, "x", "body", 0, "x", title, outlet="Tichys Einblick")}
    question = f"Wie nannte Putin laut dem Artikel „{title}“ den Besuch?"
    assert without_document_names(question, documents) == "wie nannte putin den besuch?"
    assert without_document_names("Wo entstand das Foto im Tichys-Einblick-Artikel?", documents) == (
        "wo entstand das foto ?"
    )
    assert without_document_names("Wer ist Tokajew?", documents) == "wer ist tokajew?"


def test_the_question_minus_the_article_name_finds_the_answer_in_that_article(pipeline: Pipeline) -> None:
    # The photo caption of the Tichys Einblick article; the hyphenated outlet name picks the
    # article, and the rest of the question ("Foto", "aufgenommen") picks the caption.
    question = (
        "Wann und wo wurde das Foto von Putin und Tokajew aufgenommen, "
        "das den Tichys-Einblick-Artikel bebildert?"
    )
    rank = _first_hit(pipeline, question, "St. Petersburg, 17. Juni 2022")
    assert rank is not None and rank <= 3


@pytest.mark.parametrize("query", ["", "   ", "x" * 100_000])
def test_bad_queries_are_one_line_errors(query: str) -> None:
    with pytest.raises(InputError) as error:
        check_query(query)
    assert "\n" not in str(error.value)


@pytest.fixture
def pipeline(seed_index, minilm) -> Pipeline:  # type: ignore[no-untyped-def]
    return Pipeline(seed_index.settings, embedder=minilm, cwd=seed_index.cwd)


def _first_hit(pipeline: Pipeline, question: str, needle: str, **kwargs: object) -> int | None:
    passages = pipeline.search(question, k=5, **kwargs)  # type: ignore[arg-type]
    return next((rank for rank, p in enumerate(passages, 1) if needle in p.text), None)


def test_german_question_finds_the_answer_first(pipeline: Pipeline) -> None:
    assert _first_hit(pipeline, "Seit wann unterhält Kasachstan Beziehungen zu Israel?", "seit 1992") == 1


def test_other_spelling_of_a_name_finds_the_answer(pipeline: Pipeline) -> None:
    rank = _first_hit(pipeline, "Welchen Preis schlug Toqaev zu Ehren von Trump vor?", "Friedenspreis")
    assert rank is not None and rank <= 2


def test_translated_expansion_lifts_an_english_question(pipeline: Pipeline) -> None:
    question = "Which prize did Tokayev propose in honour of Trump?"
    translation = "Welchen Preis schlug Tokajew zu Ehren Trumps vor?"  # what `rag ask` gets from the model
    assert _first_hit(pipeline, question, "Friedenspreis", expansions=[translation]) == 1


@pytest.mark.parametrize(
    ("question", "needle"),
    [
        ("How does Kazakhstan conduct its foreign relations since the war in Ukraine?", "multivektorale"),
        ("Which country was bombed twice last year?", "bombardiert"),
    ],
)
def test_multilingual_side_finds_german_text_for_an_english_question(
    pipeline: Pipeline, question: str, needle: str
) -> None:
    """No translation and hardly a shared word: only the multilingual encoder links the two."""
    assert _first_hit(pipeline, question, needle) is not None
    pipeline.settings = pipeline.settings.with_overrides(multilingual_weight=0)
    pipeline.close()
    assert _first_hit(pipeline, question, needle) is None


def test_a_named_title_does_not_lift_the_title_passage_that_only_repeats_it(pipeline: Pipeline) -> None:
    question = "Was schreibt der Artikel „Machtkampf um Zentralasien“ über die Freundschaft?"
    source = "seeds/003_b905e0af55adc2a7.txt"
    top = pipeline.search(question, k=3)
    assert top[0].source == source and "Freundschaft" in top[0].text
    title_chunk = pipeline.reader.chunks_by_source[source][0]
    assert all(not (p.source == source and p.start <= title_chunk.start < p.end) for p in top)


def test_a_named_outlet_lifts_its_articles(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    question = "Was schreibt Novastan über Tokajew?"
    assert pipeline.search(question, k=1)[0].source == "seeds/001_33aa229a75a9783d.txt"
    monkeypatch.setattr(retrieve, "DOCUMENT_HINT_BONUS", 0.0)
    assert pipeline.search(question, k=1)[0].source != "seeds/001_33aa229a75a9783d.txt"


def test_passage_spans_are_exact(pipeline: Pipeline, seed_index) -> None:  # type: ignore[no-untyped-def]
    from rag.ingest.read import read_source

    for passage in pipeline.search("Tokajew Putin Moskau", k=5):
        original = read_source(passage.source, seed_index.cwd, max_bytes=10_000_000).text
        assert original[passage.start : passage.end] == passage.text


def test_filters_restrict_sources_and_sections(pipeline: Pipeline) -> None:
    only = pipeline.search("Tokajew", k=5, filters=SearchFilters(sources=("001_33aa229a75a9783d.txt",)))
    assert only and {p.source for p in only} == {"seeds/001_33aa229a75a9783d.txt"}
    body = pipeline.search("Kommentar Leser China Firmen", k=10)
    assert all(p.section == "body" for p in body)
    with_comments = pipeline.search(
        "Kommentar Leser China Firmen", k=10, filters=SearchFilters(include_comments=True)
    )
    assert any(p.section == "comments" for p in with_comments)
    assert pipeline.search("Tokajew", k=5, filters=SearchFilters(outlet="Novastan"))
    assert not pipeline.search("Tokajew", k=5, filters=SearchFilters(date_from="2030-01-01"))


SEARCH_IN_A_NEW_PROCESS = """
import json, sys
from pathlib import Path
from rag.answering.pipeline import Pipeline
from rag.settings import Settings
pipeline = Pipeline(Settings(index_dir=Path(sys.argv[1])), cwd=Path(sys.argv[2]))
pipeline.retriever.open()
passages = pipeline.search(sys.argv[3])
heavy = [name for name in ("torch", "sentence_transformers", "transformers") if name in sys.modules]
print(json.dumps({"sources": [p.source for p in passages], "heavy": heavy}))
"""


def test_a_new_process_searches_without_torch_and_finds_what_the_indexing_encoder_finds(
    seed_index_template, minilm, multilingual
) -> None:  # type: ignore[no-untyped-def]
    import json
    import subprocess
    import sys

    question = "Seit wann unterhält Kasachstan diplomatische Beziehungen zu Israel?"
    settings = seed_index_template.settings
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            SEARCH_IN_A_NEW_PROCESS,
            str(settings.index_dir),
            str(seed_index_template.cwd),
            question,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["heavy"] == []
    in_process = Pipeline(settings, embedder=minilm, multilingual=multilingual, cwd=seed_index_template.cwd)
    assert found["sources"] == [p.source for p in in_process.search(question)]
