"""`rag doctor` through the real executable, and the installed llama.cpp build itself.

The doctor runs on a copy of the seed index with the tiny Gemma model (its one-token
generation is a plumbing check, not a quality one). Each broken installation breaks
exactly one thing: a truncated model file, a damaged index, or a `llama_cpp` that
segfaults on import — a fake package put first on PYTHONPATH, which only the
doctor's child process imports.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from rag.answering.model_pull import pull
from rag.answering.models import KNOWN_MODELS
from rag.index.layout import CURRENT_LINK
from rag.settings import Settings
from rag.ui.doctor import parse_system_info

if TYPE_CHECKING:
    from conftest import SeedIndex

REPO_ROOT = Path(__file__).resolve().parent.parent
RAG = str(Path(sys.executable).with_name("rag"))
TINY = "gemma-3-270m-q4_k_m"
SEGFAULTING_LLAMA = (
    "import ctypes\nctypes.string_at(0)  # reads address 0: SIGSEGV, as a broken build would\n"
)


def cpu_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def test_installed_llama_cpp_has_no_amx() -> None:
    """The set-up builds llama.cpp without AMX, and with the AVX levels this CPU has."""
    import llama_cpp

    features = parse_system_info(llama_cpp.llama_print_system_info().decode())
    assert features, "llama.cpp reported no CPU features"
    assert not [name for name, on in features.items() if "AMX" in name and on]
    flags = cpu_flags()
    if "avx2" in flags:
        assert features.get("AVX2")
    if "avx512f" in flags:
        assert features.get("AVX512")
    if not flags & {"avx512f"}:
        assert not features.get("AVX512")  # AVX-512 code on a CPU without it dies of SIGILL


def test_system_info_is_parsed_into_features() -> None:
    info = "CPU : SSE3 = 1 | AVX2 = 1 | AVX512 = 0 | AMX_INT8 = 1 | LLAMAFILE = 1 | "
    assert parse_system_info(info) == {
        "SSE3": True,
        "AVX2": True,
        "AVX512": False,
        "AMX_INT8": True,
        "LLAMAFILE": True,
    }


@pytest.fixture(scope="module")
def tiny_model() -> Path:
    return pull(TINY, Settings().model_dir)


def doctor(
    seed_index: SeedIndex, tmp_path: Path, model: str = TINY, pythonpath: str = str(REPO_ROOT), **env: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """`rag doctor --json` on the seed index copy, with the cache dir (crash log) in tmp_path."""
    finished = subprocess.run(
        [RAG, "--model", model, "doctor", "--json"],
        cwd=seed_index.cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={
            **os.environ,
            "PYTHONPATH": pythonpath,
            "RAG_INDEX_DIR": str(seed_index.settings.index_dir),
            "RAG_MODEL_DIR": str(Settings().model_dir),
            "XDG_CACHE_HOME": str(tmp_path / "cache"),
            **env,
        },
    )
    assert "Traceback" not in finished.stderr + finished.stdout
    report = json.loads(finished.stdout)
    return finished, {check["name"]: check for check in report["checks"]}


def failed(checks: dict[str, Any]) -> list[str]:
    return [name for name, check in checks.items() if check["status"] == "fail"]


def test_doctor_passes_on_a_healthy_installation(
    seed_index: SeedIndex, tmp_path: Path, tiny_model: Path
) -> None:
    finished, checks = doctor(seed_index, tmp_path)
    assert finished.returncode == 0, finished.stderr
    assert failed(checks) == []
    assert list(checks) == [
        "python",
        "libraries",
        "model file",
        "llama.cpp build",
        "generation",
        "embedding model",
        "multilingual encoder",
        "index",
        "crash log",
    ]
    assert "sha256 match" in checks["model file"]["detail"]
    assert "no AMX" in checks["llama.cpp build"]["detail"]
    assert "generated one token" in checks["generation"]["detail"]
    assert "5 documents" in checks["index"]["detail"]


def test_doctor_names_the_fix_for_a_truncated_model(
    seed_index: SeedIndex, tmp_path: Path, tiny_model: Path
) -> None:
    model_dir = tmp_path / "models"
    model_dir.mkdir()
    with tiny_model.open("rb") as source, (model_dir / tiny_model.name).open("wb") as target:
        target.write(source.read(KNOWN_MODELS[TINY].size // 3))
    finished, checks = doctor(seed_index, tmp_path, RAG_MODEL_DIR=str(model_dir))
    assert finished.returncode != 0
    assert failed(checks) == ["model file"]
    assert "truncated" in checks["model file"]["detail"] and "rag models pull" in checks["model file"]["fix"]
    assert checks["generation"]["status"] == "skip"
    assert finished.stderr.strip().count("\n") == 0 and "model file" in finished.stderr


def test_doctor_names_the_fix_for_a_damaged_index(
    seed_index: SeedIndex, tmp_path: Path, tiny_model: Path
) -> None:
    chroma = seed_index.settings.index_dir / CURRENT_LINK / "chroma" / "chroma.sqlite3"
    os.truncate(chroma, chroma.stat().st_size // 2)
    finished, checks = doctor(seed_index, tmp_path)
    assert finished.returncode != 0
    assert failed(checks) == ["index"]
    assert "damaged" in checks["index"]["detail"] and "chroma.sqlite3" in checks["index"]["detail"]
    assert checks["index"]["fix"] == "run `rag index --rebuild`"


def test_doctor_survives_llama_cpp_crashing_in_its_child(
    seed_index: SeedIndex, tmp_path: Path, tiny_model: Path
) -> None:
    fake = tmp_path / "fake" / "llama_cpp"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(SEGFAULTING_LLAMA)
    finished, checks = doctor(seed_index, tmp_path, pythonpath=f"{fake.parent}{os.pathsep}{REPO_ROOT}")
    assert finished.returncode != 0
    assert failed(checks) == ["llama.cpp build", "generation"]
    assert (
        "SIGSEGV" in checks["generation"]["detail"]
        and "crashed on this CPU" in checks["generation"]["detail"]
    )
    assert "make setup" in checks["generation"]["fix"] and "without AMX" in checks["generation"]["fix"]
    assert checks["index"]["status"] == "ok"  # the parent went on after the child died


def test_the_doctor_cli_prints_a_table_with_the_fixes(seed_index: SeedIndex, tmp_path: Path) -> None:
    shutil.rmtree(seed_index.settings.index_dir / CURRENT_LINK / "bm25")
    finished = subprocess.run(
        [RAG, "--model", str(tmp_path / "missing.gguf"), "doctor"],
        cwd=seed_index.cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={
            **os.environ,
            "PYTHONPATH": str(REPO_ROOT),
            "RAG_INDEX_DIR": str(seed_index.settings.index_dir),
            "XDG_CACHE_HOME": str(tmp_path / "cache"),
            "COLUMNS": "250",
        },
    )
    assert finished.returncode != 0 and "Traceback" not in finished.stderr
    rows = {line.split("│")[1].strip(): line for line in finished.stdout.splitlines() if line.count("│") == 5}
    assert "fail" in rows["model file"] and "does not exist" in rows["model file"]
    assert "fail" in rows["index"] and "bm25/chunk_ids.json is missing" in rows["index"]
    assert "rag index --rebuild" in rows["index"]
    assert finished.stderr.count("\n") == 1 and "model file, index" in finished.stderr


def test_logged_crashes_are_a_warning_that_names_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rag.ui.doctor import check_crash_log
    from rag.ui.supervise import crash_log_path

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert check_crash_log().status == "ok"
    crash_log_path().parent.mkdir(parents=True)
    crash_log_path().write_text("Fatal Python error: Segmentation fault\n\n--- rag ask died of SIGSEGV\n")
    logged = check_crash_log()
    assert logged.status == "warn" and "1 native crash(es)" in logged.detail and "crash.log" in logged.detail
