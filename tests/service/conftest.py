"""A real hwsearch server on 127.0.0.1 for the API, client and dashboard tests.

``serve`` starts uvicorn in a thread on a free port over a store; ``api`` is one server for
the session whose database holds a tiny search submitted through ``POST /jobs`` and run to
the end by the server's own runner.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from hwsearch.db import Store
from hwsearch.records import TokenScope
from hwsearch.service.api import ServiceSettings, create_app, create_token
from hwsearch.service.runner import RunnerSettings

TERMINAL = {"finished", "failed", "cancelled"}


@dataclass
class Server:
    url: str
    store: Store
    token: str  # write scope
    read_token: str

    def client(self, token: str | None = None) -> httpx.Client:
        secret = self.token if token is None else token
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=120)


@contextmanager
def serve(store: Store, settings: ServiceSettings | None = None) -> Iterator[Server]:
    """The app over ``store``, listening on a free port of 127.0.0.1 until the block ends."""
    write, _ = create_token(store, "tests", TokenScope.SUBMIT)
    read, _ = create_token(store, "tests-read", TokenScope.READ)
    app = create_app(settings or ServiceSettings(runner=RunnerSettings(poll_s=0.2)), store=store)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield Server(f"http://127.0.0.1:{port}", store, write, read)
    finally:
        server.should_exit = True
        thread.join(60)
        sock.close()


def wait_for(client: httpx.Client, job_id: int, timeout: float = 120) -> dict[str, Any]:
    """Poll a job until it ends; its detail."""
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.get(f"/jobs/{job_id}").raise_for_status().json()
        if job["state"] in TERMINAL:
            return job
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {job['state']} after {timeout} s")
        time.sleep(0.2)


@pytest.fixture(scope="session")
def api(
    tmp_path_factory: pytest.TempPathFactory, tiny_spec_session: dict[str, Any]
) -> Iterator[tuple[Server, int]]:
    """A server (SQLite file) and the id of a finished tiny job it ran."""
    folder: Path = tmp_path_factory.mktemp("api")
    store = Store.open(f"sqlite:///{folder / 'service.db'}")
    settings = ServiceSettings(runner=RunnerSettings(poll_s=0.2), token_cache_s=0.0)
    with serve(store, settings) as server, server.client() as client:
        response = client.post(
            "/jobs", json={"spec": {**tiny_spec_session, "name": "tiny-service"}}
        )
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
        assert wait_for(client, job_id)["state"] == "finished"
        yield server, job_id
    store.close()


@pytest.fixture(scope="session")
def serve_store() -> Any:
    """:func:`serve`, for tests that need a server of their own."""
    return serve


@pytest.fixture(scope="session")
def wait_job() -> Any:
    """:func:`wait_for`."""
    return wait_for
