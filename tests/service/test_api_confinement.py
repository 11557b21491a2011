"""Table files named by a submitted spec, in any section, are resolved and then confined to
the server's ``--tables`` folders; nothing outside is read or quoted."""

from __future__ import annotations

import os
import resource
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hwsearch.db import Store
from hwsearch.service.api import ServiceSettings

ARCH = "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|"
SECRET = "s3cret-77aa1"


@pytest.fixture(scope="module")
def confined(
    tmp_path_factory: pytest.TempPathFactory, serve_store: Any
) -> Iterator[tuple[Any, Path, Path]]:
    """A server reading tables from ``tables/`` only, a secret file beside the folder."""
    folder = tmp_path_factory.mktemp("confined")
    tables = folder / "tables"
    tables.mkdir()
    (tables / "latency.csv").write_text(f"arch,pixel3\n{ARCH},12.5\n")
    secret = folder / "secret.csv"
    secret.write_text(f"arch,pixel3,{SECRET}\n{ARCH},1.0,{SECRET}\n")
    (tables / "link.csv").symlink_to(secret)
    (tables / "zero.csv").symlink_to("/dev/zero")
    os.mkfifo(tables / "fifo.csv")
    (tables / "folder.csv").mkdir()
    os.environ["HWSEARCH_TEST_MARKER"] = SECRET  # must never come back in an answer
    store = Store.open(f"sqlite:///{folder / 'confined.db'}")
    settings = ServiceSettings(run_jobs=False, table_roots=(tables,))
    with serve_store(store, settings) as server:
        yield server, tables, secret
    store.close()
    os.environ.pop("HWSEARCH_TEST_MARKER")


def _spec(table: str, **changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "family": "nb201",
        "target": {"name": "pixel3", "table": "latency.csv"},
        "space": {"ops": {"type": "choice", "values": ["none", "nor_conv_3x3"], "per_layer": 6}},
        "objectives": [
            {"metric": "latency_ms", "direction": "minimize"},
            {"metric": "accuracy", "direction": "maximize"},
        ],
        "budget": {"evaluations": 2},
        "evaluation": {"type": "table", "table": table, "column": "pixel3"},
    }
    spec.update(changes)
    return spec


def _refused(server: Any, spec: dict[str, Any]) -> dict[str, str]:
    with server.client() as client:
        response = client.post("/jobs", json={"spec": spec})
    assert response.status_code == 422, response.text
    assert SECRET not in response.text and "PATH=" not in response.text
    return {e["field"]: e["reason"] for e in response.json()["errors"]}


@pytest.mark.parametrize(
    "given",
    ["/proc/self/environ", "../secret.csv", "~/../../../../../..{secret}", "{secret}", "link.csv"],
)
def test_prior_tables_outside_the_folders_are_refused(
    confined: tuple[Any, Path, Path], given: str
) -> None:
    server, _, secret = confined
    table = given.format(secret=secret)
    spec = _spec("latency.csv", name="prior-outside", prior={"tables": [{"table": table}]})
    found = _refused(server, spec)
    assert "outside the server's table folders" in found["prior.tables[0].table"]
    assert not [j for j in server.store.list_jobs() if j.name == "prior-outside"]


@pytest.mark.parametrize("section", ["target", "evaluation", "measurement"])
def test_every_section_is_confined_after_resolving(
    confined: tuple[Any, Path, Path], section: str
) -> None:
    server, _, secret = confined
    home_relative = "~/" + os.path.relpath(secret, os.path.expanduser("~"))
    spec = _spec("latency.csv")
    if section == "target":
        spec["target"] = {"name": "pixel3", "table": home_relative}
    elif section == "evaluation":
        spec["evaluation"]["table"] = home_relative
    else:
        spec["target"] = "cpu"
        spec["measurement"] = {"type": "table", "table": home_relative, "column": "pixel3"}
    found = _refused(server, spec)
    assert any("outside the server's table folders" in r for r in found.values()), found


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("zero.csv", "outside the server's table folders"),  # a link to /dev/zero
        ("fifo.csv", "not a regular file"),
        ("folder.csv", "is a folder"),
        ("missing.csv", "does not exist"),
    ],
)
def test_only_regular_files_inside_are_read(
    confined: tuple[Any, Path, Path], name: str, reason: str
) -> None:
    server, _, _ = confined
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    found = _refused(server, _spec(name))
    assert reason in found["evaluation.table"]
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50 << 10  # < 50 MB


def test_a_table_over_the_size_cap_is_refused(
    confined: tuple[Any, Path, Path], monkeypatch: Any
) -> None:
    server, tables, _ = confined
    monkeypatch.setenv("HWSEARCH_MAX_FILE_BYTES", "16")
    found = _refused(server, _spec("latency.csv"))
    assert "more than the 16 bytes a file may have" in found["evaluation.table"]
    assert str(tables / "latency.csv") in found["evaluation.table"]


def test_a_table_inside_is_accepted_with_its_resolved_path(
    confined: tuple[Any, Path, Path],
) -> None:
    server, tables, _ = confined
    spec = _spec("sub/../latency.csv")
    spec["objectives"] = spec["objectives"][:1]
    spec["evaluation"] = {"type": "table", "table": "latency.csv", "column": "pixel3"}
    (tables / "sub").mkdir(exist_ok=True)
    with server.client() as client:
        response = client.post("/jobs", json={"spec": spec})
    assert response.status_code == 202, response.text
    stored = server.store.get_job(response.json()["id"]).spec
    assert stored["evaluation"]["table"] == str(tables / "latency.csv")


@pytest.mark.parametrize(
    "changes",
    [
        {"family": {"model": "marker_module:build", "input_shape": [8]}},
        {"evaluation": {"type": "python", "evaluate": "marker_module:evaluate"}},
        # the python family's default evaluation runs user code: no type needed
        {
            "family": "python",
            "evaluation": {
                "model": "marker_module:build",
                "evaluate": "marker_module:evaluate",
                "input_shape": [8],
                "metrics": {"accuracy": "maximize"},
            },
        },
        {"family": "python"},
    ],
)
def test_specs_naming_code_are_refused_before_any_import(
    confined: tuple[Any, Path, Path], tmp_path: Path, changes: dict[str, Any]
) -> None:
    import sys

    server, tables, _ = confined
    marker = tables / "imported.txt"
    (tables / "marker_module.py").write_text(
        f"open({str(marker)!r}, 'w').write('x')\ndef build(c): pass\ndef evaluate(m, c): pass\n"
    )
    sys.path.insert(0, str(tables))
    try:
        spec = _spec("latency.csv", name="code", **changes)
        found = _refused(server, spec)
    finally:
        sys.path.remove(str(tables))
    assert "names code to run" in found["family"]
    assert not marker.exists()
