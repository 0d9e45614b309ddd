"""`aifd users ...`: manage users and keys on the store directly, with or without a server.

Works on the same STORE_URL as `aifd run` (from the environment, `.env` or
--store). On Redis, a reset or delete is announced to running instances at
once; on SQLite they notice within about a second.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import orjson
import typer
from rich.console import Console
from rich.table import Table

from ..env import EnvReader, SettingsError
from ..settings import load_env, read_routes
from . import accounts
from .settings import check_store_url, read_store_url
from .store import UserStore, open_store
from .user import FieldError, User, check_fields, iso, new_key

T = TypeVar("T")
users_cli = typer.Typer(
    name="users",
    help="Users and their issued keys, on STORE_URL (no server needed).",
    no_args_is_help=True,
)
_out = Console()
_err = Console(stderr=True)
_OPTION = {"rpm": "--rpm", "tpm": "--tpm", "models": "--models", "routes": "--routes"}
_OPTION |= {"expires_at": "--expires", "name": "NAME"}

Store = Annotated[
    str | None, typer.Option("--store", help="Store URL. [default: STORE_URL, sqlite:///aifd.db]")
]
EnvFile = Annotated[Path | None, typer.Option(help="Read STORE_URL from this file.")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
Rpm = Annotated[str | None, typer.Option(help="Requests per minute, or 'none' for the global.")]
Tpm = Annotated[str | None, typer.Option(help="Tokens per minute, or 'none' for the global.")]
Models = Annotated[
    str | None, typer.Option(help="Allowed models, comma-separated (gpt-4o*, ...); '' = all.")
]
Routes = Annotated[
    str | None, typer.Option(help="Allowed route prefixes, comma-separated; '' = all.")
]
Expires = Annotated[
    str | None,
    typer.Option(
        help="Expiry: ISO 8601 time (UTC unless given); a date alone lasts to the end of that"
        " UTC day; 'never' (or 'none', 'null') for no expiry."
    ),
]
# What the CLI reads as JSON's null: no limit of its own, no expiry.
NO_VALUE = ("none", "null", "never")
Since = Annotated[str | None, typer.Option(help="First day, YYYY-MM-DD. [default: 30 days ago]")]


def fail(message: str, code: int = 1) -> None:
    _err.print(f"[bold red]aifd users:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def on_store(
    store_url: str | None, env_file: Path | None, work: Callable[[UserStore], Awaitable[T]]
) -> T:
    """Open the store, run `work` on it, close it."""
    try:
        env = load_env(env_file)
        url = check_store_url("--store", store_url) if store_url else read_store_url(EnvReader(env))
    except SettingsError as exc:
        fail(str(exc), code=2)
        raise

    async def run() -> T:
        async with open_store(url) as store:
            return await work(store)

    import asyncio  # here, not at the top: `aifd --help` has no use for it

    return asyncio.run(run())


def fields_of(env_file: Path | None, partial: bool, **options: str | None) -> dict[str, Any]:
    """CLI options -> checked user fields (the same checks as the admin API)."""
    data: dict[str, Any] = {}
    for limit in ("rpm", "tpm"):
        value = options.get(limit)
        if value is not None:
            data[limit] = None if value.strip().lower() in NO_VALUE else int_or_text(value)
    for listed in ("models", "routes"):
        value = options.get(listed)
        if value is not None:
            data[listed] = [v.strip() for v in value.split(",") if v.strip()]
    expires = options.get("expires")
    if expires is not None:
        data["expires_at"] = None if expires.strip().lower() in NO_VALUE else expires
    if not partial:
        data["name"] = options.get("name")
    try:
        fields = check_fields(data, partial=partial)
    except FieldError as exc:
        fail(f"{_OPTION.get(exc.field, exc.field)}: {exc.message}", code=2)
        raise
    check_routes(env_file, fields.get("routes", ()))
    return fields


def int_or_text(value: str) -> int | str:
    return int(value) if value.strip().lstrip("-").isdigit() else value


def check_routes(env_file: Path | None, routes: tuple[str, ...]) -> None:
    try:
        known = [r.prefix for r in read_routes(EnvReader(load_env(env_file)))]
    except SettingsError:
        return  # the server's settings are not readable here: it checks nothing else either
    for route in routes:
        if route not in known:
            fail(f"--routes: {route!r} is not a route prefix here; known: {', '.join(known)}", 2)


@users_cli.command()
def add(
    name: str,
    rpm: Rpm = None,
    tpm: Tpm = None,
    models: Models = None,
    routes: Routes = None,
    expires: Expires = None,
    store: Store = None,
    env_file: EnvFile = None,
    json: Json = False,
) -> None:
    """Create a user and print its key (shown this once)."""
    options = {"name": name, "rpm": rpm, "tpm": tpm, "models": models, "routes": routes}
    fields = fields_of(env_file, False, expires=expires, **options)

    async def work(s: UserStore) -> tuple[User, str]:
        try:
            return await accounts.create(s, fields)
        except accounts.NameTaken:
            fail(f"a user named {name!r} exists already (aifd users reset {name} for a new key)")
            raise

    user, key = on_store(store, env_file, work)
    show_user(user, json, key=key)


@users_cli.command("list")
def list_users(store: Store = None, env_file: EnvFile = None, json: Json = False) -> None:
    """List users (no keys: only their last characters)."""
    users = on_store(store, env_file, lambda s: s.users())
    if json:
        print(orjson.dumps([u.public() for u in users]).decode())
        return
    table = Table("name", "key", "rpm", "tpm", "models", "routes", "expires", "created")
    for u in users:
        p = u.public()
        table.add_row(
            *(cell(p[f]) for f in ("name", "key_hint", "rpm", "tpm", "models")),
            *(cell(p[f]) for f in ("routes", "expires_at", "created_at")),
        )
    _out.print(table)


@users_cli.command()
def show(
    name: str,
    since: Since = None,
    store: Store = None,
    env_file: EnvFile = None,
    json: Json = False,
) -> None:
    """One user and its usage."""
    first = since_day(since)

    async def work(s: UserStore) -> tuple[User | None, list[Any]]:
        return await s.get(name), await s.usage(first, name)

    user, rows = on_store(store, env_file, work)
    if user is None:
        fail(f"no user named {name!r} (aifd users list)")
        return
    if json:
        print(orjson.dumps({**user.public(), "usage": [r.public() for r in rows]}).decode())
        return
    show_user(user, False)
    show_usage(rows)


@users_cli.command("set")
def set_user(
    name: str,
    rpm: Rpm = None,
    tpm: Tpm = None,
    models: Models = None,
    routes: Routes = None,
    expires: Expires = None,
    store: Store = None,
    env_file: EnvFile = None,
    json: Json = False,
) -> None:
    """Change a user's limits, models, routes or expiry (the key stays)."""
    options = {"rpm": rpm, "tpm": tpm, "models": models, "routes": routes}
    fields = fields_of(env_file, True, expires=expires, **options)
    if not fields:
        fail("nothing to change: give --rpm, --tpm, --models, --routes or --expires", code=2)
    user = on_store(
        store, env_file, lambda s: change(s, name, lambda u: dataclasses.replace(u, **fields))
    )
    show_user(user, json)


