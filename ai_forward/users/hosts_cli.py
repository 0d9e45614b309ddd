"""`aifd hosts ...`: the hosts X-Host-Final may name, added at run time, on STORE_URL.

The same table as `/admin/hosts` (see `hosts.py`): running servers pick a change up
at once on Redis, within about a second on SQLite.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.table import Table

from ..env import EnvReader, SettingsError
from ..providers.settings import read_hosts
from ..settings import load_env
from .cli import EnvFile, Json, Store, fail, on_store
from .hosts import HostFieldError, checked_host
from .store import RuntimeHost, UserStore

hosts_cli = typer.Typer(
    name="hosts",
    help="Hosts X-Host-Final may name, with their keys, added without a restart.",
    no_args_is_help=True,
)
_out = Console()

Keys = Annotated[
    list[str],
    typer.Argument(help="The host's real keys; '-' reads them from stdin, one a line."),
]


def configured(env_file: Path | None) -> set[str]:
    try:
        return {h.host for h in read_hosts(EnvReader(load_env(env_file)))}
    except SettingsError:
        return set()


@hosts_cli.command()
def add(
    host: str, keys: Keys, store: Store = None, env_file: EnvFile = None, json: Json = False
) -> None:
    """Add a host (api.groq.com, or https://host:port) with its keys, or replace its keys."""
    if keys == ["-"]:
        keys = [line.strip() for line in sys.stdin if line.strip()]
    try:
        entry = checked_host({"host": host, "keys": keys}, configured(env_file))
    except HostFieldError as exc:
        fail(f"{'HOST' if exc.field == 'host' else 'KEYS'}: {exc.message}", code=2)
        raise

    async def work(s: UserStore) -> RuntimeHost:
        await s.set_host(entry)
        return entry

    show(on_store(store, env_file, work), json)


@hosts_cli.command("list")
def list_hosts(store: Store = None, env_file: EnvFile = None, json: Json = False) -> None:
    """List the runtime hosts (each key only as its last characters)."""
    hosts = on_store(store, env_file, lambda s: s.hosts())
    if json:
        print(orjson.dumps([h.public() for h in hosts]).decode())
        return
    table = Table("host", "base URL", "keys", "added")
    for h in hosts:
        p = h.public()
        table.add_row(p["host"], p["base_url"], ", ".join(p["keys"]), p["added_at"])
    _out.print(table)


@hosts_cli.command()
def remove(host: str, store: Store = None, env_file: EnvFile = None) -> None:
    """Remove a runtime host; requests naming it are refused from then on."""
    name = host.strip().lower()
    if not on_store(store, env_file, lambda s: s.remove_host(name)):
        fail(f"no runtime host {name!r}; aifd hosts list shows them")
    _out.print(f"removed {name}", highlight=False)


def show(host: RuntimeHost, json: bool) -> None:
    if json:
        print(orjson.dumps(host.public()).decode())
    else:
        p = host.public()
        _out.print(f"{p['host']} -> {p['base_url']}, keys {', '.join(p['keys'])}", highlight=False)
