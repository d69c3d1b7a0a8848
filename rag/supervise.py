"""A native crash becomes one line on the screen and a trace in a log file, never a bare signal.

A segfault in llama.cpp (the AMX kernels of some builds on some Intel CPUs did exactly
that) cannot be caught inside the process that has it. So:

- `enable_crash_log` points `faulthandler` at `crash.log` in the user cache dir
  (`~/.cache/rag/crash.log`): a dying process writes its Python trace there, not to
  the screen.
- `run_supervised` runs the same command line again in a child process
  (`python -P -m rag …`, marked by SUPERVISED_ENV so it does not recurse) and waits.
  The child inherits stdin, stdout, stderr and the terminal, so streaming, piped
  input and prompt_toolkit work unchanged; Ctrl-C reaches the child from the
  terminal (the parent only ignores it while it waits), SIGTERM and SIGHUP are
  passed on. When the child dies of a signal, the parent returns one line that
  names the signal, the fix (`rag doctor`) and the log, and exits 128 + signal.

Only the commands that load llama.cpp (`ask`, `chat`, `eval`) are supervised; the
CLI decides that from its arguments. Why not every command, or a smaller wrapper:
the entry point is `rag.cli:main`, whose import (click, rich, pydantic-settings) is
most of the start-up, so a supervising parent pays it once and the child again.
Measured side by side (bench/startup_bench.py, 15 runs each, this 2-core machine):
`rag --help` 190 ms p50 stays unsupervised; `rag ask ""` (fails at once, so it is
start-up alone) takes 411 ms supervised against 237 ms run directly — about
170 ms more, in front of a command that then loads a 1.1 GB model for seconds.
Supervising `rag --help` too would have doubled it past the 0.3 s budget.
Left out: crashes of the supervising parent itself (it only waits) and of commands
that never load llama.cpp (they still log their trace, and the shell shows the signal).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import faulthandler
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

SUPERVISED_ENV = "RAG_SUPERVISED"
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


def is_supervised() -> bool:
    """True in the child that a supervising parent started."""
    return os.environ.get(SUPERVISED_ENV) == "1"


def run_supervised(args: list[str], command: str) -> tuple[int, str | None]:
    """Run `rag ARGS` in a child process; returns its exit code and, if it died of a signal, one line."""
    child = subprocess.Popen(
        [sys.executable, "-P", "-m", "rag", *args], env={**os.environ, SUPERVISED_ENV: "1"}
    )

    def pass_on(signum: int, frame: Any) -> None:
        child.send_signal(signum)

    previous = {signum: signal.signal(signum, pass_on) for signum in _FORWARDED_SIGNALS}
    # A no-op handler, not SIG_IGN: the child must not inherit an ignored Ctrl-C.
    previous[signal.SIGINT] = signal.signal(signal.SIGINT, lambda signum, frame: None)
    try:
        returncode = child.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
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
