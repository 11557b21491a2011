"""Fronts, candidates and exports through the API, against the session's finished job."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import onnx
import pytest
import torch
import yaml
from sklearn.datasets import load_digits

from hwsearch.service.export import candidate_description


def _front(server: Any, job_id: int, **params: Any) -> dict[str, Any]:
    with server.client() as client:
        response = client.get(f"/jobs/{job_id}/front", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_front_is_the_stored_latest_front(api: Any) -> None:
    server, job_id = api
    stored = server.store.latest_front(job_id)
    body = _front(server, job_id)
    assert body["generation"] == stored.generation and body["evaluations"] == 6
    assert body["objectives"] == [
        {"metric": "accuracy", "direction": "maximize"},
        {"metric": "latency_ms", "direction": "minimize"},
    ]
    assert body["hypervolume"] == pytest.approx(stored.hypervolume)
    assert body["size"] == body["count"] == len(stored.points)
    assert [p["id"] for p in body["points"]] == [p.candidate_id for p in stored.points]
    for point, want in zip(body["points"], stored.points, strict=True):
        assert point["measured"] is want.measured is True
        assert point["metrics"]["accuracy"]["value"] == want.values["accuracy"]
        assert point["metrics"]["latency_ms"]["provenance"] == "measured"
        assert point["metrics"]["size_bytes"]["provenance"] == "estimated"
        assert "environment" in point["metrics"]["latency_ms"]["details"]


def test_front_where_sort_metrics_and_measured_only(api: Any) -> None:
    server, job_id = api
    full = _front(server, job_id)["points"]
    latencies = sorted(p["metrics"]["latency_ms"]["value"] for p in full)
    cut = latencies[len(latencies) // 2]
    body = _front(
        server,
        job_id,
        where=f"latency_ms <= {cut!r} and not (accuracy < 0)",
        sort="-accuracy",
        metrics="accuracy,latency_ms",
        measured_only=True,
    )
    assert body["count"] == sum(1 for v in latencies if v <= cut) == len(body["points"])
    accuracies = [p["metrics"]["accuracy"]["value"] for p in body["points"]]
    assert accuracies == sorted(accuracies, reverse=True)
    assert all(set(p["metrics"]) == {"accuracy", "latency_ms"} for p in body["points"])


def test_front_pages_cover_every_point_once(api: Any) -> None:
    server, job_id = api
    size = _front(server, job_id)["size"]
    seen = [
        p["id"]
        for offset in range(size)
        for p in _front(server, job_id, limit=1, offset=offset, sort="latency_ms")["points"]
    ]
    assert len(seen) == len(set(seen)) == size
    assert _front(server, job_id, offset=size)["points"] == []


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"where": "latency <= 5"}, "query.where", "unknown metric 'latency'"),
        ({"where": "__import__('os').system('true')"}, "query.where", "unexpected character"),
        ({"where": "accuracy >="}, "query.where", "number"),
        ({"sort": "-speed"}, "query.sort", "cannot sort by unknown metric 'speed'"),
        ({"metrics": "accuracy,bogus"}, "query.metrics", "'bogus'"),
    ],
)
def test_bad_front_queries_are_400_naming_the_parameter(
    api: Any, params: dict[str, str], field: str, message: str
) -> None:
    server, job_id = api
    with server.client() as client:
        response = client.get(f"/jobs/{job_id}/front", params=params)
    assert response.status_code == 400
    body = response.json()
    assert body["errors"][0]["field"] == field
    assert message in body["detail"]


def test_candidate_has_config_and_every_metric_with_provenance(api: Any) -> None:
    server, job_id = api
    chosen = server.store.latest_front(job_id).points[0].candidate_id
    stored = server.store.get_candidate(job_id, chosen)
    with server.client() as client:
        body = client.get(f"/jobs/{job_id}/candidates/{chosen}").json()
        missing = client.get(f"/jobs/{job_id}/candidates/99999")
        other_job = client.get(f"/jobs/99999/candidates/{chosen}")
    assert body["config"] == stored.config and body["status"] == "done"
    assert set(body["metrics"]) == set(stored.metrics)
    for name, metric in stored.metrics.items():
        assert body["metrics"][name]["value"] == metric.value
        assert body["metrics"][name]["provenance"] == metric.provenance.value
    assert missing.status_code == other_job.status_code == 404
    assert "candidate 99999 not found in job" in missing.json()["detail"]


def _export(server: Any, job_id: int, candidate_id: int, fmt: str) -> Any:
    with server.client() as client:
        return client.get(
            f"/jobs/{job_id}/candidates/{candidate_id}/export", params={"format": fmt}
        )


def test_export_config_as_json_and_yaml(api: Any) -> None:
    server, job_id = api
    chosen = server.store.latest_front(job_id).points[0].candidate_id
    as_json = _export(server, job_id, chosen, "json")
    as_yaml = _export(server, job_id, chosen, "yaml")
    assert as_json.status_code == as_yaml.status_code == 200
    assert (
        f'filename="job{job_id}-candidate{chosen}.json"' in as_json.headers["content-disposition"]
    )
    want = candidate_description(server.store, job_id, chosen)
    assert json.loads(as_json.content) == want == yaml.safe_load(as_yaml.content)


def test_export_torchscript_loads_and_classifies_raw_pixels(api: Any, tmp_path: Path) -> None:
    server, job_id = api
    chosen = server.store.latest_front(job_id).points[0].candidate_id
    response = _export(server, job_id, chosen, "torchscript")
    assert response.status_code == 200
    path = tmp_path / "model.pt"
    path.write_bytes(response.content)
    model = torch.jit.load(str(path))
    digits = load_digits()
    with torch.inference_mode():
        predicted = model(torch.tensor(digits.data, dtype=torch.float32)).argmax(dim=1)
    stored = server.store.get_candidate(job_id, chosen).metrics["accuracy"].value
    assert (predicted.numpy() == digits.target).mean() > stored - 0.1
    rebuilt = float(response.headers["x-hwsearch-reproduced-accuracy"])
    assert rebuilt == pytest.approx(stored, abs=1e-6)


def test_export_onnx_passes_the_checker(api: Any) -> None:
    server, job_id = api
    chosen = server.store.latest_front(job_id).points[-1].candidate_id
    response = _export(server, job_id, chosen, "onnx")
    assert response.status_code == 200
    model = onnx.load_from_string(response.content)
    onnx.checker.check_model(model)
    assert [i.name for i in model.graph.input] == ["pixels"]
    assert [o.name for o in model.graph.output] == ["logits"]


def test_export_zip_holds_what_the_cli_writes(api: Any) -> None:
    server, job_id = api
    chosen = server.store.latest_front(job_id).points[0].candidate_id
    response = _export(server, job_id, chosen, "zip")
    assert response.status_code == 200
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        names = archive.namelist()
        readme = archive.read("README.md").decode()
    assert names == [
        "config.json",
        "config.yaml",
        "model_state_dict.pt",
        "model_torchscript.pt",
        "README.md",
    ]
    assert "Median of" in readme and "On the job's latest Pareto front" in readme


def test_export_refuses_unevaluated_candidates_and_bad_formats(api: Any) -> None:
    server, job_id = api
    other = server.store.create_job(
        name="unevaluated", family="mlp", target="cpu", spec={"budget": {"evaluations": 1}}
    )
    (pending,) = server.store.add_candidates(other.id, [("f" * 64, {"depth": 1}, 0)])
    refused = _export(server, other.id, pending.id, "torchscript")
    assert refused.status_code == 409
    assert "is pending" in refused.json()["detail"]
    chosen = server.store.latest_front(job_id).points[0].candidate_id
    bad = _export(server, job_id, chosen, "pickle")
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "query.format"
    assert _export(server, job_id, 99999, "json").status_code == 404


def test_a_model_of_the_users_own_code_is_not_rebuilt_by_the_server(
    tmp_path: Path, serve_store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exporting the model would import the code the job's spec names in the server: a 409
    that says where to export it; its config and metrics are still served."""
    from hwsearch.db import Store
    from hwsearch.records import CandidateResult, MetricValue, NewCandidate, Provenance

    marker = tmp_path / "imported"
    (tmp_path / "own_model.py").write_text(
        f"open({str(marker)!r}, 'w').close()\ndef build(config): ...\ndef evaluate(m, c): ...\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = {
        "name": "byo",
        "family": {"model": "own_model:build", "input_shape": [8]},
        "evaluation": {"type": "python", "evaluate": "own_model:evaluate"},
    }
    store = Store.open(f"sqlite:///{tmp_path / 'byo.db'}")
    job_id = store.create_job(name="byo", family="python", target="cpu", spec=spec).id
    (candidate,) = store.add_candidates(job_id, [NewCandidate("ab" * 32, {"width": 8}, 0)])
    accuracy = MetricValue("accuracy", 0.9, Provenance.MEASURED, "cpu")
    store.record_results([CandidateResult(candidate.id, [accuracy], True)])
    try:
        with serve_store(store) as server:
            for format in ("zip", "torchscript", "onnx"):
                response = _export(server, job_id, candidate.id, format)
                assert response.status_code == 409, response.text
                detail = response.json()["detail"]
                assert "own model" in detail and f"hwsearch export {job_id}" in detail
            described = _export(server, job_id, candidate.id, "json")
            assert described.status_code == 200
            assert json.loads(described.content)["metrics"]["accuracy"]["value"] == 0.9
    finally:
        store.close()
    assert not marker.exists()
