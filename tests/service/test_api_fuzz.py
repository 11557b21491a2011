"""Property-based fuzzing of every operation in the OpenAPI spec with schemathesis: no
generated input gives a 5xx.

The fuzzed server shares the session's database (a finished job, real candidates) but runs
no jobs, so a generated spec that happens to be valid is queued and never run. Bounded:
``MAX_EXAMPLES`` per operation, derandomised so CI runs the same cases. Beyond the schema:
a stateful run follows the links between operations (a submitted job's id into its detail,
front, cancel ...), and Hypothesis-built hostile specs and ``where`` filters
(:mod:`hwsearch.fuzzing`) reach past the schema's shape into the spec checks.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from hwsearch.fuzzing import hostile_specs, where_filters
from hwsearch.service.api import ServiceSettings

BOUNDED = settings(
    deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)

MAX_EXAMPLES = 50
STATEFUL_EXAMPLES = 25
HOSTILE_EXAMPLES = 150
OPERATIONS = [
    ("GET", "/health"),
    ("GET", "/targets"),
    ("GET", "/predictors"),
    ("GET", "/families"),
    ("GET", "/optimizers"),
    ("POST", "/jobs"),
    ("GET", "/jobs"),
    ("GET", "/jobs/{job_id}"),
    ("POST", "/jobs/{job_id}/cancel"),
    ("GET", "/jobs/{job_id}/front"),
    ("GET", "/jobs/{job_id}/predictions"),
    ("GET", "/jobs/{job_id}/candidates/{candidate_id}"),
    ("GET", "/jobs/{job_id}/candidates/{candidate_id}/export"),
]


@pytest.fixture(scope="module")
def fuzzed(api: Any, serve_store: Any) -> Iterator[tuple[Any, Any]]:
    server, _ = api
    with serve_store(server.store, ServiceSettings(run_jobs=False)) as fuzz_server:
        yield fuzz_server, schemathesis.openapi.from_url(f"{fuzz_server.url}/openapi.json")


def test_every_operation_is_fuzzed(fuzzed: tuple[Any, Any]) -> None:
    _, schema = fuzzed
    found = {(op.ok().method.upper(), op.ok().path) for op in schema.get_all_operations()}
    assert found == set(OPERATIONS)


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_no_input_gives_a_server_error(fuzzed: tuple[Any, Any], method: str, path: str) -> None:
    server, schema = fuzzed
    operation = schema[path][method]
    headers = {"Authorization": f"Bearer {server.token}"}
    seen: list[int] = []

    @given(case=operation.as_strategy())
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        response = case.call(base_url=server.url, headers=headers, timeout=60)
        seen.append(response.status_code)
        assert response.status_code < 500, f"{method} {case.formatted_path}: {response.text}"

    check()
    assert seen  # the operation was called


def test_stateful_runs_along_the_links_give_no_server_error(fuzzed: tuple[Any, Any]) -> None:
    server, schema = fuzzed
    headers = {"Authorization": f"Bearer {server.token}"}
    statuses: list[int] = []

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"base_url": server.url, "headers": headers, "timeout": 60}

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            statuses.append(response.status_code)
            assert response.status_code < 500, f"{case.formatted_path}: {response.text}"

    Workflow.run(settings=settings(BOUNDED, max_examples=STATEFUL_EXAMPLES, stateful_step_count=6))
    assert len(statuses) >= STATEFUL_EXAMPLES


def test_hostile_specs_are_accepted_or_refused_never_a_server_error(
    fuzzed: tuple[Any, Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    server, _ = fuzzed
    secret = tmp_path_factory.mktemp("outside") / "secret.csv"
    secret.write_text("arch,planted-secret-51d2\nx,1\n")
    statuses: list[int] = []

    @given(spec=hostile_specs(str(secret)))
    @settings(BOUNDED, max_examples=HOSTILE_EXAMPLES)
    def check(spec: dict[str, Any]) -> None:
        with server.client() as client:
            response = client.post("/jobs", json={"spec": spec})
        statuses.append(response.status_code)
        assert response.status_code in (202, 413, 422), response.text
        assert "planted-secret" not in response.text

    check()
    assert 422 in statuses


def test_hostile_where_filters_never_give_a_server_error(api: Any, fuzzed: tuple[Any, Any]) -> None:
    server, _ = fuzzed
    _, job_id = api

    @given(where=where_filters())
    @settings(BOUNDED, max_examples=HOSTILE_EXAMPLES)
    def check(where: str) -> None:
        with server.client() as client:
            response = client.get(f"/jobs/{job_id}/front", params={"where": where})
        assert response.status_code in (200, 400, 422), response.text

    check()
