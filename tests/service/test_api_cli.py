"""The CLI as a client of a server: the same output as on the local database."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from hwsearch.db import Store
from hwsearch.records import JobState
from hwsearch.service.cli import app

runner = CliRunner()


def _both(server: Any, *args: str) -> tuple[Any, Any]:
    """The command on the server's database directly, then through the server."""
    local = runner.invoke(app, [*args, "--db", server.store.url])
    remote = runner.invoke(app, [*args, "--server", server.url, "--token", server.token])
    return local, remote


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_front_through_the_server_prints_the_same(api: Any, fmt: str) -> None:
    server, job_id = api
    local, remote = _both(server, "front", str(job_id), "-f", fmt, "--sort", "-accuracy")
    assert local.exit_code == remote.exit_code == 0, remote.output
    assert remote.stdout == local.stdout
    assert str(job_id) in remote.stdout


def test_the_cli_json_front_is_the_rest_front(api: Any) -> None:
    """One point format: ``front -f json`` writes each point as ``GET /jobs/{id}/front``
    sends it (``id``, every field, every metric's details)."""
    server, job_id = api
    local = runner.invoke(app, ["front", str(job_id), "-f", "json", "--db", server.store.url])
    assert local.exit_code == 0, local.output
    printed = json.loads(local.stdout)
    with server.client() as client:
        page = client.get(f"/jobs/{job_id}/front", params={"limit": 500}).json()
    assert printed["points"] == page["points"]
    shared = {k: v for k, v in page.items() if k not in ("offset", "limit", "points")}
    assert {k: printed[k] for k in shared} == shared


def test_front_filter_errors_are_the_same(api: Any) -> None:
    server, job_id = api
    local, remote = _both(server, "front", str(job_id), "--where", "latency <= 5")
    assert local.exit_code == remote.exit_code == 2
    assert "unknown metric 'latency'" in remote.output


def test_jobs_through_the_server_prints_the_same(api: Any) -> None:
    server, _ = api
    local, remote = _both(server, "jobs", "--state", "finished")
    assert local.exit_code == remote.exit_code == 0, remote.output
    assert remote.stdout == local.stdout and "tiny-service" in remote.stdout


def test_export_through_the_server_writes_the_same_files(api: Any, tmp_path: Path) -> None:
    server, job_id = api
    chosen = server.store.latest_front(job_id).points[0].candidate_id
    args = ["export", str(job_id), str(chosen)]
    local = runner.invoke(app, [*args, "--out", str(tmp_path / "a"), "--db", server.store.url])
    remote = runner.invoke(
        app,
        [*args, "--out", str(tmp_path / "b"), "--server", server.url, "--token", server.token],
    )
    assert local.exit_code == remote.exit_code == 0, remote.output
    assert remote.stdout.replace(str(tmp_path / "b"), "OUT") == local.stdout.replace(
        str(tmp_path / "a"), "OUT"
    )
    for name in ("config.json", "config.yaml", "README.md"):
        assert (tmp_path / "a" / name).read_text() == (tmp_path / "b" / name).read_text()


def test_unreachable_server_and_missing_token_are_clear_errors(api: Any) -> None:
    server, _ = api
    no_token = runner.invoke(app, ["jobs", "--server", server.url], env={"HWSEARCH_TOKEN": ""})
    assert no_token.exit_code == 2 and "API token" in no_token.output
    wrong = runner.invoke(app, ["jobs", "--server", server.url, "--token", "hws_nope"])
    assert wrong.exit_code == 1 and "401" in wrong.output
    down = runner.invoke(app, ["jobs", "--server", "http://127.0.0.1:9", "--token", "x"])
    assert down.exit_code == 1 and "cannot reach the server" in down.output


def test_submit_and_wait_through_the_server(
    api: Any, tmp_path: Path, tiny_spec: dict[str, Any]
) -> None:
    server, _ = api
    tiny_spec.pop("name")
    tiny_spec["budget"] = {"evaluations": 3}
    path = tmp_path / "from-cli.yaml"
    path.write_text(yaml.safe_dump(tiny_spec))
    result = runner.invoke(
        app, ["submit", str(path), "--wait", "--server", server.url, "--token", server.token]
    )
    assert result.exit_code == 0, result.output
    job_id = int(result.stdout.split()[1])
    assert f"job {job_id} queued" in result.stdout
    assert f"Pareto front of job {job_id}" in result.stdout
    job = server.store.get_job(job_id)
    assert job.name == "from-cli" and job.state is JobState.FINISHED and job.evaluations == 3
    # progress as it went: one line per change, ending with the front's size and hypervolume
    progress = [line for line in result.stdout.splitlines() if "/3 evaluated" in line]
    assert progress[-1].startswith(f"job {job_id} finished: 3/3 evaluated, generation ")
    assert "front " in progress[-1] and "hypervolume " in progress[-1]
    assert len(progress) == len(set(progress)) >= 2


