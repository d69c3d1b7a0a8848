"""A native crash becomes one line on the screen and a trace in a log file, never a bare signal.

A segfault in llama.cpp (the AMX kernels of some builds on some Intel CPUs did exactly
that) cannot be caught inside the process that has it. So:

- `enable_crash_log` points `faulthandler` at `crash.log` in the user cache dir
  (`~/.cache/rag/crash.log`): a dying process writes its Python trace there, not to
  the screen.
- `run_supervised` forks. The child returns at once and runs the command as if
  nothing had happened; the parent waits. The child shares stdin, stdout, stderr and
  the terminal, so streaming, piped input and prompt_toolkit work unchanged; Ctrl-C
  reaches the child from the terminal (the parent only ignores it while it waits),
  SIGTERM and SIGHUP are passed on. When the child dies of a signal, the parent
  returns one line that names the signal, the fix (`rag doctor`) and the log, and
  exits 128 + signal, as a shell would.

Only the commands that load llama.cpp (`ask`, `chat`, `eval`) are supervised (the CLI
decides from its arguments), and the fork happens first thing in `main`, before any
thread or native library exists. Why fork and not a re-run of `python -m rag`: the
entry point `rag.ui.cli:main` has already imported click, rich and pydantic-settings,
most of the start-up; a re-run pays it again, a fork inherits it. Measured side by
side (bench/startup_bench.py, 15 runs each, p50, this shared 2-core machine at a load
average of 7): `rag ask ""`, which fails at once and so is start-up alone, took
756 ms run directly and 1375 ms as a re-run child (+618 ms, x1.8); forked, 590 ms
against 555 ms (+35 ms, x1.06). `rag --help` is never supervised and does not
open the crash log: 378 ms against 377 ms before this module, side by side at
that load (190 ms on a quiet machine). Where there is no fork (Windows) commands run
unsupervised.
Left out: crashes of the supervising parent itself (it only waits) and of commands
that never load llama.cpp (they still log their trace, and the shell shows the signal).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import faulthandler
import os
import signal
from pathlib import Path
from typing import IO, Any

CRASH_LOG_NAME = "crash.log"
# Signals faulthandler writes a trace for: a crash in native code.
_FATAL_SIGNALS = frozenset({signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE, signal.SIGABRT})
# Endings the user asked for or expects: no message.
_QUIET_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE})
_FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGHUP)

_crash_log: IO[str] | None = None  # faulthandler writes to it until the process ends


def crash_log_path() -> Path:
    """Where faulthandler's traces go: `crash.log` in the user cache dir."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("rag")) / CRASH_LOG_NAME


def enable_crash_log() -> None:
    """Send faulthandler's trace of a fatal signal to the crash log instead of the screen.

    Without a writable cache dir there is no log; the crash is still reported in one
    line by a supervising parent.
    """
    global _crash_log
    if _crash_log is not None:
        return
    path = crash_log_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _crash_log = path.open("a", encoding="utf-8")
    except OSError:
        return
    faulthandler.enable(file=_crash_log, all_threads=True)


def run_supervised(command: str) -> tuple[int, str | None] | None:
    """Fork; the child gets None and goes on to run `command`. The parent waits and gets the
    child's exit code and, if it died of a signal, one line for the user."""
    if not hasattr(os, "fork"):
        return None
    child = os.fork()
    if child == 0:
        return None

    def pass_on(signum: int, frame: Any) -> None:
        os.kill(child, signum)

    previous = {signum: signal.signal(signum, pass_on) for signum in _FORWARDED_SIGNALS}
    # The child got Ctrl-C from the terminal too; the parent only waits for it to end.
    previous[signal.SIGINT] = signal.signal(signal.SIGINT, lambda signum, frame: None)
    try:
        _, status = os.waitpid(child, 0)  # retried after a handler ran (PEP 475)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    returncode = os.waitstatus_to_exitcode(status)
    if returncode >= 0:
        return returncode, None
    died_of = signal.Signals(-returncode)
    return 128 + died_of, death_message(command, died_of)


def death_message(command: str, died_of: signal.Signals) -> str | None:
    """The one line for a child that died of `died_of`; None for the quiet endings (Ctrl-C, kill)."""
    if died_of in _QUIET_SIGNALS:
        return None
    described = f"{died_of.name}, {signal.strsignal(died_of) or 'signal'}"
    log = crash_log_path()
    if died_of not in _FATAL_SIGNALS:
        return f"rag {command} was killed ({described}) — out of memory? Check with `rag doctor`"
    _note_in_log(log, f"{dt.datetime.now().isoformat(timespec='seconds')} rag {command} died of {described}")
    return (
        f"rag {command} crashed in native code ({described}) — run `rag doctor`, which names the fix;"
        f" the trace is in {log}"
    )


def _note_in_log(log: Path, line: str) -> None:
    """Append a line below the trace the child left, so the log says when and what."""
    with contextlib.suppress(OSError), log.open("a", encoding="utf-8") as handle:
        handle.write(f"--- {line} (trace above)\n")
