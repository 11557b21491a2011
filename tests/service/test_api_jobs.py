"""``/jobs``: submit, list, detail, cancel, and their errors, against a real server."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from hwsearch.db import Store
from hwsearch.db.leases import LeaseOwner, Leases
from hwsearch.errors import ConflictError
from hwsearch.records import JobState, MetricValue, Provenance, TokenScope
from hwsearch.service.api import ServiceSettings, create_token
from hwsearch.service.api.auth import digest
from hwsearch.service.client import ServiceClient
from hwsearch.service.runner import RunnerSettings


def _spec(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "family": "mlp",
        "target": "cpu",
        "space": {"depth": {"type": "int", "low": 1, "high": 2}},
        "objectives": [{"metric": "accuracy", "direction": "maximize"}],
        "budget": {"evaluations": 2},
        "evaluation": {"epochs": 1, "finetune_epochs": 0},
    }
    spec.update(changes)
    return spec


@pytest.fixture(scope="module")
def idle(tmp_path_factory: pytest.TempPathFactory, serve_store: Any) -> Any:
    """A server that runs no jobs, so queued jobs stay queued."""
    store = Store.open(f"sqlite:///{tmp_path_factory.mktemp('idle') / 'idle.db'}")
    with serve_store(store, ServiceSettings(run_jobs=False)) as server:
        yield server
    store.close()


def test_the_submitted_job_ran_to_the_end(api: Any) -> None:
    server, job_id = api
    with server.client() as client:
        job = client.get(f"/jobs/{job_id}").json()
    assert job["state"] == "finished"
    assert job["evaluations"] == job["budget_evaluations"] == 6
    assert job["progress"] == 1.0
    assert job["candidates"] == {"pending": 0, "done": 6, "failed": 0}
    assert job["spec"]["name"] == "tiny-service" and job["cancel_requested"] is False
    history = job["hypervolume_history"]
    assert [h["generation"] for h in history] == [0, 1]
    assert [h["evaluations"] for h in history] == [3, 6]
    volumes = [h["hypervolume"] for h in history]
    assert volumes == sorted(volumes) and volumes[-1] > 0
    assert history[-1]["points"] == len(server.store.latest_front(job_id).points)


def test_submit_answers_202_with_the_queued_job(idle: Any) -> None:
    with idle.client() as client:
        response = client.post("/jobs", json={"spec": _spec(name="queued-one")})
        assert response.status_code == 202
        job = response.json()
        assert response.headers["location"] == f"/jobs/{job['id']}"
        assert job["state"] == "queued" and job["name"] == "queued-one"
        assert job["evaluations"] == 0 and job["budget_evaluations"] == 2
    stored = idle.store.get_job(job["id"])
    assert stored.spec["budget"] == {"evaluations": 2}


def test_bad_spec_is_422_naming_every_field_and_stores_nothing(idle: Any) -> None:
    before = idle.store.count_jobs()
    bad = _spec(objectives=[{"metric": "acc", "direction": "maximize"}], budget={})
    bad["space"]["depth"]["low"] = "one"
    with idle.client() as client:
        response = client.post("/jobs", json={"spec": bad})
    assert response.status_code == 422
    body = response.json()
    assert body["detail"].startswith("invalid job spec")
    fields = {e["field"] for e in body["errors"]}
    assert {"objectives[0].metric", "budget", "space.depth.low"} <= fields
    assert idle.store.count_jobs() == before


def test_malformed_bodies_are_422_naming_the_field(idle: Any) -> None:
    with idle.client() as client:
        missing = client.post("/jobs", json={"name": "x"})
        not_json = client.post(
            "/jobs", content=b"{nope", headers={"content-type": "application/json"}
        )
    assert missing.status_code == 422
    assert {e["field"] for e in missing.json()["errors"]} >= {"body.spec", "body.name"}
    assert not_json.status_code == 422
    (problem,) = not_json.json()["errors"]
    assert problem["field"] == "body"
    assert problem["reason"].startswith("is not valid JSON (")
    assert "at character 1" in problem["reason"]


def test_spec_names_only_registered_families_and_optimizers(idle: Any) -> None:
    spec = _spec(family="os:system", optimizer={"name": "builtins:eval"})
    with idle.client() as client:
        response = client.post("/jobs", json={"spec": spec})
    assert response.status_code == 422
    reasons = {e["field"]: e["reason"] for e in response.json()["errors"]}
    assert "unknown model family 'os:system'" in reasons["family"]
    assert "unknown optimizer 'builtins:eval'" in reasons["optimizer.name"]


def test_table_files_outside_the_servers_folders_are_refused_unread(
    idle: Any, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_text("arch,password\nx,hunter2\n")
    spec = _spec(
        family="nb201",
        target={"name": "phone", "table": str(secret), "column": "password"},
        evaluation={"type": "table", "table": "../../etc/passwd", "column": "x"},
    )
    with idle.client() as client:
        response = client.post("/jobs", json={"spec": spec})
    assert response.status_code == 422
    body = response.text
    assert "hunter2" not in body and "password" not in body.replace(str(secret), "")
    fields = {e["field"] for e in response.json()["errors"]}
    assert {"target.table", "evaluation.table"} <= fields  # beside the space's own problems


def test_table_files_inside_the_servers_folder_are_accepted(
    tmp_path_factory: pytest.TempPathFactory, nb201_data: Path, serve_store: Any
) -> None:
    store = Store.open(f"sqlite:///{tmp_path_factory.mktemp('tables') / 'tables.db'}")
    settings = ServiceSettings(run_jobs=False, table_roots=(nb201_data,))
    spec = {
        "family": "nb201",
        "target": {"name": "pixel3", "table": "latency_ms.csv"},  # relative: the first root
        "space": {"ops": {"type": "choice", "values": ["none", "skip_connect"], "per_layer": 6}},
        "objectives": [{"metric": "accuracy", "direction": "maximize"}],
        "budget": {"evaluations": 4},
        "evaluation": {
            "type": "table",
            "table": str(nb201_data / "accuracy.csv"),
            "column": "cifar10_acc",
        },
    }
    with serve_store(store, settings) as server, server.client() as client:
        response = client.post("/jobs", json={"spec": spec})
    assert response.status_code == 202, response.text
    stored = store.get_job(response.json()["id"]).spec
    assert stored["target"]["table"] == str(nb201_data / "latency_ms.csv")
    store.close()


def test_request_body_over_the_limit_is_413(idle: Any) -> None:
    huge = _spec(name="x" * (2 << 20))
    with idle.client() as client:
        response = client.post("/jobs", json={"spec": huge})
    assert response.status_code == 413


def test_list_filters_by_state_and_pages(idle: Any) -> None:
    with idle.client() as client:
        ids = [
            client.post("/jobs", json={"spec": _spec(name=f"page-{i}")}).json()["id"]
            for i in range(3)
        ]
        queued = client.get("/jobs", params={"state": "queued", "limit": 500}).json()
        assert queued["count"] == len(queued["items"]) >= 3
        assert all(j["state"] == "queued" for j in queued["items"])
        first = client.get("/jobs", params={"limit": 2}).json()
        second = client.get("/jobs", params={"limit": 2, "offset": 2}).json()
        assert [j["id"] for j in first["items"]] == sorted(ids, reverse=True)[:2]
        assert first["count"] == second["count"] and second["items"][0]["id"] == min(ids)
        assert client.get("/jobs", params={"state": "finished"}).json() == {
            "count": 0,
            "items": [],
        }
        too_big = client.get("/jobs", params={"limit": 501})
        bad_state = client.get("/jobs", params={"state": "exploded"})
    assert too_big.status_code == 422
    assert too_big.json()["errors"][0]["field"] == "query.limit"
    assert bad_state.status_code == 422
    assert bad_state.json()["errors"][0]["field"] == "query.state"


def test_unknown_job_is_404(idle: Any) -> None:
    with idle.client() as client:
        for response in (
            client.get("/jobs/99999"),
            client.post("/jobs/99999/cancel"),
            client.get("/jobs/99999/front"),
        ):
            assert response.status_code == 404
            assert "job 99999 not found" in response.json()["detail"]


def test_cancel_a_queued_job_at_once(idle: Any) -> None:
    with idle.client() as client:
        job_id = client.post("/jobs", json={"spec": _spec()}).json()["id"]
        response = client.post(f"/jobs/{job_id}/cancel")
        assert response.status_code == 200
        assert response.json()["state"] == "cancelled"
        assert response.json()["cancel_requested"] is False  # nothing left to stop
        again = client.post(f"/jobs/{job_id}/cancel")
    assert again.status_code == 409
    assert "only queued, running or interrupted jobs" in again.json()["detail"]


def test_cancel_a_finished_job_is_409(api: Any) -> None:
    server, job_id = api
    with server.client() as client:
        response = client.post(f"/jobs/{job_id}/cancel")
    assert response.status_code == 409
    assert server.store.get_job(job_id).state == "finished"


def test_a_job_without_a_front_yet_has_no_front(idle: Any) -> None:
    with idle.client() as client:
        job_id = client.post("/jobs", json={"spec": _spec()}).json()["id"]
        response = client.get(f"/jobs/{job_id}/front")
    assert response.status_code == 404
    assert "no front yet" in response.json()["detail"]


def test_runner_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="'slurm'"):
        RunnerSettings(executor="slurm")
    with pytest.raises(ValueError, match="max_jobs"):
        RunnerSettings(max_jobs=0)
    with pytest.raises(ValueError, match="max_body_bytes"):
        ServiceSettings(max_body_bytes=10)


def test_a_plugin_that_cannot_be_imported_stops_the_server_at_start() -> None:
    from hwsearch.errors import HwsearchError
    from hwsearch.service.api import create_app

    with pytest.raises(HwsearchError, match=r"plug-in 'no_such_plugin\.families'"):
        create_app(ServiceSettings(plugins=("no_such_plugin.families",)))


# -- owners and scopes ------------------------------------------------------------------------


def test_only_the_submitting_token_or_an_admin_cancels_a_job(idle: Any) -> None:
    other, _ = create_token(idle.store, "someone-else", TokenScope.SUBMIT)
    admin, _ = create_token(idle.store, "operator", TokenScope.ADMIN)
    with idle.client() as mine, idle.client(token=other) as theirs:
        first = mine.post("/jobs", json={"spec": _spec()}).json()
        second = mine.post("/jobs", json={"spec": _spec()}).json()
        owner = idle.store.find_token(digest(idle.token))
        assert owner is not None and first["owner_token_id"] == owner.id
        refused = theirs.post(f"/jobs/{first['id']}/cancel")
        assert refused.status_code == 403
        assert "only its own token or an admin token" in refused.json()["detail"]
        assert idle.store.get_job(first["id"]).state == "queued"  # untouched
        assert mine.post(f"/jobs/{first['id']}/cancel").json()["state"] == "cancelled"
    with idle.client(token=admin) as operator:
        assert operator.post(f"/jobs/{second['id']}/cancel").json()["state"] == "cancelled"
        submitted = operator.post("/jobs", json={"spec": _spec()})
    assert submitted.status_code == 202  # admin may submit too


def test_jobs_show_their_driver_and_whether_it_is_stale(idle: Any) -> None:
    job_id = idle.store.create_job(name="j", family="mlp", target="cpu", spec={}).id
    dead = LeaseOwner(host="gone", pid=4242)
    assert Leases(idle.store).acquire(job_id, dead, 0.5)
    idle.store.set_job_state(job_id, JobState.RUNNING)
    with idle.client() as client:
        live = client.get(f"/jobs/{job_id}").json()
        time.sleep(0.6)  # the driver died: its lease runs out
        stale = client.get(f"/jobs/{job_id}").json()
        listed = client.get("/jobs", params={"state": "running"}).json()["items"]
    assert live["stale"] is False and live["driver"]["host"] == "gone"
    assert live["driver"]["pid"] == 4242 and live["driver"]["runner"] == dead.id
    assert stale["stale"] is True and stale["state"] == "running"
    assert live["shown_state"] == "running" and stale["shown_state"] == "interrupted"
    assert [j["stale"] for j in listed if j["id"] == job_id] == [True]


def test_an_interrupted_job_is_listed_as_such_and_can_be_cancelled(idle: Any) -> None:
    job_id = idle.store.create_job(name="j", family="mlp", target="cpu", spec=_spec()).id
    idle.store.set_job_state(job_id, JobState.RUNNING)
    idle.store.set_job_state(job_id, JobState.INTERRUPTED, error="interrupted (SIGTERM)")
    with idle.client() as client:
        job = client.get(f"/jobs/{job_id}").json()
        listed = client.get("/jobs", params={"state": "interrupted"}).json()
    admin, _ = create_token(idle.store, "admin-interrupted", TokenScope.ADMIN)
    with idle.client(admin) as client:
        cancelled = client.post(f"/jobs/{job_id}/cancel")
    assert job["state"] == job["shown_state"] == "interrupted" and job["stale"] is False
    assert job["error"] == "interrupted (SIGTERM)"
    assert [j["id"] for j in listed["items"]] == [job_id] and listed["count"] == 1
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"


def test_progress_is_what_was_measured_of_the_budget_however_the_job_ended(
    idle: Any,
) -> None:
    """A job stopped (finished on its wall time) at 1 of 4 shows a quarter, not a full bar."""
    from hwsearch.records import NewCandidate

    job_id = idle.store.create_job(
        name="short", family="mlp", target="cpu", spec=_spec(budget={"evaluations": 4})
    ).id
    (candidate,) = idle.store.add_candidates(job_id, [NewCandidate("h", {"depth": 1}, 0)])
    idle.store.record_result(
        candidate.id, [MetricValue("accuracy", 0.5, Provenance.MEASURED, "cpu")], feasible=True
    )
    idle.store.set_job_state(job_id, JobState.RUNNING)
    idle.store.set_job_state(job_id, JobState.FINISHED)
    with idle.client() as client:
        job = client.get(f"/jobs/{job_id}").json()
    assert job["state"] == "finished" and job["progress"] == 0.25
    assert job["measured"] == job["evaluations"] == 1 and job["predicted"] == 0


def test_revoked_tokens_stop_within_five_seconds_by_default() -> None:
    assert ServiceSettings().token_cache_s == 5.0


def test_a_conflict_names_its_field_and_the_client_raises_it(api: Any) -> None:
    server, job_id = api
    with server.client() as client:
        body = client.post(f"/jobs/{job_id}/cancel").json()
    assert [e["field"] for e in body["errors"]] == ["state"]
    assert "is finished; only queued, running or interrupted" in body["errors"][0]["reason"]
    with ServiceClient(server.url, server.token) as remote, pytest.raises(ConflictError) as info:
        remote.cancel(job_id)
    assert (
        info.value.field == "state" and "only queued, running or interrupted" in info.value.reason
    )


def test_failed_candidates_are_counted_and_spend_the_budget(
    tmp_path: Path, serve_store: Any
) -> None:
    """A job that finished its budget of 4 with one candidate failed is at progress 1, with
    3 evaluated and 1 failed, in the detail and in the list alike."""
    from hwsearch.db import Store
    from hwsearch.records import (
        CandidateFailure,
        CandidateResult,
        JobState,
        MetricValue,
        NewCandidate,
        Provenance,
    )

    store = Store.open(f"sqlite:///{tmp_path / 'failed.db'}")
    spec = {"name": "f", "family": "mlp", "budget": {"evaluations": 4}}
    job_id = store.create_job(name="f", family="mlp", target="cpu", spec=spec).id
    candidates = store.add_candidates(
        job_id, [NewCandidate(f"{i:064x}", {"width": i}, 0) for i in range(4)]
    )
    accuracy = MetricValue("accuracy", 0.5, Provenance.MEASURED, "cpu")
    store.record_results(
        [CandidateResult(c.id, [accuracy], True) for c in candidates[:3]],
        failures=[CandidateFailure(candidates[3].id, "evaluate: ValueError: boom")],
    )
    store.set_job_state(job_id, JobState.RUNNING)
    assert store.set_job_state(job_id, JobState.FINISHED).failed == 1
    try:
        with serve_store(store) as server, server.client() as client:
            detail = client.get(f"/jobs/{job_id}").raise_for_status().json()
            listed = client.get("/jobs").raise_for_status().json()
    finally:
        store.close()
    (row,) = [j for j in listed["items"] if j["id"] == job_id]
    for shown in (detail, row):
        assert (shown["evaluations"], shown["failed"], shown["progress"]) == (3, 1, 1.0)
