"""The `rag` command line: the click group, its commands, and the `main` entry point.

The group reads the settings (defaults < rag.toml < RAG_* < --index-dir/--model) and
gathers the commands, which live by what users do with them: `rag.ui.commands_index`
(index, search, show, docs), `rag.ui.commands_ask` (ask, chat), `rag.ui.commands_eval`
(eval) and `rag.ui.commands_setup` (config, models, doctor). Each command parses its
flags, calls one core function and renders with rich; nothing here decides anything
about retrieval or answering, which lives in the core modules, reached through
`rag.answering.pipeline.Pipeline`. Heavy modules are imported inside the commands so
that `rag --help` starts instantly. `main` runs the commands that load llama.cpp in a
supervised child (`rag.ui.supervise`), and turns a `RagError` into one line on stderr
and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import click

from rag.errors import RagError
from rag.settings import Settings
from rag.text.sanitize import for_terminal
from rag.ui.commands_ask import ask_cmd, chat_cmd
from rag.ui.commands_eval import eval_cmd
from rag.ui.commands_index import docs_cmd, index_cmd, search_cmd, show_cmd
from rag.ui.commands_setup import config_cmd, doctor_cmd, models_group
from rag.ui.output import err_console
from rag.ui.render import error_line


@click.group(
    context_settings={"help_option_names": ["-h", "--help"]},
    # `rag --help` lists them by name, whatever the order here.
    commands=[
        config_cmd,
        index_cmd,
        search_cmd,
        show_cmd,
        docs_cmd,
        ask_cmd,
        chat_cmd,
        models_group,
        doctor_cmd,
        eval_cmd,
    ],
)
@click.option("--index-dir", type=click.Path(path_type=Path), help="Index directory (default: index/).")
@click.option("--model", "model", help="GGUF model: a known name or a path to a .gguf file.")
@click.version_option(package_name="rag")
@click.pass_context
def cli(ctx: click.Context, index_dir: Path | None, model: str | None) -> None:
    """Ask questions about a folder of news articles, offline, with cited answers.

    \b
    Quick start:
      rag index seeds/            build the index from the articles
      rag search "Tokajew Trump"  see the passages retrieval finds
      rag ask "Wann erkannte Kasachstan Israel an?"
      rag chat                    ask one question after another

    Settings come from defaults < rag.toml < RAG_* environment variables < flags;
    `rag config` shows the resolved values.
    """
    try:
        settings = Settings()
    except Exception as error:  # pydantic's ValidationError: one line, not a traceback
        raise RagError(f"Invalid settings (rag.toml or RAG_* variables): {_first_line(error)}") from error
    ctx.obj = {"settings": settings.with_overrides(index_dir=index_dir, model=model)}


def _first_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return " ".join(lines[:3])


# They load llama.cpp, so they run in a supervised child: a native crash becomes one line (rag.ui.supervise).
NATIVE_COMMANDS = frozenset({"ask", "chat", "eval"})


def _command_name(args: list[str]) -> str | None:
    """The subcommand named in `args`, skipping the group's own options (no click parsing)."""
    takes_value = {
        name
        for param in cli.params
        if isinstance(param, click.Option) and not param.is_flag
        for name in param.opts
    }
    remaining = iter(args)
    for arg in remaining:
        if arg in takes_value:
            next(remaining, None)
        elif not arg.startswith("-"):
            return arg
    return None


def main() -> None:
    """Entry point: run the CLI, turning domain errors and native crashes into one-line messages."""
    from rag.ui.supervise import enable_crash_log, run_supervised

    args = sys.argv[1:]
    command = _command_name(args)
    if command is not None and not {"-h", "--help"} & set(args):  # help stays as quick as it was
        ended = run_supervised(command) if command in NATIVE_COMMANDS else None
        if ended is not None:  # in the parent, after the child that ran the command
            code, message = ended
            if message:
                err_console.show_cursor(True)  # a spinner of the dead child may have hidden it
                err_console.print(error_line(message))
            sys.exit(code)
        enable_crash_log()
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        err_console.print("Aborted.")
        sys.exit(130)
    except click.ClickException as error:
        shown = io.StringIO()
        error.show(file=shown)
        sys.stderr.write(for_terminal(shown.getvalue()))  # it may quote what was typed
        sys.exit(error.exit_code)
    except RagError as error:
        err_console.print(error_line(error))
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        err_console.print("Interrupted.")
        sys.exit(130)
    except OSError as error:
        err_console.print(error_line(f"{error.strerror or error}: {error.filename or ''}"))
        sys.exit(1)
