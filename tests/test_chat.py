"""`rag chat`: slash-command parsing, the non-interactive mode, and the real REPL in a pseudo-terminal.

The terminal tests spawn `.venv/bin/rag chat` with pexpect against an index built
from the seeds, with HOME and the XDG directories inside tmp_path (so the history
file lands there) and the real model cache. The tiny Gemma model drives the fast
terminal tests; the default model runs the conversation marked slow. In-process
tests use the real index and MiniLM with a scripted stand-in for the LLM.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pexpect
import pytest
from conftest import ScriptedLLM
from rich.console import Console

from rag.answering.model_pull import pull
from rag.answering.pipeline import Pipeline
from rag.errors import InputError
from rag.settings import DEFAULT_LLM, Settings
from rag.types import SearchFilters
from rag.ui.repl import ChatSession, run_chat
from rag.ui.slash_commands import Command, parse_command, parse_filter

if TYPE_CHECKING:
    from conftest import SeedIndex

    from rag.index.embed import Embedder

REPO_ROOT = Path(__file__).resolve().parent.parent
RAG = REPO_ROOT / ".venv" / "bin" / "rag"
TINY = "gemma-3-270m-q4_k_m"
TIMEOUT = 300  # seconds per expected output; answers are slow on a shared 2-core machine

# prompt_toolkit turns bracketed paste on right before it draws a fresh prompt and off when
# a line is accepted, so these mark "ready for input" and "input taken" unambiguously.
READY = r"\x1b\[\?2004h(?:\x1b\[[0-9;?]*[A-Za-z])*rag›"
ACCEPTED = r"\x1b\[\?2004l"
FIRST_TOKEN = r"\r\x1b\[2K\x1b\[2m(?!searching)\S"  # the live area shows streamed text, not the spinner
FOLLOW_UP_LINE = r"\x1b\[2;3m↳ read with: ([^\x1b]+)\x1b\[0m"  # dim italic


# ---------------------------------------------------------------------------
# Parsing


def test_questions_are_not_commands() -> None:
    assert parse_command("Wer ist Tokajew?") is None
    assert parse_command("  Was kostet das? /k 3") is None


def test_commands_are_split_shell_style() -> None:
    assert parse_command("/k 3") == Command("k", ("3",))
    assert parse_command("  /SOURCES 2 ") == Command("sources", ("2",))
    assert parse_command('/save "mein chat.md"') == Command("save", ("mein chat.md",))
    assert parse_command("/filter outlet=taz since=2025-01-01") == Command(
        "filter", ("outlet=taz", "since=2025-01-01")
    )
    assert parse_command("/quit") == Command("exit")
    assert parse_command("/") == Command("")


def test_unbalanced_quote_is_a_one_line_input_error() -> None:
    with pytest.raises(InputError, match="close the quote"):
        parse_command('/save "chat.md')


def test_filter_arguments_update_and_clear() -> None:
    start = SearchFilters(include_comments=True)
    changed = parse_filter(
        ("outlet=Tichys Einblick", "since=2022-01-01", "source=a.txt", "source=b.txt"), start
    )
    assert changed == SearchFilters(
        sources=("a.txt", "b.txt"), outlet="Tichys Einblick", date_from="2022-01-01", include_comments=True
    )
    assert parse_filter(("until=2023-12-31",), changed).date_to == "2023-12-31"
    assert parse_filter(("clear",), changed) == SearchFilters(include_comments=True)
    for bad in (("outlet",), ("colour=red",), ("since=gestern",), ("source=",)):
        with pytest.raises(InputError):
            parse_filter(bad, start)


# ---------------------------------------------------------------------------
# In process: real index and MiniLM, a scripted LLM


@pytest.fixture
def scripted(
    seed_index: SeedIndex, minilm: Embedder, multilingual: Embedder, monkeypatch: pytest.MonkeyPatch
) -> Pipeline:
    monkeypatch.chdir(seed_index.cwd)
    llm = ScriptedLLM()
    return Pipeline(
        seed_index.settings, embedder=minilm, multilingual=multilingual, llm=llm, cwd=seed_index.cwd
    )  # type: ignore[arg-type]


def _lines(*lines: str) -> io.StringIO:
    return io.StringIO("".join(line + "\n" for line in lines))


def test_piped_questions_give_jsonl_with_history(
    scripted: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run_chat(
        scripted,
        as_json=True,
        stdin=_lines("Wer ist der Präsident von Kasachstan?", "", "Warum war er in Moskau?"),
    )
    out, err = capsys.readouterr()
    records = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and err == ""
    assert [r["question"] for r in records] == [
        "Wer ist der Präsident von Kasachstan?",
        "Warum war er in Moskau?",
    ]
    first, second = records
    assert first["previous_question"] is None
    assert (
        second["previous_question"] == "Wer ist der Präsident von Kasachstan?"
    )  # read with it, not rewritten
    llm = scripted.llm
    assert isinstance(llm, ScriptedLLM)
    assert "(Vorherige Frage: Wer ist der Präsident von Kasachstan?)" in llm.calls[-1][-1]["content"]
    for record in records:
        assert not record["refused"] and record["citations"], record
        assert set(record) >= {
            "answer",
            "citations",
            "passages",
            "model",
            "timings_ms",
            "tokens",
            "interrupted",
        }
        cited = record["citations"][0]
        assert cited["source"] == record["passages"][cited["n"] - 1]["source"]
        assert cited["quote"] in record["evidence"][0]["text"]  # the quote, inside what the model read


def test_piped_errors_are_one_line_and_the_rest_is_answered(
    scripted: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run_chat(
        scripted, stdin=_lines("x" * 100_000, "[bold]Tokajew[/bold] und Trump?", "/k 99", "/nope")
    )
    out, err = capsys.readouterr()
    assert code == 1
    first_error, second_error = err.splitlines()
    assert first_error.startswith("Error: The question is 100,000 characters") and "shorten it" in first_error
    assert second_error == "Error: write /k N with a number from 1 to 20"
    assert "[bold]Tokajew[/bold] und Trump?" in out  # printed literally, not as markup
    assert "Sources" in out
    assert "Unknown command /nope — type /help for the list." in out


def test_save_writes_markdown_with_citations(
    scripted: Pipeline, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "chat log.md"
    run_chat(scripted, stdin=_lines("Wer ist Tokajew?", "Was macht er?", f'/save "{target}"'))
    markdown = target.read_text(encoding="utf-8")
    assert markdown.startswith("# rag chat, ")
    assert "## 1. Wer ist Tokajew?" in markdown and "## 2. Was macht er?" in markdown
    assert "*Read with:* Wer ist Tokajew?" in markdown
    assert markdown.count("Sources:") == 2
    assert re.search(r"^- \[1\] .+ — `seeds/\d{3}_[0-9a-f]+\.txt`, characters \d+–\d+: “.+”$", markdown, re.M)
    assert "Saved 2 turn(s)" in capsys.readouterr().out


def test_commands_change_the_next_search(scripted: Pipeline, capsys: pytest.CaptureFixture[str]) -> None:
    chat = ChatSession(scripted, Console(highlight=False))
    chat.run_line("/sources", stream=False)
    assert "No answer yet" in capsys.readouterr().out
    chat.run_line("/k 2", stream=False)
    chat.run_line("/filter source=002_80bd9b1924e3081e.txt", stream=False)
    result = chat.answer("Wer ist der Präsident von Kasachstan?", stream=False)
    assert len(result.passages) <= 2
    assert {p.source for p in result.passages} == {"seeds/002_80bd9b1924e3081e.txt"}
    with pytest.raises(InputError, match=r"no indexed document is 'nirgends\.txt'"):
        chat.run_line("/filter source=nirgends.txt", stream=False)
    with pytest.raises(InputError, match="outlet"):
        chat.run_line("/filter outlet=Gibtsnicht", stream=False)
    chat.run_line("/comments on", stream=False)
    assert chat.filters.include_comments and chat.filters.sources == ("002_80bd9b1924e3081e.txt",)
    chat.run_line("/reset", stream=False)
    assert chat.history == [] and chat.last is None
    assert chat.run_line("/exit", stream=False) is False


# ---------------------------------------------------------------------------
# The real program in a pseudo-terminal


@pytest.fixture(scope="module")
def model_dir() -> Path:
    return Settings().model_dir


@pytest.fixture(scope="module")
def chat_dir(seed_index_template: SeedIndex, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the seed index (the session's template must stay untouched)."""
    work = tmp_path_factory.mktemp("chat") / "work"
    shutil.copytree(seed_index_template.cwd, work, symlinks=True)
    return work


