"""The CLI through click's CliRunner and real subprocesses: start-up, index/search/docs, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from rag.ui.cli import cli

RAG = str(Path(sys.executable).with_name("rag"))


def _run(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RAG, *args], cwd=cwd, capture_output=True, text=True, timeout=300, env={**os.environ, **env}
    )


def test_help_is_fast_and_imports_nothing_heavy() -> None:
    code = (
        "import sys, rag.ui.cli; heavy = {'torch', 'chromadb', 'llama_cpp', 'sentence_transformers'}; "
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    started = time.perf_counter()
    result = subprocess.run([RAG, "--help"], capture_output=True, text=True, check=True)
    assert "rag index seeds/" in result.stdout
    assert time.perf_counter() - started < 5  # generous: the point is no model import


def test_config_shows_resolved_values(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["config", "--json"], env={"RAG_TOP_K": "4"})
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["top_k"] == 4


def test_an_unknown_embed_precision_is_a_one_line_error(tmp_path: Path) -> None:
    result = _run("config", cwd=tmp_path, RAG_EMBED_PRECISION="half")
    assert result.returncode != 0
    message = result.stderr.strip()
    assert "embed_precision" in message and "bfloat16" in message
    assert "\n" not in message and "Traceback" not in message


def test_index_search_docs_on_real_seeds(seed_index) -> None:  # type: ignore[no-untyped-def]
    env = {"RAG_INDEX_DIR": str(seed_index.settings.index_dir)}
    again = _run("index", "seeds", "--json", cwd=seed_index.cwd, **env)
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["chunks_embedded"] == 0 and len(summary["unchanged"]) == 5

    found = _run(
        "search",
        "Seit wann unterhält Kasachstan Beziehungen zu Israel?",
        "--json",
        "-k",
        "3",
        cwd=seed_index.cwd,
        **env,
    )
    passages = json.loads(found.stdout)["passages"]
    assert "1992" in passages[0]["text"]
    assert {"n", "source", "title", "start", "end", "text", "score", "section", "outlet", "date", "page"} <= (
        passages[0].keys()
    )

    table = _run("search", "Tokajew Trump", cwd=seed_index.cwd, **env)
    assert table.returncode == 0 and "seeds/" in table.stdout

    docs = json.loads(_run("docs", "--json", cwd=seed_index.cwd, **env).stdout)
    assert len(docs) == 5 and all(doc["chunks"] > 0 for doc in docs)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["index", "no/such/dir"], "No such file"),
        (["search", ""], "empty"),
        (["search", "x" * 100_000], "limit"),
        (["ask"], "Give either a QUESTION or --batch"),
    ],
)
def test_user_mistakes_are_one_line_errors(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "seeds").mkdir()
    result = _run(*args, cwd=tmp_path, RAG_INDEX_DIR=str(tmp_path / "index"))
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_missing_index_says_what_to_do(tmp_path: Path) -> None:
    result = _run("search", "Tokajew", cwd=tmp_path, RAG_INDEX_DIR=str(tmp_path / "index"))
    assert result.returncode != 0 and "rag index" in result.stderr and "Traceback" not in result.stderr


def test_empty_corpus_and_bad_files_are_reported(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "empty.txt").write_text("")
    (corpus / "binary.txt").write_bytes(b"\x00\x01\x02" * 100)
    result = _run("index", "corpus", cwd=tmp_path, RAG_INDEX_DIR=str(tmp_path / "index"))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") <= 4


def test_rich_markup_in_documents_is_printed_literally(tmp_path: Path, minilm) -> None:  # type: ignore[no-untyped-def]
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "markup.txt").write_text(
        "Titel [bold]fett[/bold]\n\nDer Text enthält [link=http://x]einen Link[/link] und [red]Farbe[/red].\n"
    )
    env = {"RAG_INDEX_DIR": str(tmp_path / "index")}
    assert _run("index", "corpus", cwd=tmp_path, **env).returncode == 0
    shown = _run("search", "Link Farbe", cwd=tmp_path, COLUMNS="200", **env)
    assert "[link=http://x]einen Link[/link]" in shown.stdout
    assert "[bold]fett[/bold]" in shown.stdout


def test_stale_index_asks_for_rebuild(seed_index) -> None:  # type: ignore[no-untyped-def]
    env = {"RAG_INDEX_DIR": str(seed_index.settings.index_dir), "RAG_CHUNK_TOKENS": "96"}
    result = _run("search", "Tokajew", cwd=seed_index.cwd, **env)
    assert result.returncode != 0 and "--rebuild" in result.stderr and "Traceback" not in result.stderr


def test_batch_json_answers_every_line_and_reports_bad_ones(seed_index, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from rag.answering.model_pull import pull
    from rag.settings import Settings

    pull("gemma-3-270m-q4_k_m", Settings().model_dir)  # the tiny model: this tests plumbing, not quality
    batch = tmp_path / "questions.jsonl"
    batch.write_text(
        json.dumps({"question": "Seit wann unterhält Kasachstan Beziehungen zu Israel?"})
        + "\n\n"
        + "x" * 5000
        + "\n"
    )
    env = {"RAG_INDEX_DIR": str(seed_index.settings.index_dir)}
    result = _run(
        "--model", "gemma-3-270m-q4_k_m", "ask", "--json", "--batch", str(batch), cwd=seed_index.cwd, **env
    )
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 2
    assert lines[0]["question"].startswith("Seit wann") and isinstance(lines[0]["refused"], bool)
    assert lines[0]["passages"] and lines[0]["model"]["path"].endswith("gemma-3-270m-q4_k_m.gguf")
    assert "limit" in lines[1]["error"]
    assert result.returncode != 0 and "1 of 2 questions" in result.stderr and "Traceback" not in result.stderr


def test_eval_oracle_with_retrieval_only_is_a_one_line_error(tmp_path: Path) -> None:
    questions = Path(__file__).parents[1] / "evals" / "questions.jsonl"
    result = _run("eval", "--oracle", "--retrieval-only", "--questions", str(questions), cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "choose one" in result.stderr and result.stderr.strip().count("\n") == 0
