"""The index on a real Chroma server and the model behind a real OpenAI-compatible server.

Each module run starts `chroma run` and `python -m llama_cpp.server` (with the small
gemma-3-270m GGUF, pulled by `rag models pull` if missing) on free loopback ports and
stops them at the end. Search through the server must equal embedded search; a
second machine (another index directory) reads the same index; two `rag index`
processes at once neither corrupt nor duplicate; unreachable servers and a server
killed mid-answer give one line through the real `rag` executable.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import PAUSED_WRITER

from rag.answering.llm_client import estimate_tokens
from rag.answering.pipeline import Pipeline
from rag.answering.server_events import StopScanner
from rag.errors import ServerError, StaleIndexError
from rag.index.reader import open_index
from rag.index.update import update_index
from rag.settings import Settings

REPO_ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SMALL_MODEL = "gemma-3-270m-q4_k_m"
QUERIES = ["Tokajew Abraham-Abkommen", "Wann erkannte Kasachstan Israel an?", "Lawrow Moskau"]
QUESTION = "Seit wann unterhält Kasachstan diplomatische Beziehungen zu Israel?"
START_SECONDS = 60.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    """A server process on loopback, its URL and its log file."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _start(command: list[str], url: str, ready_path: str, log: Path) -> Server:
    """Start `command`, and wait until GET url+ready_path answers 200 (or fail with its log)."""
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=_env())
    server = Server(process, url, log)
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{command[0]} exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            if httpx.get(url + ready_path, timeout=1.0).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    server.stop()
    pytest.fail(f"{command[0]} did not start within {START_SECONDS:.0f} s: {log.read_text(errors='replace')}")


def _env(**extra: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("RAG_")}
    if "RAG_MODEL_DIR" in os.environ:
        env["RAG_MODEL_DIR"] = os.environ["RAG_MODEL_DIR"]
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        ANONYMIZED_TELEMETRY="False",
        PYTHONPATH=str(REPO_ROOT),
        **extra,
    )
    return env


def start_chroma(directory: Path) -> Server:
    port = _free_port()
    command = [str(BIN / "chroma"), "run", "--path", str(directory / "data"), "--port", str(port)]
    return _start(command, f"http://127.0.0.1:{port}", "/api/v2/heartbeat", directory / "chroma.log")


def start_llama_server(directory: Path, model: Path, *extra: str) -> Server:
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "4096",
        "--n_threads",
        "2",
        "--chat_format",
        "chatml",  # what the in-process LocalLLM uses for this GGUF, which has no template
        *extra,
    ]
    return _start(command, f"http://127.0.0.1:{port}/v1", "/models", directory / f"llama-{port}.log")