def chat_env(work: Path, model: str, model_dir: Path) -> dict[str, str]:
    home = work.parent / "home"
    env = {key: value for key, value in os.environ.items() if not key.startswith("RAG_")}
    env.update(
        HOME=str(home),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_CONFIG_HOME=str(home / ".config"),
        RAG_INDEX_DIR=str(work / "index"),
        RAG_MODEL=model,
        RAG_MODEL_DIR=str(model_dir),
        HF_HUB_OFFLINE="1",
        PROMPT_TOOLKIT_NO_CPR="1",  # pexpect does not answer cursor-position requests
        TERM="xterm-256color",
    )
    return env


def spawn_chat(work: Path, model: str, model_dir: Path, *args: str) -> pexpect.spawn:
    child = pexpect.spawn(
        str(RAG),
        ["chat", *args],
        env=chat_env(work, model, model_dir),
        cwd=str(work),
        dimensions=(50, 200),
        encoding="utf-8",
        timeout=TIMEOUT,
        # A terminal user's Ctrl-C, even when the test run itself was started in the
        # background (where the shell hands down SIGINT ignored).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    child.expect(READY)
    return child


def plain(terminal_output: str) -> str:
    """The text of terminal output with escape sequences removed (for messages and searches)."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", terminal_output)


def send_line(child: pexpect.spawn, text: str) -> None:
    """Type `text` and Enter, and wait until the prompt has taken the line."""
    child.send(text + "\r")
    child.expect(ACCEPTED)


def run_command(child: pexpect.spawn, text: str) -> str:
    """Send a command and return everything it printed before the next prompt."""
    send_line(child, text)
    child.expect(READY)
    return str(child.before)


@pytest.fixture(scope="module")
def tiny_model(model_dir: Path) -> str:
    pull(TINY, model_dir)  # a no-op when the verified file is already in the cache
    return TINY


def test_terminal_session_with_the_tiny_model(chat_dir: Path, model_dir: Path, tiny_model: str) -> None:
    child = spawn_chat(chat_dir, tiny_model, model_dir)
    banner = str(child.before)
    assert f"index: {chat_dir / 'index'} · 5 documents" in banner
    assert f"model: {TINY} ({model_dir / 'gemma-3-270m-q4_k_m.gguf'})" in banner
    assert "Esc+Enter or a trailing \\ continues" in banner

    help_text = run_command(child, "/help")
    assert "/sources [n]" in help_text and "/save FILE" in help_text and "Esc+Enter" in help_text
    assert "Unknown command /[bold]x[/bold] — type /help" in run_command(child, "/[bold]x[/bold]")
    assert "number from 1 to 20" in run_command(child, "/k 0")
    assert "No answer yet" in run_command(child, "/sources")

    child.send("/k \\\r")  # a trailing backslash continues the input on a new line
    assert "k = 3 passages" in run_command(child, "3")
    child.send("/k\x1b\r")  # so does Esc+Enter
    assert "k = 4 passages" in run_command(child, "4")
    child.send("/comments on")
    child.sendcontrol("c")  # Ctrl-C on a typed line clears it and keeps the session
    assert "filters: comments=off" in run_command(child, "/filter")

    # Ctrl-C during an answer is tested with the real model (slow tests): the tiny model
    # can finish its answer before the interrupt arrives, which would make this racy.
    assert "gemma-3-270m-q4_k_m.gguf" in run_command(child, "/model")
    assert "no indexed document is 'x.txt'" in run_command(child, "/filter source=x.txt")

    child.sendcontrol("d")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    history = (chat_dir.parent / "home" / ".local" / "share" / "rag" / "chat_history").read_text(
        encoding="utf-8"
    )
    assert "+/filter source=x.txt" in history and "+/k \n+3" in history


def test_ctrl_c_at_an_empty_prompt_exits_and_history_file_is_overridable(
    chat_dir: Path, model_dir: Path, tiny_model: str, tmp_path: Path
) -> None:
    history = tmp_path / "elsewhere" / "questions.txt"
    child = spawn_chat(chat_dir, tiny_model, model_dir, "--history-file", str(history))
    run_command(child, "/k 4")
    child.sendcontrol("c")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert "+/k 4" in history.read_text(encoding="utf-8")


def test_piped_questions_with_the_tiny_model(chat_dir: Path, model_dir: Path, tiny_model: str) -> None:
    finished = subprocess.run(
        [str(RAG), "chat", "--json", "-k", "2"],
        input="Wer ist der Präsident von Kasachstan?\nWann besuchte er Moskau?\n",
        capture_output=True,
        text=True,
        env=chat_env(chat_dir, tiny_model, model_dir),
        cwd=chat_dir,
        timeout=2 * TIMEOUT,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    records = [json.loads(line) for line in finished.stdout.splitlines()]
    assert [r["question"] for r in records] == [
        "Wer ist der Präsident von Kasachstan?",
        "Wann besuchte er Moskau?",
    ]
    assert records[0]["previous_question"] is None
    assert records[1]["previous_question"] == records[0]["question"]  # "er" refers back
    for record in records:
        assert record["model"]["path"].endswith("gemma-3-270m-q4_k_m.gguf")
        assert record["passages"] and not record["interrupted"]


# ---------------------------------------------------------------------------
# The default model, as a user would see it


@pytest.fixture(scope="module")
def conversation(chat_dir: Path, model_dir: Path) -> Iterator[pexpect.spawn]:
    """One `rag chat` with the default model, shared by the ordered tests below."""
    pull(DEFAULT_LLM, model_dir)
    child = spawn_chat(chat_dir, DEFAULT_LLM, model_dir)
    yield child
    if child.isalive():
        child.terminate(force=True)


@pytest.mark.slow
def test_question_streams_an_answer_with_sources(conversation: pexpect.spawn) -> None:
    send_line(conversation, "Wo studierte Tokajew?")
    conversation.expect(FIRST_TOKEN)
    conversation.expect(READY)
    shown = plain(str(conversation.before))
    assert "MGIMO" in shown and "Sources" in shown and "seeds/003_" in shown, shown[-2000:]


@pytest.mark.slow
def test_sources_lists_passages_and_shows_one_in_full(conversation: pexpect.spawn) -> None:
    listing = run_command(conversation, "/sources")
    assert "Passages of the last answer" in listing
    assert len(re.findall(r"seeds/\d{3}_", listing)) >= 2
    one = run_command(conversation, "/sources 1")
    assert re.search(r"\[1\] .+\r\n.*seeds/\d{3}_[0-9a-f]+\.txt · characters \d+–\d+", one)
    assert "number from 1 to" in run_command(conversation, "/sources 99")


@pytest.mark.slow
def test_followup_is_read_with_its_question_and_ctrl_c_stops_its_answer(conversation: pexpect.spawn) -> None:
    send_line(conversation, "Und wie lange dauerte sein Staatsbesuch in Moskau?")
    conversation.expect(FOLLOW_UP_LINE)
    assert conversation.match.group(1) == "Wo studierte Tokajew?"
    conversation.expect(FIRST_TOKEN)
    conversation.sendcontrol("c")
    conversation.expect(r"\(interrupted\)")
    conversation.expect(READY)
    assert "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf" in run_command(conversation, "/model")


@pytest.mark.slow
def test_exit_command_ends_the_session(conversation: pexpect.spawn) -> None:
    send_line(conversation, "/exit")
    conversation.expect(pexpect.EOF)
    conversation.close()
    assert conversation.exitstatus == 0
