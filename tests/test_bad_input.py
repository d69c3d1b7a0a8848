"""Bad input through the real `rag` executable: every case ends in one line, never a traceback.

Each case runs `rag` as a subprocess (PYTHONPATH set to this checkout) and checks the
exit code, that stderr is one line per problem without a traceback and, for text
that reaches the terminal, that stdout carries no ESC byte. Cases:

- documents and file names holding terminal escape sequences (search, docs, index,
  error lines, ask and chat with the tiny model);
- a damaged index (truncated chunks.jsonl, chroma.sqlite3 or BM25 files, deleted
  bm25/) for search, docs, ask and index, and its repair with --rebuild;
- a symlink loop outside the working directory, a symlink to a file outside the folder;
- `rag models list --json`; malformed lines in an `ask --batch` file;
- questions in Russian and Chinese; `rag search` while `rag index` writes;
- llama.cpp dying of SIGSEGV in the middle of `rag ask`.

The prompt side (invisible characters and chat-template tokens in passages) is tested
with the model's real tokenizer in tests/test_sanitize.py.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from conftest import PAUSED_WRITER

from rag.answering.model_pull import pull
from rag.index.layout import CURRENT_LINK
from rag.settings import Settings

if TYPE_CHECKING:
    from conftest import SeedIndex

REPO_ROOT = Path(__file__).resolve().parent.parent
RAG = str(Path(sys.executable).with_name("rag"))
TINY = "gemma-3-270m-q4_k_m"
ESC = "\x1b"
TIMEOUT = 600
# The tiny model checks plumbing, not answers: short answers and no second look keep it quick.
SHORT_ANSWERS = {"RAG_MAX_ANSWER_TOKENS": "48"}


def rag(*args: str, cwd: Path, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the real executable with this checkout's package and a private cache dir."""
    return subprocess.run(
        [RAG, *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={
            **os.environ,
            "PYTHONPATH": str(REPO_ROOT),
            "RAG_MODEL_DIR": str(Settings().model_dir),
            "XDG_CACHE_HOME": str(cwd / ".cache"),
            "COLUMNS": "200",
            **env,
        },
    )


def assert_clean(result: subprocess.CompletedProcess[str]) -> None:
    """No traceback and no escape sequence anywhere in the output."""
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output[-3000:]
    assert ESC not in output, repr(output[-3000:])


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode != 0
    assert_clean(result)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def tiny_model() -> str:
    pull(TINY, Settings().model_dir)
    return TINY


# ---------------------------------------------------------------------------
# Terminal escape sequences in documents and file names

HOSTILE_TITLE = "Kasachstan \x1b]0;gehackt\x07und Israel"
HOSTILE_BODY = (
    "Kasachstan erkannte Israel 1992 an und nahm diplomatische Beziehungen auf.\x1b[2J\x1b[H "
    "Präsident Tokajew sprach von einem \x1b]8;;http://evil.example\x1b\\historischen Schritt\x1b]8;;\x1b\\. "
    "Die Botschaft in Astana \x9b31möffnete 1996.\x07\x08 Ein Satz mit \x1bc Reset.\n"
)
HOSTILE_NAME = "Kasachstan\x1b[31m-Israel.txt"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with an article whose title, text and file name carry escape sequences, indexed."""
    work = tmp_path_factory.mktemp("hostile")
    corpus = work / "corpus"
    corpus.mkdir()
    (corpus / HOSTILE_NAME).write_text(f"{HOSTILE_TITLE}\n\n{HOSTILE_BODY}", encoding="utf-8")
    (corpus / "leer\x1b]0;x\x07.txt").write_text("")  # skipped: empty, with an escape in its name
    built = rag("index", "corpus", cwd=work)
    assert built.returncode == 0, built.stderr
    assert_clean(built)
    skipped = [line for line in built.stderr.splitlines() if line.startswith("skipped")]
    assert len(skipped) == 1 and "empty file" in skipped[0]
    return work


def test_search_shows_documents_without_escape_sequences(hostile: Path) -> None:
    found = rag("search", "Kasachstan Israel Botschaft", cwd=hostile)
    assert found.returncode == 0, found.stderr
    assert_clean(found)
    assert "historischen" in found.stdout and "Botschaft" in found.stdout
    assert "\\x07" in found.stdout  # other controls are shown escaped, not sent


def test_docs_shows_titles_and_file_names_without_escape_sequences(hostile: Path) -> None:
    listed = rag("docs", cwd=hostile)
    assert listed.returncode == 0, listed.stderr
    assert_clean(listed)
    assert "gehackt" not in listed.stdout and "Kasachstan" in listed.stdout and "Israel" in listed.stdout


def test_error_lines_show_names_without_escape_sequences(hostile: Path) -> None:
    assert_one_line_error(
        rag("index", "nirgends\x1b[2J\x1b]0;x\x07", cwd=hostile), "No such file", "nirgends"
    )
    assert_one_line_error(rag("search", "x", "--since", "2026-13-\x1b[2J01", cwd=hostile), "Invalid date")


def test_ask_and_chat_render_passages_without_escape_sequences(hostile: Path, tiny_model: str) -> None:
    answered = rag(
        "--model",
        tiny_model,
        "ask",
        "--show-passages",
        "Wann erkannte Kasachstan Israel an?",
        cwd=hostile,
        **SHORT_ANSWERS,
    )
    assert answered.returncode == 0, answered.stderr
    assert_clean(answered)
    assert "historischen" in answered.stdout

    chatted = rag(
        "--model",
        tiny_model,
        "chat",
        cwd=hostile,
        stdin="Wann erkannte Kasachstan Israel an?\n/sources 1\n",
        **SHORT_ANSWERS,
    )
    assert chatted.returncode == 0, chatted.stderr
    assert_clean(chatted)
    assert "Kasachstan-Israel.txt" in chatted.stdout  # /sources 1 names the file, minus its escape


# ---------------------------------------------------------------------------
# A damaged index


def _truncate(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


DAMAGE = {
    "truncated chunks.jsonl": lambda version: _truncate(version / "chunks.jsonl"),
    "truncated chroma.sqlite3": lambda version: _truncate(version / "chroma" / "chroma.sqlite3"),
    "truncated BM25 matrix": lambda version: _truncate(version / "bm25" / "data.csc.index.npy"),
    "truncated BM25 vocabulary": lambda version: _truncate(version / "bm25" / "vocab.index.json"),
    "deleted bm25/": lambda version: shutil.rmtree(version / "bm25"),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_index_is_one_line_for_every_command(seed_index: SeedIndex, damage: str) -> None:
    DAMAGE[damage]((seed_index.settings.index_dir / CURRENT_LINK).resolve())
    env = {"RAG_INDEX_DIR": str(seed_index.settings.index_dir)}
    for args in (["search", "Tokajew"], ["docs"], ["ask", "Wer ist Tokajew?"], ["index", "seeds"]):
        assert_one_line_error(rag(*args, cwd=seed_index.cwd, **env), "damaged", "run `rag index --rebuild`")


def test_rebuild_repairs_a_damaged_index(seed_index: SeedIndex) -> None:
    _truncate((seed_index.settings.index_dir / CURRENT_LINK).resolve() / "chunks.jsonl")
    env = {"RAG_INDEX_DIR": str(seed_index.settings.index_dir)}
    rebuilt = rag("index", "--rebuild", "--json", "seeds", cwd=seed_index.cwd, **env)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert len(json.loads(rebuilt.stdout)["added"]) == 5
    again = rag("index", "--json", "seeds", cwd=seed_index.cwd, **env)
    assert again.returncode == 0 and len(json.loads(again.stdout)["unchanged"]) == 5
    assert rag("search", "Tokajew", cwd=seed_index.cwd, **env).returncode == 0


# ---------------------------------------------------------------------------
# Symlinks


def test_symlink_loop_outside_the_working_directory_is_skipped(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "artikel.txt").write_text("Kasachstan erkannte Israel 1992 an.\n", encoding="utf-8")
    (corpus / "a.txt").symlink_to(corpus / "b.txt")
    (corpus / "b.txt").symlink_to(corpus / "a.txt")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    indexed = rag("index", str(corpus), cwd=elsewhere, RAG_INDEX_DIR=str(tmp_path / "index"))
    assert indexed.returncode == 0, indexed.stderr
    assert_clean(indexed)
    assert f"skipped {corpus / 'a.txt'}: symlink loop" in indexed.stderr
    assert "1 added" in indexed.stdout


def test_symlink_to_a_file_outside_the_folder_is_skipped_unless_followed(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "artikel.txt").write_text("Kasachstan erkannte Israel 1992 an.\n", encoding="utf-8")
    (corpus / "passwd.txt").symlink_to("/etc/passwd")
    env = {"RAG_INDEX_DIR": str(tmp_path / "index")}
    indexed = rag("index", "--json", "corpus", cwd=tmp_path, **env)
    assert indexed.returncode == 0, indexed.stderr
    report = json.loads(indexed.stdout)
    assert report["added"] == ["corpus/artikel.txt"]
    assert report["skipped"] == [
        {
            "path": "corpus/passwd.txt",
            "reason": f"symlink to /etc/passwd, outside {corpus} — pass --follow-symlinks to index it",
        }
    ]
    shown = rag("index", "corpus", cwd=tmp_path, **env)
    assert "skipped corpus/passwd.txt: symlink to /etc/passwd" in shown.stderr
    followed = rag("index", "--json", "--follow-symlinks", "corpus", cwd=tmp_path, **env)
    assert json.loads(followed.stdout)["added"] == ["corpus/passwd.txt"]


# ---------------------------------------------------------------------------
# Models, batches, languages


def test_models_list_json_is_json(tmp_path: Path) -> None:
    listed = rag("models", "list", "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    models = json.loads(listed.stdout)
    assert {model["name"] for model in models} >= {TINY} and all(isinstance(m["path"], str) for m in models)


BAD_LINES = [
    '{"question": "Wann erkannte Kasachstan Israel an?"',  # cut off
    '{"frage": "Wer ist Tokajew?"}',
    '{"question": 42}',
    '{"question": ""}',
    "Когда Казахстан установил дипломатические отношения с Израилем?",
]


def test_batch_of_bad_lines_is_reported_line_by_line_before_any_model_loads(tmp_path: Path) -> None:
    batch = tmp_path / "questions.jsonl"
    batch.write_text("\n".join(BAD_LINES) + "\n", encoding="utf-8")
    # No index and a model path that does not exist: neither may be needed to report bad lines.
    answered = rag(
        "--model", str(tmp_path / "none.gguf"), "ask", "--json", "--batch", str(batch), cwd=tmp_path
    )
    assert answered.returncode != 0
    assert_clean(answered)
    records = [json.loads(line) for line in answered.stdout.splitlines()]
    assert [record["line"] for record in records] == [1, 2, 3, 4, 5]
    assert all(record["error"] for record in records)
    assert "invalid JSON" in records[0]["error"]
    assert "'question'" in records[1]["error"] and "'question'" in records[2]["error"]
    assert "empty" in records[3]["error"] and "Russian" in records[4]["error"]
    errors = answered.stderr.strip().splitlines()
    assert len(errors) == len(BAD_LINES) + 1 and all(line.startswith("Error: ") for line in errors)
    assert errors[0].startswith(f"Error: {batch}:1: invalid JSON") and "5 of 5 questions" in errors[-1]


def test_batch_answers_the_good_lines_around_a_bad_one(
    seed_index: SeedIndex, tmp_path: Path, tiny_model: str
) -> None:
    batch = tmp_path / "questions.jsonl"
    good = "Seit wann unterhält Kasachstan Beziehungen zu Israel?"
    batch.write_text(f'{{"question": "{good}"}}\n{{"question": broken\nWer ist Tokajew?\n', encoding="utf-8")
    answered = rag(
        "--model",
        tiny_model,
        "ask",
        "--json",
        "--batch",
        str(batch),
        cwd=seed_index.cwd,
        RAG_INDEX_DIR=str(seed_index.settings.index_dir),
        **SHORT_ANSWERS,
    )
    assert answered.returncode != 0
    assert_clean(answered)
    records = [json.loads(line) for line in answered.stdout.splitlines()]
    assert [record["question"] for record in records] == [good, None, "Wer ist Tokajew?"]
    assert records[0]["passages"] and records[2]["passages"] and "answer" in records[2]
    assert records[1] == {
        "line": 2,
        "question": None,
        "error": "invalid JSON (Expecting value) — fix the line",
    }
    errors = answered.stderr.strip().splitlines()
    assert errors == [
        f"Error: {batch}:2: invalid JSON (Expecting value) — fix the line",
        "Error: 1 of 3 questions could not be answered — see the errors above",
    ]


@pytest.mark.parametrize(
    ("question", "language"),
    [
        ("Когда Казахстан установил дипломатические отношения с Израилем?", "Russian"),
        ("哈萨克斯坦何时与以色列建立外交关系？", "Chinese"),
        ("¿Cuándo estableció Kazajistán relaciones diplomáticas con Israel?", "Spanish"),
    ],
)
def test_questions_in_other_languages_are_refused_in_one_line(
    tmp_path: Path, question: str, language: str
) -> None:
    # No index and no model are needed to say so.
    refused = rag("--model", str(tmp_path / "none.gguf"), "ask", question, cwd=tmp_path)
    assert_one_line_error(refused, language, "only German and English questions are supported")
    assert refused.returncode == 2


# ---------------------------------------------------------------------------
# Concurrency and crashes


def test_search_reads_the_published_index_while_a_write_is_under_way(seed_index: SeedIndex) -> None:
    env = {"RAG_INDEX_DIR": str(seed_index.settings.index_dir)}
    marker = seed_index.cwd / "paused-mid-write"
    writer = subprocess.Popen(
        [sys.executable, "-c", PAUSED_WRITER, str(marker), "rebuild", "seeds"],
        cwd=seed_index.cwd,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        while not marker.exists():
            assert writer.poll() is None, writer.stderr.read() if writer.stderr else ""
            assert time.monotonic() < deadline, "the write never reached its middle"
            time.sleep(0.2)
        found = rag("search", "Tokajew", "--json", cwd=seed_index.cwd, **env)
        assert found.returncode == 0, found.stderr
        assert json.loads(found.stdout)["passages"]
        second_writer = rag("index", "seeds", cwd=seed_index.cwd, **env)
        assert_one_line_error(second_writer, "being written by another")
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()


def test_a_native_crash_while_answering_is_one_line_and_a_logged_trace(
    seed_index: SeedIndex, tmp_path: Path
) -> None:
    fake = tmp_path / "fake" / "llama_cpp"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("import ctypes\nctypes.string_at(0)\n")  # SIGSEGV on import
    crashed = rag(
        "ask",
        "Wer ist Tokajew?",
        cwd=seed_index.cwd,
        RAG_INDEX_DIR=str(seed_index.settings.index_dir),
        PYTHONPATH=f"{fake.parent}{os.pathsep}{REPO_ROOT}",
        XDG_CACHE_HOME=str(tmp_path / "cache"),
    )
    assert crashed.returncode == 128 + signal.SIGSEGV
    log = tmp_path / "cache" / "rag" / "crash.log"
    assert_one_line_error(crashed, "rag ask crashed in native code (SIGSEGV", "run `rag doctor`", str(log))
    trace = log.read_text(encoding="utf-8")
    assert "Fatal Python error: Segmentation fault" in trace and "llama_cpp/__init__.py" in trace
    assert "rag ask died of SIGSEGV" in trace
