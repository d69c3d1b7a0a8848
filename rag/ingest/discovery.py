"""Find the input files of `rag index`: the supported files below the paths given, and why others are skipped.

`discover` walks directories depth first in name order, skips hidden entries and
files whose suffix has no reader (`rag.ingest.read.READERS`), takes each file once
(hard links and directory symlinks included), and does not follow a symlink out of
a given directory unless asked. `given_files` takes named files whatever their
suffix, for `rag index --format`. Each file comes with its source label: the path
relative to the working directory, or the absolute path outside it. Left out:
reading the files (`rag.ingest.read`).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from rag.errors import InputError
from rag.ingest.read import READERS, os_reason, supported_list


def _source_label(path: Path, cwd: Path) -> str:
    """Path relative to `cwd` when below it, else the resolved absolute path."""
    if path.is_relative_to(cwd):
        return path.relative_to(cwd).as_posix()
    try:
        return str(path.resolve())
    except (OSError, RuntimeError):  # a symlink loop (RuntimeError in Python 3.11): name it as found
        return str(path)


class _Discovery:
    """One `discover` call: what was found and skipped so far, and which files and directories were seen."""

    def __init__(self, cwd: Path, follow_symlinks: bool) -> None:
        self.cwd = cwd
        self.follow_symlinks = follow_symlinks
        self.found: list[tuple[Path, str]] = []
        self.skipped: list[tuple[str, str]] = []
        self.seen_files: dict[tuple[int, int], str] = {}
        self.visited_dirs: set[tuple[int, int]] = set()

    def take_file(self, path: Path, status: os.stat_result, explicit: bool) -> None:
        """Take a supported, readable regular file once; say why not only when it was given explicitly."""
        source = _source_label(path, self.cwd)
        if not stat.S_ISREG(status.st_mode):
            if explicit:
                self.skipped.append((source, "not a regular file"))
            return
        if path.suffix.lower() not in READERS:
            if explicit:
                kind = f"file type {path.suffix}" if path.suffix else "file without suffix"
                self.skipped.append((source, f"unsupported {kind} (supported: {supported_list()})"))
            return
        key = (status.st_dev, status.st_ino)
        if key in self.seen_files:
            if self.seen_files[key] != source:
                self.skipped.append((source, f"same file as {self.seen_files[key]}"))
            return
        if not os.access(path, os.R_OK, effective_ids=os.access in os.supports_effective_ids):
            self.skipped.append((source, "permission denied"))
            return
        self.seen_files[key] = source
        self.found.append((path, source))

    def walk(self, root: Path, root_status: os.stat_result) -> None:
        """Take every supported file below the directory `root`, depth first in name order."""
        self.visited_dirs.add((root_status.st_dev, root_status.st_ino))
        resolved_root = root.resolve()
        pending = [root]
        while pending:
            directory = pending.pop()
            try:
                entries = sorted(os.scandir(directory), key=lambda entry: entry.name, reverse=True)
            except OSError as error:
                reason = f"cannot list directory: {os_reason(error)}"
                self.skipped.append((_source_label(directory, self.cwd), reason))
                continue
            for entry in entries:
                if not entry.name.startswith("."):
                    self._visit(entry, root, resolved_root, pending)

    def _visit(self, entry: os.DirEntry[str], root: Path, resolved_root: Path, pending: list[Path]) -> None:
        """Take one directory entry: a file now, a directory onto `pending`, unless it is to be skipped."""
        path = Path(entry.path)
        try:
            status = path.stat()
        except OSError as error:
            if entry.is_symlink() or path.suffix.lower() in READERS:
                self.skipped.append((_source_label(path, self.cwd), os_reason(error)))
            return
        if self._leaves_root(entry, path, status, resolved_root):
            link = path.relative_to(self.cwd).as_posix() if path.is_relative_to(self.cwd) else str(path)
            reason = f"symlink to {path.resolve()}, outside {root} — pass --follow-symlinks to index it"
            self.skipped.append((link, reason))
            return
        if not stat.S_ISDIR(status.st_mode):
            self.take_file(path, status, explicit=False)
            return
        key = (status.st_dev, status.st_ino)
        if key in self.visited_dirs:
            self.skipped.append((_source_label(path, self.cwd), "symlink loop (directory already scanned)"))
            return
        self.visited_dirs.add(key)
        pending.append(path)

    def _leaves_root(
        self, entry: os.DirEntry[str], path: Path, status: os.stat_result, resolved_root: Path
    ) -> bool:
        """Whether a directory or supported file is a symlink out of the given directory (not followed)."""
        taken = stat.S_ISDIR(status.st_mode) or path.suffix.lower() in READERS
        return (
            taken
            and entry.is_symlink()
            and not self.follow_symlinks
            and not path.resolve().is_relative_to(resolved_root)
        )


def discover(
    paths: Sequence[Path], cwd: Path, follow_symlinks: bool = False
) -> tuple[list[tuple[Path, str]], list[tuple[str, str]]]:
    """Expand files and directories into (path, source) pairs of supported files, sorted.

    Directories are walked recursively (hidden entries skipped, unsupported suffixes
    ignored, directory symlinks followed once). A symlink found in a directory that
    leads outside that given directory (e.g. to /etc/passwd) is skipped unless
    `follow_symlinks`; paths given explicitly are always taken. Returns the files and
    (path, reason) for everything that could not be taken. Raises InputError for a
    path that does not exist at all.
    """
    cwd = Path(os.path.abspath(cwd))
    discovery = _Discovery(cwd, follow_symlinks)
    found, skipped = discovery.found, discovery.skipped
    for given in paths:
        path = Path(os.path.abspath(cwd / given))
        if not os.path.lexists(path):
            raise InputError(f"No such file or directory: {given} — check the path")
        try:
            status = path.stat()
        except OSError as error:
            skipped.append((_source_label(path, cwd), os_reason(error)))
            continue
        if stat.S_ISDIR(status.st_mode):
            start = len(found)
            discovery.walk(path, status)
            found[start:] = sorted(found[start:], key=lambda pair: pair[1])
        else:
            discovery.take_file(path, status, explicit=True)
    return found, skipped


def given_files(paths: Sequence[Path], cwd: Path, format_name: str) -> list[tuple[Path, str]]:
    """(path, source) of files named directly, for `rag index --format`: read whatever their suffix."""
    found = []
    for given in paths:
        path = Path(os.path.abspath(cwd / given))
        if not path.is_file():
            raise InputError(f"--format {format_name} reads files: {given} is not a file — name the file")
        found.append((path, _source_label(path, cwd)))
    return found
