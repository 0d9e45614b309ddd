"""`aifd cache stats|clear`: the file or Redis cache of CACHE_BACKEND, with or without a server.

The memory backend lives inside the running gateway: reach it through
`/admin/cache` instead (same figures, same filters).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.console import Console

if TYPE_CHECKING:
    from .guard import GuardedStore

cache_cli = typer.Typer(
    name="cache",
    help="The response cache on CACHE_BACKEND (SQLite or Redis; no server needed).",
    no_args_is_help=True,
)
_out = Console()
_err = Console(stderr=True)

Backend = Annotated[
    str | None, typer.Option("--backend", help="Cache backend. [default: CACHE_BACKEND]")
]
EnvFile = Annotated[Path | None, typer.Option(help="Read CACHE_BACKEND from this file.")]


def fail(message: str, code: int = 1) -> None:
    _err.print(f"[bold red]aifd cache:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


Work = Callable[["GuardedStore"], Awaitable[Any]]


def on_cache(backend: str | None, env_file: Path | None, work: Work) -> Any:
    from ..env import EnvReader, SettingsError
    from ..errors import GatewayError
    from ..settings import load_env
    from .guard import GuardedStore
    from .settings import read_cache_settings
    from .store import StoreUnavailable, open_store

    try:
        env = load_env(env_file)
        if backend is not None:
            env["CACHE_BACKEND"] = backend
        settings = read_cache_settings(EnvReader(env))
    except SettingsError as exc:
        fail(str(exc), 2)
    if settings.backend == "memory":
        fail(
            "CACHE_BACKEND is memory: its entries live inside the running gateway; use "
            "GET/DELETE /admin/cache there, or pass --backend sqlite:///... or redis://..."
        )

    async def run() -> Any:
        async with GuardedStore(open_store(settings)) as store:
            return await work(store)

    try:
        return asyncio.run(run())
    except (StoreUnavailable, OSError) as exc:
        fail(f"the cache backend is unreachable: {exc}")
    except GatewayError as exc:
        fail(exc.message, 2)


@cache_cli.command()
def stats(backend: Backend = None, env_file: EnvFile = None) -> None:
    """Entries and bytes held by the cache."""
    from .admin import report

    figures = on_cache(backend, env_file, report)
    shown = {k: figures[k] for k in ("backend", "entries", "bytes")}
    _out.print_json(orjson.dumps(shown).decode())


@cache_cli.command()
def clear(
    route: Annotated[str | None, typer.Option(help="Only entries of this route (name).")] = None,
    older_than: Annotated[
        str | None, typer.Option(help="Only entries older than this: 90s, 30m, 2h, 7d.")
    ] = None,
    backend: Backend = None,
    env_file: EnvFile = None,
) -> None:
    """Drop cached answers (all of them, unless filtered)."""
    from .admin import clear as clear_entries

    deleted = on_cache(backend, env_file, lambda store: clear_entries(store, route, older_than))
    _out.print_json(orjson.dumps({"deleted": deleted}).decode())
