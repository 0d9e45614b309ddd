"""The `aifd` command: parse arguments, build Settings, hand over to the package.

Only what a command needs is imported when it runs: `aifd --help`, `aifd users`
and `aifd convert` never import the server.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from .cache.cli import cache_cli
from .env import SettingsError
from .settings_doc import settings_help
from .users.cli import users_cli

if TYPE_CHECKING:
    from .settings import Settings

cli = typer.Typer(
    name="aifd",
    help="ai-forward: an LLM API gateway for OpenAI-style clients.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
)
_err = Console(stderr=True)
cli.add_typer(users_cli)
cli.add_typer(cache_cli)


@cli.callback()
def _commands() -> None:
    """ai-forward: an LLM API gateway for OpenAI-style clients."""


def fail(message: str, code: int = 2) -> None:
    _err.print(f"[bold red]aifd:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@cli.command(epilog=settings_help())
def run(
    host: Annotated[
        str | None, typer.Option(help="Address to bind (HOST). [default: 0.0.0.0]")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to listen on (PORT). [default: 8000]")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes (WORKERS). [default: 1]")
    ] = None,
    env_file: Annotated[
        Path | None, typer.Option(help="Read settings from this file. [default: ./.env]")
    ] = None,
    log_chat: Annotated[
        bool, typer.Option("--log-chat", "--log_chat", help="Record chats (LOG_CHAT=true).")
    ] = False,
) -> None:
    """Serve the gateway. Settings come from the environment and `.env`; flags win."""
    from .settings import Settings, load_env

    try:
        env = load_env(env_file)
        for name, value in (("HOST", host), ("PORT", port), ("WORKERS", workers)):
            if value is not None:
                env[name] = str(value)
        if log_chat:
            env["LOG_CHAT"] = "true"
        settings = Settings.from_env(env)
    except SettingsError as exc:
        fail(str(exc))
        return
    problem = settings.open_access_problem()
    if problem:
        fail(problem, code=1)
    serve(settings, env)


@cli.command()
def convert(
    log_dir: Annotated[
        Path, typer.Argument(help="The LOG_DIR the gateway wrote to (or one .jsonl file).")
    ] = Path("Log"),
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Where to write the JSON array (- for stdout).")
    ] = Path("chat.json"),
    route: Annotated[str | None, typer.Option(help="Only this route (its name).")] = None,
    since: Annotated[
        str | None, typer.Option(help="Only exchanges from then on: 2024-05-01T13:00 or 2h.")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Only exchanges before then.")] = None,
) -> None:
    """Turn the chat logs into one JSON array of exchanges, oldest first."""
    from .chatlog.convert import ConvertError, summary
    from .chatlog.convert import convert as run_convert

    try:
        result = run_convert(log_dir, output, route=route, since=since, until=until, console=_err)
    except ConvertError as exc:
        fail(str(exc))
        return
    except OSError as exc:
        fail(f"{exc.filename or log_dir}: {exc.strerror or exc}")
        return
    _err.print(summary(result, output), highlight=False, soft_wrap=True)


def serve(settings: Settings, env: dict[str, str]) -> None:
    import uvicorn

    options: dict[str, object] = {
        "host": settings.host,
        "port": settings.port,
        "access_log": False,
        "proxy_headers": False,
        "server_header": False,
        "date_header": False,
        "log_level": "info",
        "timeout_keep_alive": 30,
        # On SIGTERM: stop accepting, let in-flight requests and streams finish, then close.
        "timeout_graceful_shutdown": settings.resilience.shutdown_grace,
    }
    # uvicorn re-raises the signal that stopped it once it has drained; a stop we asked
    # for is a clean exit, so the re-raised signal lands on a handler that does nothing.
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, lambda *_: None)
    if settings.workers > 1:
        # Workers are fresh processes: they rebuild the same settings from this environment.
        os.environ.update(env)
        uvicorn.run("ai_forward.app:create_app", factory=True, workers=settings.workers, **options)  # type: ignore[arg-type]
    else:
        from .app import create_app

        uvicorn.run(create_app(settings), **options)  # type: ignore[arg-type]


def main() -> None:
    cli(args=compatible_args(sys.argv[1:]), prog_name="aifd")


def compatible_args(args: list[str]) -> list[str]:
    """openai-forward's `--log_chat=true` spelling, as a flag (`--log_chat=false`: dropped)."""
    out: list[str] = []
    for arg in args:
        name, equals, value = arg.partition("=")
        if equals and name in ("--log_chat", "--log-chat"):
            if value.strip().lower() in ("1", "true", "yes", "on"):
                out.append("--log-chat")
            continue
        out.append(arg)
    return out


if __name__ == "__main__":
    main()