@pytest.fixture(scope="module")
def chroma(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_chroma(tmp_path_factory.mktemp("chroma"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def small_model() -> Path:
    from rag.answering.model_pull import pull

    return pull(SMALL_MODEL, Settings().model_dir)


@pytest.fixture(scope="module")
def llm_server(tmp_path_factory: pytest.TempPathFactory, small_model: Path) -> Iterator[Server]:
    # Answering reads the refusal odds, which llama_cpp.server returns only with logits_all.
    server = start_llama_server(tmp_path_factory.mktemp("llm"), small_model, "--logits_all", "true")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def served_seeds(seed_index_template: Any, chroma: Server, minilm: Any, multilingual: Any) -> Settings:
    """The seeds indexed into the Chroma server from the seed template's directory (same sources)."""
    settings = seed_index_template.settings.with_overrides(
        chroma_url=chroma.url, index_dir=seed_index_template.cwd / "index-server"
    )
    update_index(
        settings,
        [Path("seeds")],
        lambda: minilm,
        cwd=seed_index_template.cwd,
        multilingual=lambda: multilingual,
    )
    return settings


def _passages(settings: Settings, cwd: Path, minilm: Any, multilingual: Any) -> list[list[tuple[str, int]]]:
    pipeline = Pipeline(settings, embedder=minilm, multilingual=multilingual, cwd=cwd)
    try:
        return [[(p.source, p.start) for p in pipeline.search(query, k=5)] for query in QUERIES]
    finally:
        pipeline.close()


def _rag(*args: str, cwd: Path, timeout: float = 300, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "rag"), *args], cwd=cwd, env=_env(**env), capture_output=True, text=True, timeout=timeout
    )


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


def _vector_ids(chroma: Server, prefix: str) -> dict[str, list[str]]:
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    port = int(chroma.url.rsplit(":", 1)[1])
    client = chromadb.HttpClient(
        host="127.0.0.1", port=port, settings=ChromaSettings(anonymized_telemetry=False)
    )
    found = {}
    for collection in client.list_collections():
        if collection.name.startswith(prefix + "-") and collection.name.endswith(("chunks", "multilingual")):
            found[collection.name] = collection.get(include=[])["ids"]
    return found


def _copy_seeds(target: Path, count: int | None = None) -> None:
    target.mkdir(parents=True)
    for seed in sorted((REPO_ROOT / "seeds").glob("*.txt"))[:count]:
        (target / seed.name).write_bytes(seed.read_bytes())


# ---------------------------------------------------------------------------
# Chroma server


def test_search_through_the_server_equals_embedded_search(
    seed_index_template: Any, served_seeds: Settings, minilm: Any, multilingual: Any
) -> None:
    cwd = seed_index_template.cwd
    embedded = _passages(seed_index_template.settings, cwd, minilm, multilingual)
    assert _passages(served_seeds, cwd, minilm, multilingual) == embedded
    assert all(embedded)
    reader = open_index(served_seeds)
    assert reader.documents() == open_index(seed_index_template.settings).documents()


def test_a_second_machine_reads_the_index_from_the_server(
    seed_index_template: Any, served_seeds: Settings, minilm: Any, multilingual: Any, tmp_path: Path
) -> None:
    elsewhere = served_seeds.with_overrides(index_dir=tmp_path / "other-machine")
    assert not elsewhere.index_dir.exists()
    found = _passages(elsewhere, seed_index_template.cwd, minilm, multilingual)
    assert found == _passages(seed_index_template.settings, seed_index_template.cwd, minilm, multilingual)
    cached = list((elsewhere.index_dir / "server-versions").iterdir())
    assert len(cached) == 1 and (cached[0] / "bm25").is_dir()  # chunk table and BM25 built locally


def test_incremental_updates_keep_open_readers_and_check_settings(
    chroma: Server, minilm: Any, multilingual: Any, tmp_path: Path
) -> None:
    _copy_seeds(tmp_path / "seeds", count=2)
    settings = Settings(index_dir=tmp_path / "index", chroma_url=chroma.url, chroma_prefix="incremental")

    def index() -> Any:
        return update_index(
            settings, [Path("seeds")], lambda: minilm, cwd=tmp_path, multilingual=lambda: multilingual
        )

    first = index()
    assert len(first.added) == 2 and first.chunks_embedded > 0
    before = open_index(settings)
    changed = sorted((tmp_path / "seeds").glob("*.txt"))[0]
    paragraphs = changed.read_text(encoding="utf-8").split("\n\n")
    paragraphs.insert(3, "Zebrafinken singen in Astana.")  # in the body (a closing line would be a comment)
    changed.write_text("\n\n".join(paragraphs), encoding="utf-8")
    second = index()
    assert second.updated == [f"seeds/{changed.name}"] and 0 < second.chunks_embedded < first.chunks_embedded
    third = index()
    assert third.chunks_embedded == 0 and len(third.unchanged) == 2

    retriever_old = Pipeline(settings, embedder=minilm, multilingual=multilingual, cwd=tmp_path)
    retriever_old._reader = before  # a session opened before the two updates
    old_hits = retriever_old.search("Zebrafinken Astana", k=3)
    assert all("Zebrafinken" not in p.text for p in old_hits)
    new_hits = _passages(settings, tmp_path, minilm, multilingual)
    assert all(new_hits)
    fresh = Pipeline(settings, embedder=minilm, multilingual=multilingual, cwd=tmp_path)
    assert "Zebrafinken" in fresh.search("Zebrafinken Astana", k=1)[0].text

    # The server keeps the vectors of the current and the previous version only, once each.
    current = open_index(settings)
    searchable = {c.id for c in current.chunks.values() if c.section in ("body", "comments")}
    for ids in _vector_ids(chroma, "incremental").values():
        assert len(ids) == len(set(ids)) and searchable <= set(ids)

    other = settings.with_overrides(chunk_tokens=96, index_dir=tmp_path / "index-96")
    with pytest.raises(StaleIndexError, match=r"other settings \(chunk_tokens 128, now 96\)"):
        open_index(other)


def test_two_index_processes_at_once_neither_corrupt_nor_duplicate(
    chroma: Server, tmp_path: Path, minilm: Any, multilingual: Any
) -> None:
    _copy_seeds(tmp_path / "seeds", count=2)
    env = {"RAG_CHROMA_URL": chroma.url, "RAG_CHROMA_PREFIX": "race"}
    runs = [
        subprocess.Popen(
            [str(BIN / "rag"), "--index-dir", f"machine-{n}", "index", "--json", "seeds"],
            cwd=tmp_path,
            env=_env(**env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in (1, 2)
    ]
    outcomes = [run.communicate(timeout=300) for run in runs]
    codes = [run.returncode for run in runs]
    assert 0 in codes, outcomes
    for code, (_, stderr) in zip(codes, outcomes, strict=True):
        assert code == 0 or "being written by another `rag index`" in stderr, stderr
        assert "Traceback" not in stderr

    settings = Settings(index_dir=tmp_path / "machine-3", chroma_url=chroma.url, chroma_prefix="race")
    reader = open_index(settings)
    searchable = {c.id for c in reader.chunks.values() if c.section in ("body", "comments")}
    collections = _vector_ids(chroma, "race")
    assert len(collections) == 2
    for ids in collections.values():
        assert len(ids) == len(set(ids)) == len(searchable) and set(ids) == searchable
    again = update_index(
        settings, [Path("seeds")], lambda: minilm, cwd=tmp_path, multilingual=lambda: multilingual
    )
    assert again.chunks_embedded == 0 and len(again.unchanged) == 2


def test_a_killed_writer_leaves_the_published_version_and_its_lock_is_taken_over(
    chroma: Server, tmp_path: Path, minilm: Any, multilingual: Any
) -> None:
    _copy_seeds(tmp_path / "seeds", count=1)
    _copy_seeds(tmp_path / "more", count=2)
    settings = Settings(index_dir=tmp_path / "index", chroma_url=chroma.url, chroma_prefix="killed")

    def index(*paths: str) -> Any:
        folders = [Path(path) for path in paths]
        return update_index(
            settings, folders, lambda: minilm, cwd=tmp_path, multilingual=lambda: multilingual
        )

    index("seeds")
    published = open_index(settings).manifest
    marker = tmp_path / "paused"
    writer = subprocess.Popen(
        [sys.executable, "-c", PAUSED_WRITER, str(marker), "update", "seeds", "more"],
        cwd=tmp_path,
        env=_env(RAG_CHROMA_URL=chroma.url, RAG_CHROMA_PREFIX="killed"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not marker.exists() and writer.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert marker.exists(), "the writer did not reach the pause"
    writer.kill()  # after it stored vectors, before it published
    writer.wait()
    assert open_index(settings).manifest.files == published.files  # the half-written version is invisible
    report = index("seeds", "more")  # the lock's process is gone, so this writer takes it over
    assert len(report.added) == 1 and len(report.duplicates) == 1  # more/ holds a copy of the first seed
    assert _passages(settings, tmp_path, minilm, multilingual)


def test_an_unreachable_or_wrong_chroma_server_is_one_line(
    seed_index_template: Any, llm_server: Server
) -> None:
    closed = f"http://127.0.0.1:{_free_port()}"
    refused = _one_line_error(
        _rag("search", "--chroma-url", closed, "Tokajew", cwd=seed_index_template.cwd, timeout=30)
    )
    assert "Cannot reach the Chroma server" in refused and "chroma run" in refused
    wrong = llm_server.url.removesuffix("/v1")  # an HTTP server, but not Chroma
    message = _one_line_error(
        _rag("index", "--chroma-url", wrong, "seeds", cwd=seed_index_template.cwd, timeout=30)
    )
    assert "No Chroma server answers" in message


# ---------------------------------------------------------------------------
# Model server


def test_stop_scanner_holds_back_a_possible_stop_sequence() -> None:
    scanner = StopScanner(["\n\n", "Frage:"])
    shown = [scanner.feed(piece) for piece in ["Seit 1992", " [1].\n", "\nFrage: x"]]
    assert shown == ["Seit 1992", " [1].", ""] and scanner.stopped
    tail = StopScanner(["###"])
    assert tail.feed("a #") == "a " and tail.flush() == "#"
    assert estimate_tokens("Kasachstan") == 5 and estimate_tokens("") == 0


def test_an_unreachable_or_wrong_model_server_is_one_line(seed_index_template: Any, chroma: Server) -> None:
    closed = f"http://127.0.0.1:{_free_port()}/v1"
    cwd = seed_index_template.cwd
    refused = _one_line_error(_rag("ask", "--llm-url", closed, QUESTION, cwd=cwd, timeout=60))
    assert "Cannot reach the model server" in refused
    wrong = _one_line_error(_rag("ask", "--llm-url", chroma.url + "/v1", QUESTION, cwd=cwd, timeout=60))
    assert "answered HTTP 404 on /models" in wrong


@pytest.mark.slow
def test_answers_through_the_server_equal_in_process_answers(
    seed_index_template: Any, llm_server: Server, small_model: Path, minilm: Any, multilingual: Any
) -> None:
    from rag.answering.answer import ask

    settings = seed_index_template.settings.with_overrides(
        # refusal_threshold 2: a server scores only the opening token of the refusal, so the
        # refusal odds differ by design; what must agree is the text the model writes.
        model=str(small_model),
        n_threads=2,
        top_k=3,
        max_answer_tokens=96,
        refusal_threshold=2.0,
    )
    answers = []
    for config in (settings, settings.with_overrides(llm_url=llm_server.url)):
        pipeline = Pipeline(config, embedder=minilm, multilingual=multilingual, cwd=seed_index_template.cwd)
        answers.append(ask(pipeline, QUESTION))
    local, served = answers
    assert served.raw == local.raw and served.refused == local.refused
    assert served.answer == local.answer and served.citations == local.citations
    assert served.model_path.endswith(f"at {llm_server.url}")
    assert served.tokens["prompt"] >= local.tokens["prompt"]  # the server count over-counts, never under


@pytest.mark.slow
def test_search_ask_and_eval_through_both_servers(
    seed_index_template: Any, served_seeds: Settings, chroma: Server, llm_server: Server, tmp_path: Path
) -> None:
    cwd = seed_index_template.cwd  # where the served seeds were indexed from (same source paths)
    servers = ["--chroma-url", chroma.url]
    model = ["--llm-url", llm_server.url]
    env = {
        "RAG_INDEX_DIR": str(tmp_path / "index"),
        "RAG_TOP_K": "3",
        "RAG_MAX_ANSWER_TOKENS": "96",  # the tiny model may ramble to the limit; keep the test short
    }
    search = _rag("search", *servers, "--json", "Tokajew Abraham-Abkommen", cwd=cwd, **env)
    assert search.returncode == 0, search.stderr
    assert json.loads(search.stdout)["passages"]
    asked = _rag("ask", *servers, *model, "--json", QUESTION, cwd=cwd, **env)
    assert asked.returncode == 0, asked.stderr
    answer = json.loads(asked.stdout)
    assert answer["model"]["path"].endswith(llm_server.url) and answer["passages"]
    assert answer["refused"] or answer["citations"]
    run = tmp_path / "run"
    questions = str(REPO_ROOT / "evals" / "questions.jsonl")
    evaluated = _rag(
        "eval", *servers, *model, "--questions", questions, "--limit", "2", "--out", str(run), cwd=cwd, **env
    )
    assert evaluated.returncode == 0, evaluated.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["run"]["mode"] == "full" and summary["overall"]["questions"] == 2
    assert summary["overall"]["answer_correct"] is not None


@pytest.mark.slow
def test_a_model_server_killed_mid_answer_is_one_line(
    seed_index_template: Any, small_model: Path, tmp_path: Path
) -> None:
    server = start_llama_server(tmp_path, small_model, "--logits_all", "true")
    try:
        asking = subprocess.Popen(
            [str(BIN / "rag"), "ask", "--json", "--llm-url", server.url, QUESTION],
            cwd=seed_index_template.cwd,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 120
        while "POST /v1/chat/completions" not in server.log.read_text(errors="replace"):
            assert asking.poll() is None and time.monotonic() < deadline, asking.communicate()
            time.sleep(0.1)
        server.process.kill()
        stdout, stderr = asking.communicate(timeout=60)
    finally:
        server.stop()
    assert stdout == ""  # no answer, verified or not
    line = _one_line_error(subprocess.CompletedProcess(asking.args, asking.returncode, stdout, stderr))
    assert "model server" in line


@pytest.mark.slow
def test_next_token_logprobs_in_process_and_through_the_server(
    small_model: Path, llm_server: Server, tmp_path: Path
) -> None:
    from rag.answering.generate import LocalLLM
    from rag.answering.llm_client import ServerChatModel

    # With a system turn: llama_cpp.server's chatml adds an empty one where there is none.
    messages = [
        {"role": "system", "content": "Antworte kurz."},
        {"role": "user", "content": "Die Hauptstadt von Frankreich ist"},
    ]
    local = LocalLLM.load(small_model, n_ctx=1024, n_threads=2, seed=0)
    top = local.next_token_logprobs(messages, 5)
    assert len(top) == 5 and list(top.values()) == sorted(top.values(), reverse=True)
    assert local.complete_chat(messages, max_tokens=4).startswith(next(iter(top)))  # greedy takes the best
    assert 0 < sum(2.718281828**value for value in top.values()) <= 1.0 + 1e-6

    served = ServerChatModel.connect(Settings(llm_url=llm_server.url)).next_token_logprobs(messages, 5)
    without_logits = start_llama_server(tmp_path, small_model, "--logits_all", "false", "--n_ctx", "512")
    try:
        with pytest.raises(ServerError, match="--logits_all true"):
            ServerChatModel.connect(Settings(llm_url=without_logits.url, n_ctx=512)).next_token_logprobs(
                messages, 5
            )
    finally:
        without_logits.stop()
    assert next(iter(served)) == next(iter(top))
    shared = set(served) & set(top)
    assert len(shared) >= 3 and all(abs(served[t] - top[t]) < 0.15 for t in shared)  # other batching
