"""Requests that used to end in 500s: control characters (PostgreSQL refuses NUL), deep
``where`` filters, concurrent TorchScript exports; each is a clear answer now."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from typing import Any

import pytest
import torch

from hwsearch.db import Store
from hwsearch.service.api import ServiceSettings


@pytest.fixture
def idle_on(db_url: str, serve_store: Any) -> Iterator[Any]:
    """A server that runs no jobs, over SQLite and over PostgreSQL, with one queued job."""
    store = Store.open(db_url)
    store.create_job(name="queued", family="mlp", target="cpu", spec={})
    with serve_store(store, ServiceSettings(run_jobs=False)) as server:
        yield server
    store.close()


def _spec(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "family": "mlp",
        "target": "cpu",
        "space": {"depth": {"type": "int", "low": 1, "high": 2}},
        "objectives": [{"metric": "accuracy", "direction": "maximize"}],
        "budget": {"evaluations": 2},
    }
    spec.update(changes)
    return spec


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (_spec(name="nul\x00name"), "name"),
        (_spec(target={"name": "phone\x00", "table": "t.csv"}), "target.name"),
        (_spec(constraints=["latency_ms <= 5\x00"]), "constraints[0]"),
        (_spec(space={"depth\x00": 1}), "space"),
    ],
)
def test_control_characters_in_a_spec_are_422_naming_the_field(
    idle_on: Any, spec: dict[str, Any], field: str
) -> None:
    jobs_before = len(idle_on.store.list_jobs())
    with idle_on.client() as client:
        response = client.post("/jobs", json={"spec": spec})
        assert response.status_code == 422, response.text
        assert field in {e["field"] for e in response.json()["errors"]}
        assert "control character" in response.text
        assert client.get("/health").status_code == 200  # the connection still serves
    assert len(idle_on.store.list_jobs()) == jobs_before


@pytest.mark.parametrize(
    ("route", "params", "field"),
    [
        ("/jobs", {"state": "queued\x00"}, "query.state"),
        ("/jobs", {"limit": "\x00"}, "query.limit"),
        ("/jobs/1/front", {"where": "accuracy > 0.5\x00"}, "query.where"),
        ("/jobs/1/front", {"sort": "\x00accuracy"}, "query.sort"),
        ("/jobs/1/front", {"metrics": "accuracy,\x01"}, "query.metrics"),
        ("/jobs/1/candidates/1", {"x": "\x7f"}, "query.x"),
        ("/jobs/1/predictions", {"q": "\x00"}, "query.q"),
        ("/jobs/1/candidates/1/export", {"format": "json\x00"}, "query.format"),
    ],
)
def test_control_characters_in_a_query_are_422_naming_the_parameter(
    idle_on: Any, route: str, params: dict[str, str], field: str
) -> None:
    with idle_on.client() as client:
        response = client.get(route, params=params)
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["field"] == field
        assert client.get("/jobs").status_code == 200


def test_control_characters_in_the_path_and_token_are_422(idle_on: Any) -> None:
    with idle_on.client() as client:
        assert client.get("/jobs/1%00").status_code == 422
        refused_by_http = client.get("/jobs", headers={"Authorization": "Bearer x\x01y"})
        assert refused_by_http.status_code == 400  # uvicorn's parser, before the app
        response = client.get("/jobs", headers={"Authorization": "Bearer x\ty"})
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "header.authorization"


@pytest.mark.parametrize("depth", [33, 314, 5000])
def test_deep_where_filters_are_a_clear_4xx_not_500(api: Any, depth: int) -> None:
    server, job_id = api
    where = "(" * depth + "accuracy > 0.5" + ")" * depth
    with server.client() as client:
        response = client.get(f"/jobs/{job_id}/front", params={"where": where})
    assert response.status_code in (400, 422), response.text  # bad filter, or too long
    assert response.json()["errors"][0]["field"] == "query.where"


def test_three_concurrent_torchscript_exports_all_work(api: Any, tmp_path: Any) -> None:
    server, job_id = api
    chosen = [p.candidate_id for p in server.store.latest_front(job_id).points]
    picks = [chosen[i % len(chosen)] for i in range(3)]

    def export(candidate_id: int) -> Any:
        with server.client() as client:
            return client.get(
                f"/jobs/{job_id}/candidates/{candidate_id}/export",
                params={"format": "torchscript"},
            )

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        responses = list(pool.map(export, picks))
    assert [r.status_code for r in responses] == [200, 200, 200], [r.text for r in responses]
    for i, response in enumerate(responses):
        path = tmp_path / f"model{i}.pt"
        path.write_bytes(response.content)
        model = torch.jit.load(str(path))
        assert model(torch.zeros(1, 64)).shape == (1, 10)
    same = [r.content for r, c in zip(responses, picks, strict=True) if c == picks[0]]
    rebuilt = {
        r.headers["x-hwsearch-reproduced-accuracy"]
        for r, c in zip(responses, picks, strict=True)
        if c == picks[0]
    }
    assert len(same) >= 1 and len(rebuilt) == 1  # rebuilt alike however they overlap
