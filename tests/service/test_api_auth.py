"""Tokens: every endpoint but /health needs one; read tokens cannot write; secrets are
stored hashed; and the catalogue endpoints."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from sqlalchemy import text

from hwsearch.records import TokenScope
from hwsearch.service.api import create_token

ENDPOINTS = [
    ("GET", "/jobs"),
    ("POST", "/jobs"),
    ("GET", "/jobs/{job}"),
    ("POST", "/jobs/{job}/cancel"),
    ("GET", "/jobs/{job}/front"),
    ("GET", "/jobs/{job}/candidates/1"),
    ("GET", "/jobs/{job}/candidates/1/export"),
    ("GET", "/targets"),
    ("GET", "/predictors"),
    ("GET", "/families"),
    ("GET", "/optimizers"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
@pytest.mark.parametrize("token", ["", "hws_wrong", "Basic dXNlcjpwYXNz"])
def test_every_endpoint_needs_a_valid_token(api: Any, method: str, path: str, token: str) -> None:
    server, job_id = api
    with server.client(token="") as client:
        headers = {}
        if token.startswith("Basic"):
            headers["Authorization"] = token
        elif token:
            headers["Authorization"] = f"Bearer {token}"
        response = client.request(
            method, path.format(job=job_id), headers=headers, json={"spec": {}}
        )
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "token" in response.json()["detail"]


def test_health_needs_no_token(api: Any) -> None:
    server, _ = api
    with server.client(token="") as client:
        body = client.get("/health").json()
    assert body["status"] == "ok" and body["running_jobs"] == []


def test_a_read_token_reads_but_cannot_submit_or_cancel(api: Any) -> None:
    server, job_id = api
    with server.client(token=server.read_token) as client:
        assert client.get(f"/jobs/{job_id}").status_code == 200
        submit = client.post("/jobs", json={"spec": {}})
        cancel = client.post(f"/jobs/{job_id}/cancel")
    assert submit.status_code == cancel.status_code == 403
    assert "read-only" in submit.json()["detail"]


def test_a_revoked_token_stops_working(api: Any) -> None:
    server, _ = api  # the session's server caches no token answers
    secret, record = create_token(server.store, "short-lived", TokenScope.READ)
    with server.client(token=secret) as client:
        assert client.get("/targets").status_code == 200
        server.store.revoke_token(record.id)
        assert client.get("/targets").status_code == 401


def test_secrets_are_stored_only_as_hashes(api: Any) -> None:
    server, _ = api
    with server.store.engine.connect() as conn:
        rows = conn.execute(text("SELECT name, token_hash FROM api_tokens")).all()
    # other tests serve this store again, each with tokens of its own named "tests"
    stored = {digest for name, digest in rows if name == "tests"}
    assert hashlib.sha256(server.token.encode()).hexdigest() in stored
    assert all(server.token not in value for row in rows for value in row)


def test_catalogue(api: Any) -> None:
    server, _ = api
    with server.client(token=server.read_token) as client:
        targets = client.get("/targets").json()
        families = client.get("/families").json()
        optimizers = client.get("/optimizers").json()
        predictors = client.get("/predictors").json()
    assert targets["items"][0] == {"name": "cpu", "kind": "cpu"}
    assert targets["count"] == len(targets["items"])
    assert {"mlp", "cnn", "nb201"} <= set(families["items"])
    assert "python" not in families["items"]  # your own model: refused by the server
    assert "optuna-nsga2" in optimizers["items"] and optimizers["count"] >= 10
    assert predictors == {"count": len(predictors["items"]), "items": predictors["items"]}


def test_openapi_documents_bearer_auth_and_every_route(api: Any) -> None:
    server, _ = api
    with server.client(token="") as client:
        spec = client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    paths = set(spec["paths"])
    assert {
        "/jobs",
        "/jobs/{job_id}",
        "/jobs/{job_id}/cancel",
        "/jobs/{job_id}/front",
        "/jobs/{job_id}/candidates/{candidate_id}",
        "/jobs/{job_id}/candidates/{candidate_id}/export",
        "/targets",
        "/predictors",
        "/health",
    } <= paths
