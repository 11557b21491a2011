"""``GET /jobs/{id}/predictions`` and ``GET /predictors`` over an active-learning job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hwsearch.db import Store
from hwsearch.search.driver import Driver
from hwsearch.search.spec import parse_spec


def test_predictions_and_predictors_of_an_active_learning_job(
    tmp_path: Path, nb201_active_spec: Any, serve_store: Any
) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'active.db'}")
    job = Driver(parse_spec(nb201_active_spec()), store).run()
    stored = store.list_predictions(job.id)
    with serve_store(store) as server, server.client() as client:
        predictions = client.get(f"/jobs/{job.id}/predictions").json()
        predictors = client.get("/predictors", params={"family": "nb201"}).json()
        other = client.get("/predictors", params={"metric": "perplexity"}).json()
        missing = client.get("/jobs/999999/predictions")
        anonymous = server.client(token="").get(f"/jobs/{job.id}/predictions")
    store.close()

    assert predictions["count"] == len(stored) == len(predictions["items"]) > 0
    by_key = {(p["candidate_id"], p["metric"]): p for p in predictions["items"]}
    for record in stored:
        item = by_key[(record.candidate_id, record.metric)]
        assert item["predicted"] == record.value and item["measured"] == record.measured
    for metric in ("accuracy", "latency_ms"):
        pairs = [p for p in predictions["items"] if p["metric"] == metric and p["measured"]]
        assert predictions["scores"][metric]["n"] == len(pairs) >= 2
        assert -1 <= predictions["scores"][metric]["spearman"] <= 1

    versions = {(p["metric"], p["version"]) for p in predictors["items"]}
    assert predictors["count"] == len(versions) >= 2
    assert {m for m, _ in versions} == {"accuracy", "latency_ms"}
    assert all(p["training_size"] >= 8 and p["features"] > 0 for p in predictors["items"])
    assert other == {"count": 0, "items": []}
    assert missing.status_code == 404 and "999999" in missing.json()["detail"]
    assert anonymous.status_code == 401
