"""Administration: API ``tokens``, ``targets`` profiles, the ``db`` schema."""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.table import Table

from hwsearch.errors import NotFoundError, SpecError
from hwsearch.service.cli.common import (
    DbOption,
    app,
    console,
    db_app,
    errors,
    open_store,
    reaching,
    user_errors,
)

tokens_app = typer.Typer(help="API tokens of the server.", no_args_is_help=True)
app.add_typer(tokens_app, name="tokens")


class Scope(StrEnum):
    read = "read"
    submit = "submit"
    admin = "admin"


@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Option(help="Who or what the token is for.")],
    scope: Annotated[
        Scope,
        typer.Option(
            help="read: queries; submit: also submit jobs and cancel its own; admin: also "
            "cancel anyone's."
        ),
    ] = Scope.submit,
    read_only: Annotated[bool, typer.Option(help="The same as --scope read.")] = False,
    db: DbOption = None,
) -> None:
    """Create an API token; its secret is printed once and stored only as a hash."""
    from hwsearch.records import TokenScope
    from hwsearch.service.api.auth import create_token

    with user_errors():
        if read_only and scope is not Scope.submit and scope is not Scope.read:
            raise SpecError("--read-only", f"contradicts --scope {scope.value}")
        scope = Scope.read if read_only else scope
        chosen = TokenScope(scope.value)
        secret, record = create_token(open_store(db, create=True), name, chosen)
        errors.print(f"token {record.id} ({record.name}, {record.scope.value}); keep it now:")
        sys.stdout.write(secret + "\n")


@tokens_app.command("list")
def tokens_list(db: DbOption = None) -> None:
    """List API tokens (never their secrets)."""
    with user_errors():
        table = Table("id", "name", "scope", "created", "revoked")
        for t in open_store(db).list_tokens():
            table.add_row(
                str(t.id),
                t.name,
                t.scope.value,
                t.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                "yes" if t.revoked else "",
            )
        console.print(table)


@tokens_app.command("revoke")
def tokens_revoke(
    token: Annotated[
        str, typer.Argument(metavar="ID_OR_NAME", help="The token's id, or its name if unique.")
    ],
    db: DbOption = None,
) -> None:
    """Revoke an API token (servers notice within their token cache time, 5 s unless
    `hwsearch serve --token-cache-s` says otherwise)."""
    with user_errors():
        store = open_store(db)
        record = store.revoke_token(_token_id(store, token))
        console.print(f"token {record.id} ({record.name}) revoked")


def _token_id(store: Any, token: str) -> int:
    """The id of the token named ``token`` (its id, or its name where one token has it)."""
    named = [t.id for t in store.list_tokens() if t.name == token and not t.revoked]
    if token.isascii() and token.isdigit():
        if any(i != int(token) for i in named):  # a name that reads as another's id
            raise NotFoundError(
                f"token {token!r}: both an id and the name of token(s) "
                f"{', '.join(map(str, named))}; hwsearch tokens list shows which is which"
            )
        return int(token)
    if len(named) != 1:
        reason = "no live token has that name" if not named else f"{len(named)} live tokens do"
        raise NotFoundError(f"token {token!r}: {reason}; give its id (hwsearch tokens list)")
    return named[0]


@app.command()
def targets(
    db: DbOption = None,
    sources: Annotated[bool, typer.Option(help="Show where each factor comes from.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the profiles as JSON.")] = False,
) -> None:
    """List the targets with their energy and carbon profiles.

    The devices of this machine (cpu, cuda:N) are added with their default profiles when
    missing; targets that jobs ran on are stored with the profile they ran with.
    """
    import json
    from dataclasses import asdict

    from hwsearch.hardware.carbon import GRID_INTENSITY
    from hwsearch.hardware.energy import meter_available
    from hwsearch.hardware.profiles import default_profile
    from hwsearch.hardware.targets import available_targets

    with user_errors():
        store = open_store(db, create=True)
        here = available_targets()
        for target in here:
            store.save_target(default_profile(target.name).to_dict(), replace=False)
        records = store.list_targets()
        local = {t.name: t for t in here}
        if json_out:
            data = [
                {
                    **asdict(r),
                    "created_at": r.created_at.isoformat(),
                    "updated_at": r.updated_at.isoformat(),
                }
                for r in records
            ]
            sys.stdout.write(json.dumps(data, indent=2) + "\n")
            return
        table = Table(title="Targets", box=None, pad_edge=False, header_style="bold underline")
        for name in ("name", "kind", "here"):
            table.add_column(name)
        for name in ("TDP W", "cores", "kgCO2e", "life/busy", "gCO2e/kWh", "PUE"):
            table.add_column(name, justify="right", min_width=len(name))
        table.add_column("meter", min_width=8)
        for r in records:
            grid = r.grid_gco2e_per_kwh
            if grid is None and r.region in GRID_INTENSITY:
                grid = GRID_INTENSITY[r.region].g_per_kwh
            device = local.get(r.name)
            meter = r.meter
            if device is not None and r.meter == "auto":
                counter = "nvml" if device.kind == "cuda" else "rapl"
                available = meter_available(counter, device_index=device.device_index)
                meter = counter if available else "estimate"
            table.add_row(
                r.name,
                r.kind,
                "yes" if device is not None else "no",
                f"{r.tdp_w:g}",
                str(r.cores),
                f"{r.embodied_kgco2e:g}",
                f"{r.lifetime_years:g}y/{r.busy_share:.0%}",
                f"{r.region} {'?' if grid is None else f'{grid:g}'}",
                f"{r.pue:g}",
                meter,
            )
        console.print(table)
        if sources:
            for r in records:
                console.print(f"[bold]{r.name}[/bold]")
                for factor, source in sorted(r.sources.items()):
                    console.print(f"  {factor}: {source}", highlight=False)


@db_app.command("upgrade")
def db_upgrade(db: DbOption = None) -> None:
    """Apply the schema migrations to the database."""
    from hwsearch.db.engine import current_revision, database_url, upgrade

    with user_errors():
        url = database_url(db)
        with reaching(url):
            upgrade(url)
            console.print(f"database at revision {current_revision(url)}")


@db_app.command("current")
def db_current(db: DbOption = None) -> None:
    """Print the schema revision of the database."""
    from hwsearch.db.engine import current_revision, database_url

    with user_errors():
        url = database_url(db)
        with reaching(url):
            console.print(str(current_revision(url)))
