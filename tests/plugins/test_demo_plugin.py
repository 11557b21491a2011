"""The demo plug-in (a family, a data source, an evaluation kind, a target kind, a metric)
run end to end without editing hwsearch: ``hwsearch run --plugin`` on the local, pool and Ray
executors, through an installed entry point, ``hwsearch serve --plugin`` through the API,
and ``hwsearch export``. Each command runs in its own process, as a user runs it, so this
test process never imports the plug-in (and its registries stay the built-in ones).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
import yaml

from hwsearch.db import Store
from hwsearch.errors import SpecErrors
from hwsearch.records import JobState, Provenance, TokenScope
from hwsearch.search.spec import parse_spec
from hwsearch.service.api import create_token

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
HWSEARCH = Path(sys.executable).with_name("hwsearch")
SPEC = HERE / "demo.yaml"
PLUGIN = "hwsearch_demo_plugin"


def _env(extra_path: Path | None = None) -> dict[str, str]:
    paths = [str(ROOT), str(HERE), *([str(extra_path)] if extra_path else [])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "OMP_NUM_THREADS": "1"}


def _hwsearch(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    done = subprocess.run(
        [str(HWSEARCH), *args],
        env=env or _env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def _check_job(url: str, job_id: int = 1) -> None:
    """The job ran every candidate through the plug-in's kind and stored what it said."""
    with Store.open(url) as store:
        job = store.get_job(job_id)
        assert job.state is JobState.FINISHED and job.evaluations == 4
        assert job.target == "sim:4"
        candidates = store.list_candidates(job_id)
        assert len(candidates) == 4
        for listed in candidates:
            candidate = store.get_candidate(job_id, listed.id)  # with every metric's details
            margin = candidate.metrics["demo_margin"]
            assert margin.provenance is Provenance.MEASURED
            assert margin.details["dataset"].startswith("three 4-D Gaussian blobs")
            latency = candidate.metrics["latency_ms"]
            assert latency.value == pytest.approx(latency.details["median_ms_on_cpu"] / 4)
            assert {"accuracy", "params", "macs"} <= set(candidate.metrics)
        footprint = store.get_job_footprint(job_id)
        assert footprint is not None and footprint["runs"] == 1


def test_the_spec_names_nothing_that_no_plugin_registered() -> None:
    """Without the plug-in loaded, its names are unknown: a spec imports no code."""
    with pytest.raises(SpecErrors) as info:
        parse_spec(yaml.safe_load(SPEC.read_text()))
    fields = {p.field: p.reason for p in info.value.errors}
    assert "unknown model family 'demo_mlp'" in fields["family"]
    assert "sim:4" in fields["target"]


def test_run_with_plugin_in_process_then_export(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'local.db'}"
    _hwsearch("run", str(SPEC), "--plugin", PLUGIN, "--db", url, "--out", str(tmp_path / "o"))
    _check_job(url)
    with Store.open(url) as store:
        chosen = store.latest_front(1).points[0].candidate_id  # type: ignore[union-attr]
        stored = store.get_candidate(1, chosen).metrics["accuracy"].value
    out = tmp_path / "export"
    printed = _hwsearch(
        "export", "1", str(chosen), "--plugin", PLUGIN, "--db", url, "--out", str(out)
    )
    assert "differs" not in printed  # rebuilt by the plug-in's kind, same accuracy
    assert f"test accuracy of this rebuilt model: {stored:.4f}" in (out / "README.md").read_text()
    model = torch.jit.load(str(out / "model_torchscript.pt"))
    assert model(torch.zeros(2, 4)).shape == (2, 3)


def test_run_in_a_process_pool_with_an_installed_entry_point(tmp_path: Path) -> None:
    """An installed distribution's ``hwsearch.plugins`` entry point: no --plugin needed,
    and the pool's worker processes load it too."""
    site = tmp_path / "site"
    info = site / "hwsearch_demo_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: hwsearch-demo-plugin\nVersion: 0.1\n"
    )
    (info / "entry_points.txt").write_text(f"[hwsearch.plugins]\ndemo = {PLUGIN}\n")
    url = f"sqlite:///{tmp_path / 'pool.db'}"
    _hwsearch(
        "run", str(SPEC), "--executor", "pool", "--workers", "2", "--db", url,
        "--out", str(tmp_path / "o"), env=_env(site),
    )  # fmt: skip
    _check_job(url)


def test_run_on_ray(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    url = f"sqlite:///{tmp_path / 'ray.db'}"
    _hwsearch(
        "run", str(SPEC), "--plugin", PLUGIN, "--executor", "ray", "--workers", "1",
        "--address", "local", "--db", url, "--out", str(tmp_path / "o"),
    )  # fmt: skip
    _check_job(url)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """``hwsearch serve --plugin`` in its own process; its URL, a write token, the db URL."""
    url = f"sqlite:///{tmp_path / 'service.db'}"
    with Store.open(url) as store:
        token, _ = create_token(store, "plugin-test", TokenScope.WRITE)
    port = _free_port()
    process = subprocess.Popen(
        [str(HWSEARCH), "serve", "--plugin", PLUGIN, "--db", url, "--port", str(port)],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/health", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the server did not start") from None
                time.sleep(0.3)
        yield base, token, url
    finally:
        process.terminate()
        process.wait(30)


def test_serve_with_plugin_runs_a_submitted_job(server: tuple[str, str, str]) -> None:
    base, token, url = server
    spec: dict[str, Any] = yaml.safe_load(SPEC.read_text())
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        response = client.post("/jobs", json={"spec": spec})
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
        deadline = time.monotonic() + 180
        while (job := client.get(f"/jobs/{job_id}").json())["state"] not in {"finished", "failed"}:
            assert time.monotonic() < deadline, job
            time.sleep(0.5)
        assert job["state"] == "finished", job
        front = client.get(f"/jobs/{job_id}/front").raise_for_status().json()
        assert [o["metric"] for o in front["objectives"]] == ["demo_margin", "latency_ms"]
    _check_job(url, job_id)
