"""Where the commands of `rag` write: two consoles, JSON lines and progress.

Results go to `console` (stdout); progress, warnings and errors go to `err_console`
(stderr), so `rag ... --json > file` captures only the results. `progress` gives the
core a `update(stage, done, total)` callback: a rich bar on a terminal, a plain line
per tenth of the work in logs. Left out: how an answer is rendered (`rag.ui.render`)
and anything a command decides.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from rich.console import Console

from rag.text.sanitize import json_line

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)  # errors stay one line


def print_json(value: Any) -> None:
    """One JSON line on stdout, whatever the value holds (`rag.text.sanitize.json_line`)."""
    click.echo(json_line(value))


@contextmanager
def progress(label: str, enabled: bool = True) -> Iterator[Any]:
    """A rich progress bar whose `update(stage, done, total)` callback the core calls."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if not enabled:
        yield None
        return
    if not err_console.is_terminal:  # logs (CI): a plain line per tenth of the work instead of a bar
        started = time.perf_counter()

        def log(stage: str, done: int, total: int) -> None:
            if total and (done == total or done % max(1, total // 10) == 0):
                elapsed = time.perf_counter() - started
                err_console.print(f"{label}: {stage} {done}/{total} ({elapsed:.0f} s)")

        yield log
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        tasks: dict[str, Any] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(f"{label}: {stage}", total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield update
