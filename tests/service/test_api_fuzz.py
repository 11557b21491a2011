"""Property-based fuzzing of every operation in the OpenAPI spec with schemathesis: no
generated input gives a 5xx.

The fuzzed server shares the session's database (a finished job, real candidates) but runs
no jobs, so a generated spec that happens to be valid is queued and never run. Bounded:
``MAX_EXAMPLES`` per operation, derandomised so CI runs the same cases.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from hwsearch.service.api import ServiceSettings

MAX_EXAMPLES = 30
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
