"""The flags several commands of `rag` share, and what the commands build from their flags.

`filter_options` adds the metadata filters of `rag search` and `rag ask`;
`server_options` adds --chroma-url (and --llm-url, --llm-model) and applies them to
the settings before the command runs. `settings_from` puts a command's flags over
the group's settings, `search_filters` checks and collects the filter flags, and
`pipeline_for` opens the library's `Pipeline`, imported only when a command runs so
that `rag --help` starts instantly. Left out: the commands themselves (`rag.ui.cli`
and the `rag.ui.commands_*` modules) and every decision about retrieval and answering.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from rag.errors import InputError
from rag.settings import Settings
from rag.types import SearchFilters

if TYPE_CHECKING:
    from rag.answering.pipeline import Pipeline


def settings_from(ctx: click.Context, **overrides: Any) -> Settings:
    """The group's settings (defaults < rag.toml < RAG_* < its flags) with this command's flags over them."""
    base: Settings = ctx.obj["settings"]
    return base.with_overrides(**overrides)


def pipeline_for(settings: Settings) -> Pipeline:
    """The library's one entry point for these settings, imported only when a command runs."""
    from rag.answering.pipeline import Pipeline

    return Pipeline(settings)


def search_filters(
    settings: Settings, source: tuple[str, ...], outlet: str | None, since: str | None, until: str | None
) -> SearchFilters:
    """The filter flags as `SearchFilters`; an invalid date is an InputError."""
    from rag.index.store import date_number

    for day in (since, until):
        if day:
            date_number(day)  # an invalid date is an error, not a filter that matches nothing
    return SearchFilters(
        sources=source,
        outlet=outlet,
        date_from=since,
        date_to=until,
        include_comments=settings.include_comments,
    )


def filter_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The metadata filter flags shared by `search` and `ask`."""
    options = [
        click.option("--source", multiple=True, help="Only this source file (repeatable)."),
        click.option("--outlet", help="Only articles from this outlet."),
        click.option("--since", help="Only articles dated on or after YYYY-MM-DD."),
        click.option("--until", help="Only articles dated on or before YYYY-MM-DD."),
        click.option("--include-comments", is_flag=True, default=None, help="Also use reader comments."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def server_options(uses_model: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--chroma-url, and with `uses_model` --llm-url and --llm-model: servers instead of in-process.

    They override the settings before the command runs; the model server's API key is read
    from RAG_LLM_API_KEY only, never from a flag (it would show in `ps` and shell history).
    """

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(command)
        def with_servers(*args: Any, chroma_url: str | None, **kwargs: Any) -> Any:
            from pydantic import ValidationError

            servers = {"chroma_url": chroma_url}
            if uses_model:
                servers.update(llm_url=kwargs.pop("llm_url"), llm_model=kwargs.pop("llm_model"))
            context = click.get_current_context()
            try:
                context.obj["settings"] = context.obj["settings"].with_overrides(**servers)
            except ValidationError as error:  # one line, not a traceback
                reason = "; ".join(problem["msg"].removeprefix("Value error, ") for problem in error.errors())
                raise InputError(f"Invalid server address: {reason}") from None
            return command(*args, **kwargs)

        options = [
            click.option("--chroma-url", help="Use the vectors on this Chroma server (http://host:port).")
        ]
        if uses_model:
            options += [
                click.option("--llm-url", help="Send model calls to this OpenAI-compatible server (…/v1)."),
                click.option("--llm-model", help="Model name at --llm-url (default: the first it lists)."),
            ]
        for option in reversed(options):
            with_servers = option(with_servers)
        return with_servers

    return decorate
