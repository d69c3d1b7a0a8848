"""Generation on real GGUF models: the tiny Gemma for plumbing, the default Qwen model when marked slow."""

from __future__ import annotations

import _thread
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import llama_cpp
import pytest

from rag.answering.generate import FALLBACK_CHAT_FORMAT, GGUF_CHAT_FORMAT, LocalLLM
from rag.answering.model_pull import pull
from rag.answering.models import KNOWN_MODELS
from rag.errors import ModelError, PromptError
from rag.settings import DEFAULT_LLM, Settings

TINY = "gemma-3-270m-q4_k_m"
SYSTEM = "Du beantwortest Fragen zu Nachrichtenartikeln. Antworte knapp und zitiere Passagen als [n]. " * 6


def chat(question: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]


@pytest.fixture(scope="module")
def tiny() -> LocalLLM:
    """The tiny model from the real model cache (pulled once, then a no-op)."""
    return LocalLLM.load(pull(TINY, Settings().model_dir), n_ctx=1024, n_threads=2, seed=0)


def test_model_without_template_falls_back_to_chatml(tiny: LocalLLM) -> None:
    assert "tokenizer.chat_template" not in tiny._llama.metadata
    assert tiny.chat_format_name == FALLBACK_CHAT_FORMAT
    prompt = tiny.render(chat("Wer regiert?"))
    assert prompt.startswith("<|im_start|>system\nDu beantwortest")
    assert prompt.endswith("<|im_start|>user\nWer regiert?<|im_end|>\n<|im_start|>assistant\n")
    assert tiny.n_ctx == 1024
    assert tiny.sha256 == KNOWN_MODELS[TINY].sha256


def test_loading_and_generating_print_nothing(tiny: LocalLLM, capfd: pytest.CaptureFixture[str]) -> None:
    capfd.readouterr()
    other = LocalLLM.load(tiny.model_path, 512, 1, 0)
    other.complete_chat(chat("Hallo"), max_tokens=2)
    assert capfd.readouterr() == ("", "")


def test_count_tokens_grows_with_text(tiny: LocalLLM) -> None:
    one = tiny.count_tokens("Die Bundesregierung beschloss am Mittwoch ein Gesetz.")
    assert tiny.count_tokens("") == 0
    assert 5 < one < 30
    assert tiny.count_tokens("Die Bundesregierung beschloss am Mittwoch ein Gesetz. " * 4) >= 4 * one - 4
    short, long = chat("Wer?"), chat("Wer hat das Gesetz beschlossen und wann trat es in Kraft?")
    assert tiny.count_messages(long) - tiny.count_messages(short) == pytest.approx(
        tiny.count_tokens(long[1]["content"]) - tiny.count_tokens("Wer?"), abs=2
    )


def test_stream_yields_deltas_and_records_usage(tiny: LocalLLM) -> None:
    messages = chat("Nenne drei Städte in Deutschland.")
    deltas = list(tiny.stream_chat(messages, max_tokens=16))
    usage = tiny.last_usage
    assert deltas and all(deltas)
    assert usage is not None
    assert usage.prompt_tokens == tiny.count_messages(messages)
    assert usage.completion_tokens == tiny.count_tokens("".join(deltas)) > 0
    assert usage.first_token_ms is not None and 0 < usage.first_token_ms <= usage.total_ms
    assert usage.finish_reason in {"stop", "length"}
    assert tiny.complete_chat(messages, max_tokens=16) == "".join(deltas)  # temperature 0 is reproducible


def test_max_tokens_caps_the_answer(tiny: LocalLLM) -> None:
    text = tiny.complete_chat(chat("Zähle von eins bis hundert, jede Zahl ausgeschrieben."), max_tokens=4)
    usage = tiny.last_usage
    assert usage is not None and usage.finish_reason == "length"
    assert 0 < tiny.count_tokens(text) <= 6


