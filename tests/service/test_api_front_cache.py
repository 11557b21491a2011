"""The front cache of the API: filtering and sorting, cached bodies, replayed requests, and
``hwsearch serve --api-workers``."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from hwsearch.db import Store
from hwsearch.records import CandidateRecord, FrontPoint, MetricValue, Provenance, TokenScope
from hwsearch.search.filters import parse_filter
from hwsearch.service.api import ServiceSettings, create_app, create_token
from hwsearch.service.api.fronts import (
    FrontCache,
    FrontQuery,
    point_payload,
    select_points,
    send_replay,
)

OBJECTIVES = ["latency_ms", "accuracy"]


def _job(store: Store) -> tuple[int, dict[str, CandidateRecord]]:
    """A job with a front of four points, in the order b, d, a, c: c's latency is predicted
    (not measured), d has no ``size_bytes``; a and d tie on accuracy."""
    job_id = store.create_job(name="job", family="mlp", target="cpu", spec={}).id
    added = store.add_candidates(job_id, [(f"h{n}", {"n": n}, 0) for n in "abcd"])
    rows = {
        "a": (1.25, 0.875, 4096.0),
        "b": (0.5, 0.75, 2048.0),
        "c": (2.0, 0.9375, 8192.0),
        "d": (0.75, 0.875, None),
    }
    for (name, (latency, accuracy, size)), cand in zip(rows.items(), added, strict=True):
        timing = Provenance.PREDICTED if name == "c" else Provenance.MEASURED
        metrics = [
            MetricValue("latency_ms", latency, timing),
            MetricValue("accuracy", accuracy, Provenance.MEASURED),
        ]
        if size is not None:
            metrics.append(MetricValue("size_bytes", size, Provenance.ESTIMATED))
        store.record_result(cand.id, metrics, feasible=True)
    by_name = {n: store.get_candidate(job_id, c.id) for n, c in zip("abcd", added, strict=True)}
    _save_front(store, job_id, 0, [by_name[n] for n in "bdac"])
    return job_id, by_name


def _save_front(store: Store, job_id: int, generation: int, points: list[CandidateRecord]) -> None:
    store.save_front(
        job_id,
        generation=generation,
        objectives=OBJECTIVES,
        directions=["minimize", "maximize"],
        reference_point=[10.0, 0.0],
        hypervolume=1.0 + generation,
        evaluations=4,
        points=[FrontPoint(c.id, c.config_hash, {}, c.config["n"] != "c") for c in points],
    )


@pytest.mark.parametrize(
    ("where", "sort", "measured_only", "expected"),
    [
        (None, None, False, "bdac"),
        ("size_bytes < 5000", None, False, "ba"),  # d lacks the metric: false
        ("not size_bytes >= 5000", None, False, "bda"),  # ... so its negation is true
        ("size_bytes != 4096", None, False, "bc"),  # a missing metric is false even for !=
        ("accuracy == 0.875 or latency_ms < 0.6", None, False, "bda"),
        (None, "size_bytes", False, "bacd"),  # points without the metric last
        (None, "-size_bytes", False, "cabd"),
        (None, "-accuracy", False, "cdab"),  # ties keep the front's order
        (None, "latency_ms", True, "bda"),
        ("accuracy >= 0.8", "-latency_ms", False, "cad"),
    ],
)
def test_points_are_filtered_and_sorted_as_filters_define(
    store: Store, where: str | None, sort: str | None, measured_only: bool, expected: str
) -> None:
    job_id, cands = _job(store)
    cached = FrontCache(store).get(job_id)
    keep = parse_filter(where, cached.known) if where else None
    chosen = select_points(
        cached, keep=keep, sort=sort, measured_only=measured_only, offset=0, limit=50
    )
    assert [c.id for c in chosen.candidates] == [cands[n].id for n in expected]
    assert chosen.count == len(expected)
    paged = select_points(
        cached, keep=keep, sort=sort, measured_only=measured_only, offset=1, limit=2
    )
    assert [c.id for c in paged.candidates] == [cands[n].id for n in expected[1:3]]
    assert paged.count == len(expected)


def test_a_page_holds_each_points_payload_with_the_metrics_asked(store: Store) -> None:
    job_id, cands = _job(store)
    cache = FrontCache(store)
    cached = cache.get(job_id)
    for metrics, names in [
        (None, None),
        ("accuracy, size_bytes,accuracy", ["accuracy", "size_bytes"]),
    ]:
        page = json.loads(cache.body(cached, FrontQuery(metrics=metrics)))
        assert (page["generation"], page["size"], page["count"]) == (0, 4, 4)
        want = [json.loads(json.dumps(point_payload(cands[n], n != "c", names))) for n in "bdac"]
        assert page["points"] == want
    # d has no size_bytes: its point lists only accuracy.
    assert list(page["points"][1]["metrics"]) == ["accuracy"]


def test_bodies_are_kept_per_normalised_query_until_a_newer_front(store: Store) -> None:
    job_id, cands = _job(store)
    cache = FrontCache(store, refresh_s=3600)
    cached = cache.get(job_id)
    path = f"/jobs/{job_id}/front"
    first = cache.body(cached, FrontQuery(where="latency_ms<=1.5", sort="-accuracy"), (path, b"q"))
    again = cache.body(cached, FrontQuery(where=" latency_ms  <= 1.5 ", sort="-accuracy"))
    assert again is first  # the same filter, spelled differently: the body is reused
    assert cache.replay(path, b"q") is first
    assert cache.replay(path, b"other") is None
    assert cache.replay(f"/jobs/{job_id + 1}/front", b"q") is None

    _save_front(store, job_id, 1, [cands["a"], cands["b"]])
    newer = cache.get(job_id)  # asks the database: a newer front
    assert newer.view.front.generation == 1
    assert cache.replay(path, b"q") is None  # bodies of the older front are gone
    page = json.loads(cache.body(newer, FrontQuery(where="latency_ms<=1.5", sort="-accuracy")))
    assert page["generation"] == 1
    assert [p["id"] for p in page["points"]] == [cands["a"].id, cands["b"].id]


def test_a_front_not_checked_lately_is_not_replayed(store: Store) -> None:
    job_id, _ = _job(store)
    cache = FrontCache(store, refresh_s=0.0)
    cached = cache.get(job_id)
    cache.body(cached, FrontQuery(), ("/p", b""))
    assert cache.peek(job_id) is None
    assert cache.replay("/p", b"") is None


def _scope(path: str, query: bytes, authorization: str | None, method: str = "GET") -> Any:
    headers = [(b"host", b"test")]
    if authorization is not None:
        headers.append((b"authorization", authorization.encode("latin-1")))
    return {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": query,
        "headers": headers,
    }


async def _replayed(app: Any, scope: Any) -> tuple[bool, list[Any]]:
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    return await send_replay(app.state, scope, send), sent


def test_a_repeated_front_request_is_replayed_only_with_a_valid_token(store: Store) -> None:
    job_id, _ = _job(store)
    secret, _ = create_token(store, "reader", TokenScope.READ)
    revoked, record = create_token(store, "gone", TokenScope.READ)
    store.revoke_token(record.id)
    app = create_app(ServiceSettings(run_jobs=False, token_cache_s=60.0), store=store)
    path, query = f"/jobs/{job_id}/front", b"sort=-accuracy&limit=2"

    async def scenario() -> None:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                url = f"{path}?{query.decode()}"
                answered = await http.get(url, headers={"Authorization": f"Bearer {secret}"})
                assert answered.status_code == 200

                done, sent = await _replayed(app, _scope(path, query, f"Bearer {secret}"))
                assert done
                assert sent[0]["status"] == 200
                assert (b"content-type", b"application/json") in sent[0]["headers"]
                assert sent[1]["body"] == answered.content
                # Any spelling of the scheme that FastAPI's HTTPBearer accepts.
                assert (await _replayed(app, _scope(path, query, f"bearer  {secret} ")))[0]

                refused = [
                    _scope(path, query, None),
                    _scope(path, query, "Bearer hws_wrong"),
                    _scope(path, query, f"Bearer {revoked}"),
                    _scope(path, query, f"Basic {secret}"),
                    _scope(path, query, "Bearer "),
                    _scope(path, b"sort=-accuracy&limit=3", f"Bearer {secret}"),
                    _scope(path, query, f"Bearer {secret}", method="POST"),
                ]
                for scope in refused:
                    done, sent = await _replayed(app, scope)
                    assert not done and not sent, scope
                # ... and through the app, a bad token still gets the route's 401.
                for headers in [{}, {"Authorization": "Bearer hws_wrong"}]:
                    assert (await http.get(url, headers=headers)).status_code == 401

    asyncio.run(scenario())


def test_without_the_token_cache_nothing_is_replayed(store: Store) -> None:
    job_id, _ = _job(store)
    secret, _ = create_token(store, "reader", TokenScope.READ)
    app = create_app(ServiceSettings(run_jobs=False, token_cache_s=0.0), store=store)
    path = f"/jobs/{job_id}/front"

    async def scenario() -> None:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                headers = {"Authorization": f"Bearer {secret}"}
                assert (await http.get(path, headers=headers)).status_code == 200
            assert not (await _replayed(app, _scope(path, b"", f"Bearer {secret}")))[0]

    asyncio.run(scenario())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_several_api_workers_serve_while_one_runner_runs_each_job_once(
    tmp_path: Path, tiny_spec: dict[str, Any]
) -> None:
    url = f"sqlite:///{tmp_path / 'workers.db'}"
    store = Store.open(url)
    secret, _ = create_token(store, "tests", TokenScope.SUBMIT)
    port = _free_port()
    hwsearch = Path(sys.executable).with_name("hwsearch")
    server = subprocess.Popen(
        [str(hwsearch), "serve", "--db", url, "--port", str(port), "--api-workers", "2"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {secret}"}
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
            submitted = client.post("/jobs", json={"spec": {**tiny_spec, "name": "workers"}})
            assert submitted.status_code == 202, submitted.text
            job_id = submitted.json()["id"]
            while (job := client.get(f"/jobs/{job_id}").json())["state"] not in (
                "finished",
                "failed",
                "cancelled",
            ):
                assert time.monotonic() < deadline + 180, f"job still {job['state']}"
                time.sleep(0.3)
        assert job["state"] == "finished", job["error"]
        # Each connection may reach either worker; every one answers the same front.
        fronts = set()
        for _ in range(6):
            with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
                response = client.get(f"/jobs/{job_id}/front")
                assert response.status_code == 200, response.text
                fronts.add(response.content)
        assert len(fronts) == 1
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(60)
        finally:
            if server.poll() is None:
                server.kill()
    assert server.returncode == 0
    candidates = store.list_candidates(job_id)
    assert len(candidates) == job["evaluations"] == 6  # run once, not once per worker
    assert len({c.config_hash for c in candidates}) == 6
    store.close()
