"""What every command of the ``hwsearch`` command line shares: the app and its groups, the
consoles, the options, opening the store or a server client, and turning errors into exit
codes (2 for bad input, a refused value or a conflict; 1 otherwise)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from hwsearch.errors import FilterError, HwsearchError, SpecError, SpecErrors, StorageError

app = typer.Typer(
    name="hwsearch",
    help="Hardware-aware search of neural-network architectures and compression.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema commands.", no_args_is_help=True)
app.add_typer(db_app, name="db")

console = Console()
errors = Console(stderr=True)

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar="HWSEARCH_DB_URL",
        help="SQLAlchemy URL of the database (default: sqlite:///hwsearch.db here).",
    ),
]
ServerOption = Annotated[
    str | None,
    typer.Option(
        "--server",
        envvar="HWSEARCH_SERVER",
        help="URL of an hwsearch server to ask instead of the local database.",
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option("--token", envvar="HWSEARCH_TOKEN", help="API token for --server."),
]


def server_client(server: str, token: str | None) -> Any:
    from hwsearch.service.client import ServiceClient

    return ServiceClient(server, token)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn hwsearch errors into a message and an exit code: 2 for bad input, 1 otherwise."""
    try:
        yield
    except SpecErrors as exc:
        errors.print(f"[red]error:[/red] invalid job spec ({len(exc.errors)} problem(s))")
        for problem in exc.errors:
            errors.print(
                f"  [bold]{problem.field or '(spec)'}[/bold]: {problem.reason}", highlight=False
            )
        raise typer.Exit(2) from None
    except (SpecError, StorageError, FilterError) as exc:  # a conflict is a StorageError
        errors.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
    except HwsearchError as exc:
        errors.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None


def open_store(url: str | None, *, create: bool = False) -> Any:
    """The store at ``url``; only commands that write (``create``) may make a new database."""
    from sqlalchemy.engine import make_url

    from hwsearch.db import Store
    from hwsearch.db.engine import database_url

    resolved = database_url(url)
    parsed = make_url(resolved)
    shown = parsed.render_as_string(hide_password=True)
    is_file = parsed.get_backend_name() == "sqlite" and bool(parsed.database)
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise HwsearchError(
            f"{shown} is an in-memory database: what a command stores there is gone when it "
            "ends; name a file, e.g. --db sqlite:///hwsearch.db"
        )
    if not create and is_file and not Path(str(parsed.database)).exists():
        raise HwsearchError(
            f"no database at {shown}; run a job first, or name one with --db or HWSEARCH_DB_URL"
        )
    with reaching(resolved):
        return Store.open(resolved)


@contextmanager
def reaching(url: str) -> Iterator[None]:
    """The database's errors on ``url`` as one line, ``cannot open database URL: reason``
    (a missing database, a refused port), not a traceback."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    try:
        yield
    except SQLAlchemyError as exc:
        shown = make_url(url).render_as_string(hide_password=True)
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise HwsearchError(f"cannot open database {shown}: {reason}") from None


class Executor(StrEnum):
    local = "local"
    pool = "pool"
    ray = "ray"


OutOption = Annotated[
    Path | None, typer.Option(help="Folder for the front CSV and plot (default runs/job-ID).")
]
ExecutorOption = Annotated[Executor, typer.Option(help="Where candidates are evaluated.")]
RunExecutorOption = Annotated[
    Executor | None,
    typer.Option(
        "--executor",
        help="Where candidates are evaluated (default: the spec's executor.type, else local).",
    ),
]
ExecutorSettingOption = Annotated[
    list[str] | None,
    typer.Option(
        "--executor-setting",
        help="A field of the spec's executor section, KEY=VALUE with a YAML value, over the "
        "spec's (repeatable), e.g. 'resources={hwsearch_worker: 1}' or num_gpus=0.25.",
    ),
]


def executor_settings(pairs: list[str] | None) -> dict[str, Any]:
    """``KEY=VALUE`` pairs (YAML values) as executor settings; bad ones name the option."""
    import yaml

    settings: dict[str, Any] = {}
    for pair in pairs or ():
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise SpecError("--executor-setting", f"expected KEY=VALUE, got {pair!r}")
        try:
            settings[key.strip()] = yaml.safe_load(text)
        except yaml.YAMLError:
            raise SpecError(f"--executor-setting {key.strip()}", "not a YAML value") from None
    return settings


WorkersOption = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="Workers of the pool executor (default 2); for ray, most tasks at once "
        "(default: every CPU of the cluster).",
    ),
]
PluginOption = Annotated[
    list[str] | None,
    typer.Option(
        "--plugin",
        help="Module (pkg.mod or pkg.mod:func) to import first, registering families, "
        "evaluation kinds, targets, metrics or optimizers (repeatable); installed "
        "'hwsearch.plugins' entry points are loaded too.",
    ),
]


def import_plugins(names: list[str] | None) -> None:
    from hwsearch.plugins import load_plugins

    load_plugins(names or ())


AddressOption = Annotated[
    str | None,
    typer.Option(
        help="Ray cluster to connect to, e.g. ray://head:10001 or auto (ray executor; "
        "default: RAY_ADDRESS, else a new local Ray).",
    ),
]
NoReuseOption = Annotated[
    bool,
    typer.Option(
        "--no-reuse",
        help="Measure every candidate, even one another job measured under the same "
        "settings (as 'reuse: false' in the spec).",
    ),
]
WideOption = Annotated[
    bool,
    typer.Option("--wide", help="Show each point's whole config, not a short summary."),
]


def evaluated(job: Any, budget: int | None = None) -> str:
    """``12/48 evaluated, 2 failed``: done candidates (of the budget where given) and, if
    any, the failed ones, which the budget counts too."""
    done = f"{job.evaluations}/{budget}" if isinstance(budget, int) else str(job.evaluations)
    return f"{done} evaluated" + (f", {job.failed} failed" if job.failed else "")