def test_same_prefix_is_not_evaluated_again(tiny: LocalLLM) -> None:
    tiny.complete_chat(chat("Was geschah in Berlin?"), max_tokens=4)
    llama_cpp.llama_perf_context_reset(tiny._llama.ctx)
    tiny.complete_chat(chat("Was geschah in Hamburg?"), max_tokens=4)
    usage = tiny.last_usage
    evaluated = llama_cpp.llama_perf_context(tiny._llama.ctx).n_p_eval
    assert usage is not None
    assert usage.cached_tokens >= tiny.count_messages([chat("")[0]]) - 8  # the system turn at least
    assert evaluated <= usage.prompt_tokens - usage.cached_tokens + 1


@pytest.fixture
def ctrl_c_raises() -> Iterator[None]:
    """Python's own Ctrl-C handler, even in a run started in the background with SIGINT ignored."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.usefixtures("ctrl_c_raises")
def test_ctrl_c_while_streaming_leaves_the_model_usable(tiny: LocalLLM) -> None:
    messages = chat("Zähle weiter: eins, zwei, drei, vier, fünf, sechs, sieben, acht, neun, zehn, elf, zwölf")
    reference = tiny.complete_chat(messages, max_tokens=12)
    assert tiny.last_usage is not None and tiny.last_usage.completion_tokens > 2  # room to interrupt
    tiny.complete_chat(chat("Etwas ganz anderes."), max_tokens=4)
    received: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        for delta in tiny.stream_chat(messages, max_tokens=12):
            received.append(delta)
            if len(received) == 2:
                _thread.interrupt_main()  # what Ctrl-C does: KeyboardInterrupt wherever the main thread is
    assert tiny.last_usage is not None and tiny.last_usage.finish_reason == "interrupted"
    assert len("".join(received)) < len(reference)
    assert tiny.complete_chat(messages, max_tokens=12) == reference


def test_prompt_longer_than_context_fails_at_the_call(tiny: LocalLLM) -> None:
    with pytest.raises(PromptError, match=r"needs \d+ tokens but the context window holds 1024"):
        tiny.stream_chat(chat("Wort " * 2000), max_tokens=8)


def test_text_file_named_gguf_is_a_one_line_model_error(tmp_path: Path) -> None:
    fake = tmp_path / "model.gguf"
    fake.write_text("Das ist kein Modell.\n")
    with pytest.raises(ModelError, match="is not a GGUF model file") as error:
        LocalLLM.load(fake, 512, 1, 0)
    assert "\n" not in str(error.value)
    assert error.value.__cause__ is None and error.value.__context__ is None


def test_broken_gguf_is_a_model_error_and_llama_cpp_stays_quiet(
    tiny: LocalLLM, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.gguf"
    with tiny.model_path.open("rb") as source, broken.open("wb") as target:
        target.write(source.read(1_000_000))
    capfd.readouterr()
    with pytest.raises(
        ModelError, match=r"llama\.cpp could not load .*broken\.gguf \(.+\) — use a complete GGUF file"
    ) as error:
        LocalLLM.load(broken, 512, 1, 0)
    assert "\n" not in str(error.value)
    assert error.value.__suppress_context__  # llama-cpp-python's ValueError is not chained into the report
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""


def test_truncated_known_model_is_refused_before_llama_cpp(tiny: LocalLLM, tmp_path: Path) -> None:
    copy = tmp_path / tiny.model_path.name
    shutil.copyfile(tiny.model_path, copy)
    with copy.open("r+b") as handle:
        handle.truncate(10_000)
    with pytest.raises(ModelError, match=r"is truncated \(10000 of \d+ bytes\)"):
        LocalLLM.load(copy, 512, 1, 0)


@pytest.mark.slow
def test_default_model_answers_a_trivial_question() -> None:
    settings = Settings(model=DEFAULT_LLM, n_ctx=2048, seed=0)
    path = pull(DEFAULT_LLM, settings.model_dir)
    llm = LocalLLM.load(path, settings.n_ctx, settings.n_threads, settings.seed)
    assert llm.chat_format_name == GGUF_CHAT_FORMAT
    messages = [
        {"role": "system", "content": "Antworte mit einem einzigen Wort."},
        {"role": "user", "content": "Wie heißt die Hauptstadt von Frankreich?"},
    ]
    assert llm.render(messages).endswith("<|im_start|>assistant\n")
    answer = llm.complete_chat(messages, max_tokens=16)
    assert "Paris" in answer
    usage = llm.last_usage
    assert usage is not None and usage.finish_reason == "stop" and usage.completion_tokens < 16


def _fresh(tiny: LocalLLM, prefix_dir: Path) -> LocalLLM:
    return LocalLLM.load(tiny.model_path, 1024, 2, 0, prefix_dir=prefix_dir)


def test_a_new_process_loads_the_stored_prefix_and_answers_alike(tiny: LocalLLM, tmp_path: Path) -> None:
    first = _fresh(tiny, tmp_path)
    written = first.complete_chat(chat("Wer regiert in Kasachstan?"), max_tokens=12)
    (stored,) = tmp_path.glob("*.state")
    assert first.prefix_loaded == 0 and stored.stat().st_size > 0

    second = _fresh(tiny, tmp_path)  # a fresh context, as in a new process
    assert second.complete_chat(chat("Wer regiert in Kasachstan?"), max_tokens=12) == written
    assert second.prefix_loaded > 60 and second.last_usage is not None
    assert second.last_usage.cached_tokens >= second.prefix_loaded  # not processed again
    other = _fresh(tiny, tmp_path)
    question = "Wann wurde das Gesetz beschlossen?"
    assert other.complete_chat(chat(question), max_tokens=12) == tiny.complete_chat(chat(question), 12)
    assert other.prefix_loaded == second.prefix_loaded  # one stored prefix serves every question


def test_a_damaged_stored_prefix_is_rebuilt_never_loaded(tiny: LocalLLM, tmp_path: Path) -> None:
    written = _fresh(tiny, tmp_path).complete_chat(chat("Wer regiert?"), max_tokens=12)
    (stored,) = tmp_path.glob("*.state")
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))

    after = _fresh(tiny, tmp_path)
    assert after.complete_chat(chat("Wer regiert?"), max_tokens=12) == written
    assert after.prefix_loaded == 0  # processed again, then stored anew
    assert _fresh(tiny, tmp_path).complete_chat(chat("Wer regiert?"), max_tokens=12) == written
    stored.write_bytes(stored.read_bytes()[:1000])  # cut short, as by a full disk
    truncated = _fresh(tiny, tmp_path)
    assert truncated.complete_chat(chat("Wer regiert?"), max_tokens=12) == written
    assert truncated.prefix_loaded == 0


def test_a_prefix_stored_for_another_prompt_is_not_used(tiny: LocalLLM, tmp_path: Path) -> None:
    _fresh(tiny, tmp_path).complete_chat(chat("Wer regiert?"), max_tokens=4)
    changed = [{"role": "system", "content": SYSTEM.replace("knapp", "ausführlich")}, chat("Wer?")[1]]
    other = _fresh(tiny, tmp_path)
    other.complete_chat(changed, max_tokens=4)
    assert other.prefix_loaded == 0 and len(list(tmp_path.glob("*.state"))) == 2


def test_a_new_context_shares_the_weights_and_keeps_its_own_cache(tiny: LocalLLM) -> None:
    owner = LocalLLM.load(tiny.model_path, 1024, 2, 0)
    other = owner.new_context(512)
    assert other._llama.model == owner._llama.model  # one llama_model, no second load
    assert other.n_ctx == 512 and other.model_path == owner.model_path
    first, second = "Wer regiert in Kasachstan?", "Wann wurde das Gesetz beschlossen?"
    expected = {q: tiny.complete_chat(chat(q), max_tokens=12) for q in (first, second)}
    assert owner.complete_chat(chat(first), 12) == expected[first]
    assert other.complete_chat(chat(second), 12) == expected[second]
    owner.complete_chat(chat(first), 12)
    assert owner.last_usage is not None and owner.last_usage.cached_tokens > 60  # not evicted by `other`


def test_a_new_context_outlives_the_context_it_came_from(tiny: LocalLLM) -> None:
    import gc

    owner = LocalLLM.load(tiny.model_path, 1024, 2, 0)
    expected = owner.complete_chat(chat("Wer regiert?"), 8)
    other = owner.new_context(512)
    del owner
    gc.collect()
    assert other.complete_chat(chat("Wer regiert?"), 8) == expected
