"""The user's own model as a job: YAML and Python API, local and pool, bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

import hwsearch
from hwsearch.db import Store
from hwsearch.errors import SpecErrors
from hwsearch.search.api import front_of
from hwsearch.search.spec import load_spec
from hwsearch.service.cli import app

MODULE = """
import torch
from torch import nn


def build(config):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, config["width"]), nn.ReLU(), nn.Linear(config["width"], 3))


def data():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(96, 8, generator=g)
    return x, (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()


def evaluate(model, context):
    x, y = data()
    with torch.no_grad():
        acc = (model(x).argmax(1) == y).float().mean().item()
    return {"accuracy": acc, "score": acc * 2}


def finetune(model, context):
    torch.set_num_threads(1)
    x, y = data()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


def not_a_module(config):
    return 3


def no_dict(model, context):
    return 0.5


def no_score(model, context):
    return {"accuracy": 0.5}


def fails_wide(model, context):
    if model[0].out_features >= 8:
        raise RuntimeError("boom in user code")
    return {"accuracy": 0.5, "score": 1.0}
"""

SPACE: dict[str, Any] = {
    "width": {"type": "choice", "values": [4, 8, 16]},
    "layers": {
        "0": {
            "sparsity": {"type": "choice", "values": [0.0, 0.5]},
            "weight_bits": {"type": "choice", "values": [8, 32]},
        }
    },
}
MEASURE = {"warmup": 1, "min_repeats": 2, "max_repeats": 3}


def _spec(folder: Path, **changes: Any) -> Path:
    (folder / "tiny_model.py").write_text(MODULE)
    data: dict[str, Any] = {
        "name": "tiny",
        "family": {"model": "tiny_model:build", "input_shape": [8]},
        "evaluation": {
            "type": "python",
            "evaluate": "tiny_model:evaluate",
            "finetune": "tiny_model:finetune",
            "metrics": {"accuracy": "maximize", "score": "maximize"},
        },
        "space": SPACE,
        "objectives": [
            {"metric": "accuracy", "direction": "maximize"},
            {"metric": "latency_ms", "direction": "minimize"},
        ],
        "target": "cpu",
        "budget": {"evaluations": 3},
        "measurement": MEASURE,
        "optimizer": {"name": "random"},
    }
    for key, value in changes.items():
        section, _, sub = key.partition("__")
        if sub:
            data[section] = {**data[section], sub: value}
        else:
            data[section] = value
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _front(db: str, job_id: int = 1) -> list[tuple[int, dict[str, Any], float]]:
    store = Store.open(db)
    try:
        front = front_of(store, job_id)
    finally:
        store.close()
    return sorted((p.candidate_id, p.config, p.metrics["accuracy"].value) for p in front.points)


@pytest.mark.parametrize("executor", ["local", "pool"])
def test_yaml_job_end_to_end(tmp_path: Path, executor: str) -> None:
    spec = _spec(tmp_path)
    db = f"sqlite:///{tmp_path / 'job.db'}"
    result = CliRunner().invoke(
        app, ["run", str(spec), "--db", db, "--executor", executor, "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 0, result.output
    store = Store.open(db)
    try:
        candidates = store.list_candidates(1)
        assert len(candidates) == 3
        for c in candidates:
            assert c.error is None
            assert {"accuracy", "score", "latency_ms", "energy_j_per_inference", "macs"} <= set(
                c.metrics
            )
            assert c.metrics["latency_ms"].provenance.value == "measured"
            assert c.metrics["score"].value == pytest.approx(2 * c.metrics["accuracy"].value)
            width = c.config["width"]
            assert c.metrics["params"].value == 8 * width + width + 3 * width + 3
        stored = store.get_job(1)
    finally:
        store.close()
    assert _front(db)
    assert stored.spec["family"] == {"model": "tiny_model:build", "input_shape": [8]}
    assert "layers" in stored.spec["space"]


def test_python_api_gives_the_yaml_front(tmp_path: Path) -> None:
    # objectives that do not depend on timing noise: the same seed, the same front
    _spec(
        tmp_path,
        objectives=[
            {"metric": "accuracy", "direction": "maximize"},
            {"metric": "params", "direction": "minimize"},
        ],
    )
    yaml_db = f"sqlite:///{tmp_path / 'yaml.db'}"
    result = CliRunner().invoke(
        app, ["run", str(tmp_path / "spec.yaml"), "--db", yaml_db, "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 0, result.output
    api_db = f"sqlite:///{tmp_path / 'api.db'}"
    front = hwsearch.search(  # type: ignore[operator]
        model=_tiny(tmp_path, "build"),
        evaluate=_tiny(tmp_path, "evaluate"),
        finetune=_tiny(tmp_path, "finetune"),
        input_shape=(8,),
        space=SPACE,
        objectives=[("accuracy", "maximize"), ("params", "minimize")],
        metrics={"accuracy": "maximize", "score": "maximize"},
        budget={"evaluations": 3},
        db=api_db,
        seed=0,
        optimizer="random",
        measurement=MEASURE,
    )
    assert front.points
    for p in front.points:
        assert set(p.config) == {"width", "layers[0].sparsity", "layers[0].weight_bits"}
        assert p.metrics["latency_ms"].provenance.value == "measured"
    assert _front(api_db) == _front(yaml_db)


def test_user_exception_is_a_failed_candidate(tmp_path: Path) -> None:
    spec = _spec(
        tmp_path,
        evaluation__evaluate="tiny_model:fails_wide",
        space={"width": {"type": "choice", "values": [4, 8, 16]}},
    )
    db = f"sqlite:///{tmp_path / 'f.db'}"
    result = CliRunner().invoke(app, ["run", str(spec), "--db", db, "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    store = Store.open(db)
    try:
        failed = [c for c in store.list_candidates(1) if c.config["width"] >= 8]
        done = [c for c in store.list_candidates(1) if c.config["width"] < 8]
        job = store.get_job(1)
    finally:
        store.close()
    assert failed and failed[0].error is not None
    assert "evaluate: RuntimeError: boom in user code" in failed[0].error
    assert "Traceback" in failed[0].error
    # the counts agree, and the run says which candidates failed and why
    assert job.failed == len(failed) and job.evaluations == len(done)
    assert f"{len(done)} evaluated, {len(failed)} failed" in result.output
    assert f"{len(failed)} candidate(s) failed" in result.output
    assert f"candidate {failed[0].id} " in result.output
    assert "boom in user code" in result.output


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"family": {"model": "nowhere:build", "input_shape": [8]}}, "family.model", "not found"),
        ({"family": {"model": "tiny_model:build"}}, "family.input_shape", "give exactly one"),
        (
            {"family": {"model": "tiny_model:build", "input_shape": [8], "example_input": "m:f"}},
            "family.example_input",
            "give exactly one",
        ),
        (
            {"family": {"model": "tiny_model:missing", "input_shape": [8]}},
            "family.model",
            "no attribute",
        ),
        (
            {"family": {"model": "tiny_model:not_a_module", "input_shape": [8]}},
            "family.model",
            "nn.Module",
        ),
        (
            {"family": {"model": "tiny_model:build", "input_shape": [5]}},
            "family.input_shape",
            "rejects",
        ),
        ({"evaluation__evaluate": "tiny_model:no_dict"}, "evaluation.evaluate", "dict"),
        ({"evaluation__evaluate": "tiny_model:no_score"}, "evaluation.evaluate", "score"),
        ({"evaluation__evaluate": "tiny_model:nope"}, "evaluation.evaluate", "no attribute"),
        (
            {"space": {**SPACE, "layers": {"nothing.*": {"weight_bits": 8}}}},
            "space.layers.nothing",
            "matches no",
        ),
    ],
)
def test_bad_input_is_a_spec_error_exit_2_nothing_written(
    tmp_path: Path, changes: dict[str, Any], field: str, words: str
) -> None:
    spec = _spec(tmp_path, **changes)
    with pytest.raises(SpecErrors) as info:
        load_spec(spec)
    assert any(e.field.startswith(field) and words in e.reason for e in info.value.errors), [
        str(e) for e in info.value.errors
    ]
    db = tmp_path / "bad.db"
    result = CliRunner().invoke(app, ["run", str(spec), "--db", f"sqlite:///{db}"])
    assert result.exit_code == 2, result.output
    assert not db.exists() or not _jobs(f"sqlite:///{db}")


def _tiny(folder: Path, name: str) -> Any:
    """The callable ``name`` of the tiny model that ``_spec`` wrote into ``folder``."""
    from hwsearch.models.custom.callables import resolve

    return resolve("x", f"tiny_model:{name}", folder=folder).obj


def _jobs(db: str) -> list[Any]:
    store = Store.open(db)
    try:
        return list(store.list_jobs())
    finally:
        store.close()


def test_undeclared_objective_metric_is_refused(tmp_path: Path) -> None:
    spec = _spec(
        tmp_path,
        objectives=[{"metric": "f1_macro", "direction": "maximize"}],
    )
    with pytest.raises(SpecErrors) as info:
        load_spec(spec)
    assert any(e.field == "objectives[0].metric" for e in info.value.errors)


def test_api_closure_that_cannot_ship_is_refused_for_pool(tmp_path: Path) -> None:
    import threading

    lock = threading.Lock()
    _spec(tmp_path)

    build = _tiny(tmp_path, "build")

    def evaluate(model: Any, context: Any) -> dict[str, float]:
        with lock:
            return {"accuracy": 0.5}

    with pytest.raises(SpecErrors) as info:
        hwsearch.search(  # type: ignore[operator]
            model=build,
            evaluate=evaluate,
            input_shape=(8,),
            space={"width": {"type": "choice", "values": [4, 8]}},
            objectives=[("accuracy", "maximize")],
            budget={"evaluations": 1},
            db=f"sqlite:///{tmp_path / 'x.db'}",
            executor="pool",
        )
    assert info.value.errors[0].field == "evaluation.evaluate"
    assert "cannot be shipped" in info.value.errors[0].reason


def test_predictor_features_from_the_users_model(tmp_path: Path) -> None:
    from hwsearch.predictors.features import featurize

    load_spec(_spec(tmp_path))  # the check binds the user's code for the family's features
    configs = [
        {"width": w, "layers[0].sparsity": s, "layers[0].weight_bits": b}
        for w, s, b in [(4, 0.0, 32), (16, 0.0, 32), (16, 0.5, 8)]
    ]
    features = featurize("python", configs)
    assert features.values.shape[0] == 3
    names = list(features.names)
    macs = features.values[:, names.index("log_macs")]
    assert macs[1] > macs[0]  # a wider model counts more MACs
    bytes_ = features.values[:, names.index("log_weight_bytes")]
    assert bytes_[2] < bytes_[1]  # int8 and sparse weights take fewer bytes


def test_active_learning_runs_on_a_user_model(tmp_path: Path) -> None:
    spec = _spec(
        tmp_path,
        active_learning={"predictor": "ridge", "min_measured": 5},
        budget={"evaluations": 7},
    )
    db = f"sqlite:///{tmp_path / 'al.db'}"
    result = CliRunner().invoke(app, ["run", str(spec), "--db", db, "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert _front(db)


def test_stored_weights_export_to_the_same_accuracy(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    db = f"sqlite:///{tmp_path / 'w.db'}"
    result = CliRunner().invoke(app, ["run", str(spec), "--db", db, "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    store = Store.open(db)
    try:
        front = front_of(store, 1)
        on_front = {p.candidate_id for p in front.points}
        candidates = store.list_candidates(1)
    finally:
        store.close()
    folder = tmp_path / "w.db.artifacts"
    from hwsearch.artifacts import ArtifactStore
    from hwsearch.workers.python_weights import weights_digest

    artifacts = ArtifactStore(folder)
    for c in candidates:
        ref = weights_digest(c.metrics)
        assert ref is not None and ref[0] == str(folder.resolve())
        # front points keep their weights; the others went when the run ended
        assert artifacts.exists(ref[1]) == (
            c.id in on_front
            or any(weights_digest(o.metrics) == ref for o in candidates if o.id in on_front)
        )
    point = front.points[0]
    out = tmp_path / "export"
    result = CliRunner().invoke(
        app, ["export", "1", str(point.candidate_id), "--out", str(out), "--db", db]
    )
    assert result.exit_code == 0, result.output
    assert "differs" not in result.output
    readme = (out / "README.md").read_text()
    assert "stored weights" in readme
    import torch

    from hwsearch.models.custom.callables import resolve

    module = resolve("x", "tiny_model:build", folder=tmp_path)
    build = module.obj
    evaluate = resolve("x", "tiny_model:evaluate", folder=tmp_path).obj
    from hwsearch.models.custom.weights import load_weights

    ref = weights_digest(point.metrics)
    assert ref is not None
    width = point.config["width"]
    model = load_weights(build({"width": width}), artifacts.get(ref[1])).eval()
    again = evaluate(model, None)["accuracy"]
    assert again == pytest.approx(point.metrics["accuracy"].value)
    scripted = torch.jit.load(str(out / "model_torchscript.pt"))
    x = torch.randn(4, 8)
    assert torch.allclose(scripted(x), model(x), atol=1e-6)

    # weights that are gone (dropped off the front, or removed) give a clear error, no files
    artifacts.delete(ref[1])
    gone = tmp_path / "export-gone"
    result = CliRunner().invoke(
        app, ["export", "1", str(point.candidate_id), "--out", str(gone), "--db", db]
    )
    assert result.exit_code == 1, result.output
    message = " ".join(result.output.split())  # the console wraps long lines
    assert f"artifact {ref[1]}" in message
    assert "keep_weights" in message
    assert not gone.exists()


def test_api_declares_the_metrics_hwsearch_does_not_measure() -> None:
    from hwsearch.search.api import _metrics_of

    objectives = [
        {"metric": "accuracy", "direction": "maximize"},
        {"metric": "latency_ms", "direction": "minimize"},
    ]
    assert _metrics_of(objectives, ["latency_ms <= 5"], None) == {"accuracy": "maximize"}
    assert _metrics_of(objectives, ["wer <= 0.2", "bleu >= 20"], None) == {
        "accuracy": "maximize",
        "wer": "minimize",
        "bleu": "maximize",
    }
    assert _metrics_of(objectives, [], {"f1": "maximize"}) == {"f1": "maximize"}


def test_the_check_names_the_config_its_failing_evaluate_ran_on(tmp_path: Path) -> None:
    """The dry build runs one config: where only some configs fail, the user needs to know
    which one the check tried."""
    spec = _spec(
        tmp_path,
        evaluation__evaluate="tiny_model:fails_wide",
        space={"width": {"type": "choice", "values": [16, 4]}},
    )
    with pytest.raises(SpecErrors) as info:
        load_spec(spec)
    (error,) = info.value.errors
    assert error.field == "evaluation.evaluate"
    assert "boom in user code" in error.reason and "'width': 16" in error.reason


@pytest.mark.parametrize(
    ("arguments", "field", "words"),
    [
        ({"objectives": "accuracy"}, "objectives", "list of (metric, direction) pairs"),
        ({"objectives": [("accuracy", "max")]}, "objectives[0].direction", "max"),
        ({"budget": "lots"}, "budget", "mapping"),
    ],
)
def test_api_bad_arguments_name_the_field_once(
    tmp_path: Path, arguments: dict[str, Any], field: str, words: str
) -> None:
    _spec(tmp_path)
    given: dict[str, Any] = {
        "model": _tiny(tmp_path, "build"),
        "evaluate": _tiny(tmp_path, "evaluate"),
        "input_shape": (8,),
        "space": {"width": {"type": "choice", "values": [4, 8]}},
        "objectives": [("accuracy", "maximize")],
        "budget": {"evaluations": 1},
        "db": f"sqlite:///{tmp_path / 'x.db'}",
        **arguments,
    }
    with pytest.raises(SpecErrors) as info:
        hwsearch.search(**given)  # type: ignore[operator]
    assert [e.field for e in info.value.errors] == [field], [str(e) for e in info.value.errors]
    assert words in info.value.errors[0].reason
    assert not (tmp_path / "x.db").exists() or not _jobs(f"sqlite:///{tmp_path / 'x.db'}")


def test_api_budget_as_a_number_of_evaluations(tmp_path: Path) -> None:
    _spec(tmp_path)
    db = f"sqlite:///{tmp_path / 'n.db'}"
    front = hwsearch.search(  # type: ignore[operator]
        model=_tiny(tmp_path, "build"),
        evaluate=_tiny(tmp_path, "evaluate"),
        input_shape=(8,),
        space={"width": {"type": "choice", "values": [4, 8, 16]}},
        objectives=[("accuracy", "maximize"), ("params", "minimize")],
        metrics={"accuracy": "maximize", "score": "maximize"},
        budget=2,
        db=db,
        optimizer="random",
        measurement=MEASURE,
    )
    assert front.evaluations == 2
    (job,) = _jobs(db)
    assert job.spec["budget"]["evaluations"] == 2


def test_a_lambda_runs_with_a_warning_and_its_export_says_why_it_cannot(tmp_path: Path) -> None:
    _spec(tmp_path)
    from hwsearch.service.export import export_candidate

    build = _tiny(tmp_path, "build")
    db = f"sqlite:///{tmp_path / 'l.db'}"
    with pytest.warns(UserWarning, match="evaluation.evaluate: .* names a lambda"):
        front = hwsearch.search(  # type: ignore[operator]
            model=build,
            evaluate=lambda model, context: {"accuracy": 0.5},
            input_shape=(8,),
            space={"width": {"type": "choice", "values": [4]}},
            objectives=[("accuracy", "maximize")],
            budget=1,
            db=db,
            measurement=MEASURE,
        )
    store = Store.open(db)
    try:
        with pytest.raises(SpecErrors) as info:
            export_candidate(store, front.job_id, front.points[0].candidate_id, tmp_path / "out")
    finally:
        store.close()
    reasons = [e.reason for e in info.value.errors]
    assert any("names a lambda" in r and "top level of a module" in r for r in reasons), reasons
    assert not (tmp_path / "out").exists()


def test_api_objectives_from_any_iterable_of_pairs() -> None:
    from hwsearch.search.api import _objectives

    pairs = {"accuracy": "maximize", "latency_ms": "minimize"}
    want = [
        {"metric": "accuracy", "direction": "maximize"},
        {"metric": "latency_ms", "direction": "minimize"},
    ]
    assert _objectives(iter(pairs.items())) == _objectives(list(pairs.items())) == want
