"""Model files on disk: their sha256 sidecars, full verification, and the listing of the cache.

A small `.sha256` sidecar next to a model file records a verified hash together with
the file's size and mtime, so repeated pulls, loads and `list_models` are instant while
any change to the file invalidates it. `verify` hashes the whole file (a few seconds
per GB) and compares it with the known model; `list_models` never hashes. Left out:
which models exist and the cheap load-time check (`rag.answering.models`), and
fetching a model (`rag.answering.model_pull`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from rag.answering.models import GGUF_MAGIC, KNOWN_MODELS, ModelSpec, display_path, spec_for_file
from rag.errors import ModelError

COPY_BLOCK = 4 * 1024 * 1024
"""Bytes read at a time when a model file is hashed or joined."""


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of a full integrity check of one model file (plain fields, so `asdict` shows all)."""

    path: Path
    size: int
    sha256: str
    expected_size: int | None  # None for GGUF files that are not known models
    expected_sha256: str | None
    ok: bool
    message: str  # one line: what matched, or what is wrong

    @property
    def size_ok(self) -> bool:
        return self.expected_size is None or self.size == self.expected_size

    @property
    def sha256_ok(self) -> bool:
        return self.expected_sha256 is None or self.sha256 == self.expected_sha256


@dataclass(frozen=True)
class ModelStatus:
    """One row of `rag models list`: a known model or another GGUF file in the cache."""

    name: str
    path: Path
    known: bool
    present: bool
    size: int | None  # bytes on disk, None when absent
    expected_size: int | None
    verified: bool  # a sidecar records a full sha256 match for the current file
    license: str | None


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def write_sidecar(path: Path, sha256: str) -> None:
    """Record that `path`, as it is now (size + mtime), has hash `sha256`."""
    stat = path.stat()
    record = {"sha256": sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    sidecar = _sidecar(path)
    tmp = sidecar.with_name(sidecar.name + ".tmp")
    try:
        tmp.write_text(json.dumps(record) + "\n", encoding="utf-8")
        os.replace(tmp, sidecar)
    except OSError:  # a read-only model directory only costs a re-hash next time
        tmp.unlink(missing_ok=True)


def recorded_sha256(path: Path) -> str | None:
    """The hash from the sidecar if it still describes the file (same size and mtime)."""
    try:
        record = json.loads(_sidecar(path).read_text(encoding="utf-8"))
        stat = path.stat()
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict):
        return None
    if record.get("size") != stat.st_size or record.get("mtime_ns") != stat.st_mtime_ns:
        return None
    sha256 = record.get("sha256")
    return sha256 if isinstance(sha256, str) else None


def file_sha256(path: Path) -> str:
    """The file's sha256: from a still-valid sidecar, else computed (a few seconds per GB)."""
    return recorded_sha256(path) or _hash_file(path)


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(COPY_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, spec: ModelSpec | None = None) -> VerifyResult:
    """Hash the whole file and compare with the known model (by file name when `spec` is None).

    A match is recorded in the sidecar so later pulls and loads skip the hash. Files that
    are not known models can only be checked for the GGUF magic; their hash is reported.
    """
    spec = spec or spec_for_file(path)
    if not path.is_file():
        raise ModelError(f"{display_path(path)} does not exist — run `rag models pull`")
    size = path.stat().st_size
    sha256 = _hash_file(path)
    if spec is None:
        with path.open("rb") as handle:
            ok = handle.read(len(GGUF_MAGIC)) == GGUF_MAGIC
        message = f"not a known model; sha256 {sha256}" if ok else "not a GGUF file"
    elif size != spec.size:
        ok, message = False, f"{size} of {spec.size} bytes — run `rag models pull`"
    elif sha256 != spec.sha256:
        ok, message = False, f"sha256 {sha256[:12]}… but expected {spec.sha256[:12]}… — run `rag models pull`"
    else:
        ok, message = True, f"size and sha256 match {spec.name}"
    result = VerifyResult(
        path=path,
        size=size,
        sha256=sha256,
        expected_size=spec.size if spec else None,
        expected_sha256=spec.sha256 if spec else None,
        ok=ok,
        message=message,
    )
    if spec is not None and ok:
        write_sidecar(path, sha256)
    elif spec is not None:
        with contextlib.suppress(OSError):
            _sidecar(path).unlink(missing_ok=True)
    return result


def verify_all(model_dir: Path) -> list[VerifyResult]:
    """Fully verify every model file present in `model_dir` (known models and other GGUF files)."""
    return [verify(status.path) for status in list_models(model_dir) if status.present]


def is_verified(path: Path, spec: ModelSpec) -> bool:
    """True when the file matches `spec`; hashes at most once per file version."""
    if not path.is_file() or path.stat().st_size != spec.size:
        return False
    if recorded_sha256(path) == spec.sha256:
        return True
    return verify(path, spec).ok


def list_models(model_dir: Path) -> list[ModelStatus]:
    """Known models (present or not) followed by any other GGUF files in `model_dir`. Never hashes."""
    rows: list[ModelStatus] = []
    for spec in KNOWN_MODELS.values():
        path = model_dir / spec.filename
        present = path.is_file()
        rows.append(
            ModelStatus(
                name=spec.name,
                path=path,
                known=True,
                present=present,
                size=path.stat().st_size if present else None,
                expected_size=spec.size,
                verified=present and recorded_sha256(path) == spec.sha256,
                license=spec.license,
            )
        )
    known_files = {spec.filename for spec in KNOWN_MODELS.values()}
    others = sorted(model_dir.glob("*.gguf")) if model_dir.is_dir() else []
    for path in others:
        if path.name in known_files or not path.is_file():
            continue
        rows.append(
            ModelStatus(
                name=path.name,
                path=path,
                known=False,
                present=True,
                size=path.stat().st_size,
                expected_size=None,
                verified=False,
                license=None,
            )
        )
    return rows