def test_submit_no_reuse_measures_again(
    api: Any, tmp_path: Path, tiny_spec_session: dict[str, Any]
) -> None:
    """The session's job measured this spec already: --no-reuse measures it again."""
    server, _ = api
    spec = {**tiny_spec_session, "name": "again", "budget": {"evaluations": 2}}
    path = tmp_path / "again.yaml"
    path.write_text(yaml.safe_dump(spec))
    args = ["submit", str(path), "--wait", "--server", server.url, "--token", server.token]
    result = runner.invoke(app, [*args, "--no-reuse"])
    assert result.exit_code == 0, result.output
    job_id = int(result.stdout.split()[1])
    job = server.store.get_job(job_id)
    assert job.spec["reuse"] is False and job.state is JobState.FINISHED
    for candidate in server.store.list_candidates(job_id):
        assert "reused" not in candidate.metrics["accuracy"].details


def test_submit_a_bad_spec_to_the_server_names_the_fields(api: Any, tmp_path: Path) -> None:
    server, _ = api
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"family": "mlp", "target": "cpu", "budget": {}}))
    result = runner.invoke(
        app, ["submit", str(path), "--server", server.url, "--token", server.token]
    )
    assert result.exit_code == 2
    assert "invalid job spec" in result.output
    assert "space" in result.output and "objectives" in result.output


def test_submit_locally_queues_for_a_server(tmp_path: Path, tiny_spec: dict[str, Any]) -> None:
    path = tmp_path / "later.json"
    path.write_text(json.dumps(tiny_spec))
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    result = runner.invoke(app, ["submit", str(path), "--db", url])
    assert result.exit_code == 0, result.output
    assert "job 1 queued" in result.stdout
    with Store.open(url) as store:
        assert store.get_job(1).state is JobState.QUEUED


def test_tokens_create_prints_the_secret_once_and_stores_its_hash(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tokens.db'}"
    result = runner.invoke(app, ["tokens", "create", "--name", "ci", "--read-only", "--db", url])
    assert result.exit_code == 0, result.output
    secret = result.stdout.strip()
    assert secret.startswith("hws_") and len(secret) > 40
    with Store.open(url) as store:
        found = store.find_token(hashlib.sha256(secret.encode()).hexdigest())
        assert found is not None and found.name == "ci" and found.scope == "read"
    listed = runner.invoke(app, ["tokens", "list", "--db", url])
    assert "ci" in listed.stdout and secret not in listed.stdout
    revoked = runner.invoke(app, ["tokens", "revoke", "1", "--db", url])
    assert revoked.exit_code == 0 and "revoked" in revoked.stdout


def test_tokens_revoke_by_a_unique_name(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tokens.db'}"
    for name in ("alice", "bob", "bob"):
        assert runner.invoke(app, ["tokens", "create", "--name", name, "--db", url]).exit_code == 0
    by_name = runner.invoke(app, ["tokens", "revoke", "alice", "--db", url])
    assert by_name.exit_code == 0 and "token 1 (alice) revoked" in by_name.stdout
    twice = runner.invoke(app, ["tokens", "revoke", "alice", "--db", url])
    assert twice.exit_code == 1 and "no live token has that name" in twice.output
    shared = runner.invoke(app, ["tokens", "revoke", "bob", "--db", url])
    assert shared.exit_code == 1 and "2 live tokens do; give its id" in shared.output
    with Store.open(url) as store:
        assert [t.revoked for t in store.list_tokens()] == [True, False, False]
    # a name that reads as another token's id is refused, not taken as either
    assert runner.invoke(app, ["tokens", "create", "--name", "2", "--db", url]).exit_code == 0
    both = runner.invoke(app, ["tokens", "revoke", "2", "--db", url])
    assert both.exit_code == 1 and "both an id and the name of token(s) 4" in both.output
    with Store.open(url) as store:
        assert [t.revoked for t in store.list_tokens()] == [True, False, False, False]