@users_cli.command()
def reset(name: str, store: Store = None, env_file: EnvFile = None, json: Json = False) -> None:
    """Issue a new key; the old one stops working."""
    key = new_key()
    user = on_store(store, env_file, lambda s: change(s, name, lambda u: accounts.with_key(u, key)))
    show_user(user, json, key=key)


@users_cli.command()
def delete(name: str, store: Store = None, env_file: EnvFile = None, json: Json = False) -> None:
    """Delete a user; its key stops working (its usage history stays)."""
    gone = on_store(store, env_file, lambda s: s.delete(name))
    if gone is None:
        fail(f"no user named {name!r} (aifd users list)")
    if json:
        print(orjson.dumps({"name": name, "deleted": True}).decode())
    else:
        _out.print(f"deleted {name}")


@users_cli.command()
def usage(
    name: Annotated[str | None, typer.Argument(help="One user; all when omitted.")] = None,
    since: Since = None,
    store: Store = None,
    env_file: EnvFile = None,
    json: Json = False,
) -> None:
    """Requests and tokens per day and model."""
    first = since_day(since)
    rows = on_store(store, env_file, lambda s: s.usage(first, name))
    if json:
        print(orjson.dumps([r.public() for r in rows]).decode())
    else:
        show_usage(rows)


async def change(store: UserStore, name: str, edit: Callable[[User], User]) -> User:
    try:
        return await accounts.change(store, name, edit)
    except accounts.NoSuchUser as exc:
        if not exc.meanwhile:
            fail(f"no user named {name!r} (aifd users list)")
        fail(f"user {name!r} changed or was deleted meanwhile; try again")
    except accounts.ChangedMeanwhile:
        fail(f"user {name!r} changed or was deleted meanwhile; try again")
    raise AssertionError("fail() exits")


def since_day(since: str | None) -> str:
    try:
        return accounts.usage_since(since)
    except ValueError:
        fail(f"--since {since!r}: expected a date YYYY-MM-DD", code=2)
        raise


def show_user(user: User, json: bool, key: str | None = None) -> None:
    public = user.public() | ({"key": key} if key else {})
    if json:
        print(orjson.dumps(public).decode())
        return
    table = Table(show_header=False, box=None)
    for field, value in public.items():
        if field != "key":
            table.add_row(field, cell(value))
    _out.print(table)
    if key:
        _out.print("key (shown once, keep it):", style="bold")
        print(key)


def show_usage(rows: list[Any]) -> None:
    table = Table("day", "user", "model", "requests", "prompt", "completion", "total")
    for r in rows:
        p = r.public()
        table.add_row(
            p["day"],
            p["user"],
            p["model"],
            *(
                str(p[f])
                for f in ("requests", "prompt_tokens", "completion_tokens", "total_tokens")
            ),
        )
    _out.print(table)


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(value) or "all"
    return str(value)


__all__ = ["iso", "users_cli"]
