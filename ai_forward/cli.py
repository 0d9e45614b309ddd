"""The `aifd` command: parse arguments, build Settings, hand over to the package.

Only what a command needs is imported when it runs: `aifd --help`, `aifd users`
and `aifd convert` never import the server.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from .cache.cli import cache_cli
from .compat.report import meaning_notes, unknown_settings
from .env import SettingsError
from .preflight import example_secrets, inline_comments
from .settings import HOST, PORT, WORKERS, Settings, env_file_names, load_env
from .settings_doc import KNOWN, SETTINGS, settings_help
from .users.cli import users_cli
from .users.hosts_cli import hosts_cli

cli = typer.Typer(
    name="aifd",
    help="ai-forward: an LLM API gateway for OpenAI-style clients.",
    no_args_is_help=True,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode="markdown",
    # A traceback with local variables would print the settings, real keys included.
    pretty_exceptions_show_locals=False,
)
_err = Console(stderr=True)
cli.add_typer(users_cli)
cli.add_typer(hosts_cli)
cli.add_typer(cache_cli)


def show_version(value: bool) -> None:
    if value:
        from . import __version__

        print(f"aifd {__version__}")
        raise typer.Exit()


@cli.callback()
def _commands(
    version: Annotated[
        bool,
        typer.Option(
            "--version", "-V", callback=show_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """ai-forward: an LLM API gateway for OpenAI-style clients."""


def fail(message: str, code: int = 2) -> None:
    _err.print(f"[bold red]aifd:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def warn(message: str) -> None:
    _err.print(f"[bold yellow]aifd: warning:[/] {message}", highlight=False, soft_wrap=True)


@cli.command(epilog=settings_help())
def run(
    host: Annotated[
        str | None, typer.Option(help=f"Address to bind (HOST). [default: {HOST.default}]")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help=f"Port to listen on (PORT). [default: {PORT.default}]")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help=f"Worker processes (WORKERS). [default: {WORKERS.default}]")
    ] = None,
    env_file: Annotated[
        Path | None, typer.Option(help="Read settings from this file. [default: ./.env]")
    ] = None,
    log_chat: Annotated[
        bool, typer.Option("--log-chat", "--log_chat", help="Record chats (LOG_CHAT=true).")
    ] = False,
) -> None:
    """Serve the gateway. Settings come from the environment and `.env`; flags win."""
    try:
        env = load_env(env_file)
        for name, value in (("HOST", host), ("PORT", port), ("WORKERS", workers)):
            if value is not None:
                env[name] = str(value)
        if log_chat:
            env["LOG_CHAT"] = "true"
        for warning in inline_comments(env, tuple(name for name, _, _ in SETTINGS)):
            warn(warning)
        settings = Settings.from_env(env)
    except SettingsError as exc:
        for warning in unknown_settings(env, env_file_names(env_file), KNOWN):
            warn(warning)
        fail(str(exc).replace("\n", "\n  "))
        return
    for warning in unknown_settings(env, env_file_names(env_file), KNOWN):
        warn(warning)
    for note in meaning_notes(settings, env):
        warn(note)
    checked = example_secrets(env, settings.host)
    for warning in checked.warnings:
        warn(warning)
    if checked.problem:
        fail(checked.problem)
    problem = settings.open_access_problem()
    if problem:
        fail(problem, code=1)
    notice = relay_only_notice(settings, env_file or Path(".env"))
    if notice:
        _err.print(notice, highlight=False, soft_wrap=True, markup=False)
    serve(settings, env)


def relay_only_notice(settings: Settings, env_file: Path) -> str | None:
    """What `aifd run` does with no keys configured, and how to configure it; else None."""
    if settings.forward_keys or settings.users.admin_token:
        return None
    if any(route.keys for route in settings.routes):
        return None
    where = env_file.resolve()
    found = f"{where} sets no keys" if where.is_file() else f"no {where}"
    upstreams = ", ".join(f"{r.prefix} -> {r.base_url}" for r in settings.routes)
    return (
        f"aifd: relay mode ({found}, and no keys in the environment): every request goes to "
        f"its upstream ({upstreams}) with the client's own key passed on unchanged; no keys "
        f"are swapped.\n"
        f"To give clients a key of yours instead of a real one: copy .env.example (in the "
        f"repository) to {where} or pass --env-file, and set OPENAI_API_KEY (your real keys) "
        f"and FORWARD_KEY (what clients send). `aifd run --help` lists every setting."
    )


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

    from .ops import logs

    writer = logs.writer_for(settings)
    logs.install(settings.ops, writer)  # loguru, in LOG_FORMAT, tracebacks without locals
    options: dict[str, object] = {
        "host": settings.host,
        "port": settings.port,
        "access_log": False,
        "proxy_headers": False,
        "server_header": False,
        "date_header": False,
        "log_level": settings.ops.log_level.lower(),
        "log_config": logs.uvicorn_log_config(settings.ops),
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
        with metrics_dir(settings):
            uvicorn.run(
                "ai_forward.ops.logs:served_app",
                factory=True,
                workers=settings.workers,
                **options,  # type: ignore[arg-type]
            )
    else:
        from .app import create_app

        # A start-up failure (unwritable LOG_DIR, unreachable store) is reported like a
        # bad setting: one line and the same exit code.
        failures: list[str] = []
        try:
            uvicorn.run(create_app(settings, failures.append, writer), **options)  # type: ignore[arg-type]
        except SystemExit:
            if not failures:
                raise
        if failures:
            fail(failures[0])


@contextlib.contextmanager
def metrics_dir(settings: Settings) -> Iterator[None]:
    """A directory where the workers publish their metrics, removed when they are done."""
    if not settings.ops.metrics:
        yield
        return
    from .ops.workers import METRICS_DIR_ENV

    where = tempfile.mkdtemp(prefix="aifd-metrics-")
    os.environ[METRICS_DIR_ENV] = where
    try:
        yield
    finally:
        os.environ.pop(METRICS_DIR_ENV, None)
        shutil.rmtree(where, ignore_errors=True)


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
