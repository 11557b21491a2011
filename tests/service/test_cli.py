"""The hwsearch CLI as a user runs it: run, jobs, front, export, and bad input."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import typer
import yaml
from sklearn.datasets import load_digits
from typer.testing import CliRunner

from hwsearch.db import Store
from hwsearch.db.leases import LeaseOwner, Leases
from hwsearch.errors import ConflictError, NotFoundError, StorageError
from hwsearch.records import FrontPoint, JobState, MetricValue, Provenance
from hwsearch.service.cli import app
from hwsearch.service.cli.common import user_errors

runner = CliRunner()


@pytest.fixture(scope="module")
def finished_job(
    tmp_path_factory: pytest.TempPathFactory, tiny_spec_module: dict[str, Any]
) -> tuple[str, int, Path]:
    """One tiny search run through `hwsearch run`, shared by the read-only tests below."""
    folder = tmp_path_factory.mktemp("cli")
    spec_path = folder / "tiny.yaml"
    spec_path.write_text(yaml.safe_dump(tiny_spec_module))
    url = f"sqlite:///{folder / 'jobs.db'}"
    result = runner.invoke(app, ["run", str(spec_path), "--db", url, "--out", str(folder / "out")])
    assert result.exit_code == 0, result.output
    assert "Pareto front of job 1" in result.output
    return url, 1, folder


def test_run_writes_csv_and_plot(finished_job: tuple[str, int, Path]) -> None:
    _, _, folder = finished_job
    rows = list(csv.DictReader((folder / "out" / "front.csv").open()))
    assert rows and {"id", "accuracy", "latency_ms", "latency_ms_provenance"} <= set(rows[0])
    assert (folder / "out" / "front.png").read_bytes()[:4] == b"\x89PNG"


def test_the_csv_holds_every_metric_the_points_have(finished_job: tuple[str, int, Path]) -> None:
    """No metric is left out: carbon, p90 latency, peak memory, non-zero parameters and
    sparsity are columns too, each with its provenance, and the point's own fields."""
    url, job_id, _ = finished_job
    result = runner.invoke(app, ["front", str(job_id), "--db", url, "-f", "csv"])
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    candidate = Store.open(url).get_candidate(job_id, int(rows[0]["id"]))
    for name in ("carbon_g_per_1k", "latency_p90_ms", "peak_memory_bytes", "nonzero_params"):
        assert name in candidate.metrics  # measured by the train kind
    for name in ("sparsity", *candidate.metrics):
        assert name in rows[0] and f"{name}_provenance" in rows[0]
    assert {"id", "job_id", "config_hash", "generation", "status", "feasible", "measured"} <= set(
        rows[0]
    )
    assert float(rows[0]["carbon_g_per_1k"]) == pytest.approx(
        candidate.metrics["carbon_g_per_1k"].value, rel=1e-5
    )


def test_the_front_table_is_one_line_per_point_at_80_columns(
    finished_job: tuple[str, int, Path],
) -> None:
    url, job_id, _ = finished_job
    front = Store.open(url).latest_front(job_id)
    assert front is not None
    narrow = runner.invoke(app, ["front", str(job_id), "--db", url], env={"COLUMNS": "80"})
    assert narrow.exit_code == 0, narrow.output
    lines = narrow.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    rows = [line for line in lines if line.startswith("│") and line[1:].strip()[:1].isdigit()]
    assert len(rows) == len(front.points)  # one line each, nothing wrapped
    words = " ".join(narrow.stdout.split())
    assert "--wide" in words and "not comparable across jobs" in words
    wide = runner.invoke(app, ["front", str(job_id), "--db", url, "--wide"], env={"COLUMNS": "80"})
    config = Store.open(url).get_candidate(job_id, front.points[0].candidate_id).config
    text = "".join(wide.stdout.split())
    assert all(f"{key}=" in text for key in config)  # every knob, folded over lines


def test_front_where_says_how_many_of_the_front_it_kept(
    finished_job: tuple[str, int, Path],
) -> None:
    url, job_id, _ = finished_job
    front = Store.open(url).latest_front(job_id)
    assert front is not None and len(front.points) > 1
    best = max(p.values["accuracy"] for p in front.points)
    kept = sum(p.values["accuracy"] >= best for p in front.points)
    result = runner.invoke(
        app,
        ["front", str(job_id), "--db", url, "--where", f"accuracy >= {best!r}"],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert f"{kept} of {len(front.points)} points" in result.stdout


def test_front_json_lists_each_metric_with_provenance(finished_job: tuple[str, int, Path]) -> None:
    url, job_id, _ = finished_job
    result = runner.invoke(app, ["front", str(job_id), "--db", url, "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    store = Store.open(url)
    assert len(data["points"]) == len(store.latest_front(job_id).points)  # type: ignore[union-attr]
    for point in data["points"]:
        assert point["measured"] is True
        assert point["metrics"]["latency_ms"]["provenance"] == "measured"
        assert point["metrics"]["size_bytes"]["provenance"] == "estimated"
        assert point["metrics"]["accuracy"]["target"] == "cpu"
        assert "id" in point and "candidate_id" not in point
        latency = point["metrics"]["latency_ms"]["details"]
        assert "environment" in latency and "repeats" in latency  # every detail, as REST
    assert data["size"] == data["count"] == len(data["points"])


def test_front_where_and_sort(finished_job: tuple[str, int, Path]) -> None:
    url, job_id, _ = finished_job
    full = json.loads(runner.invoke(app, ["front", str(job_id), "--db", url, "-f", "json"]).stdout)
    latencies = sorted(p["metrics"]["latency_ms"]["value"] for p in full["points"])
    cut = latencies[len(latencies) // 2]
    result = runner.invoke(
        app,
        [
            "front",
            str(job_id),
            "--db",
            url,
            "-f",
            "csv",
            "--where",
            f"latency_ms <= {cut!r}",
            "--sort",
            "-accuracy",
        ],
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == sum(1 for v in latencies if v <= cut)
    accuracies = [float(r["accuracy"]) for r in rows]
    assert accuracies == sorted(accuracies, reverse=True)


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("latency <= 5", "unknown metric 'latency'"),
        ("__import__('os').system('true')", ""),
        ("accuracy >=", "number"),
    ],
)
def test_front_rejects_bad_filters(
    finished_job: tuple[str, int, Path], where: str, message: str
) -> None:
    url, job_id, _ = finished_job
    result = runner.invoke(app, ["front", str(job_id), "--db", url, "--where", where])
    assert result.exit_code == 2
    assert message in result.output


def test_jobs_lists_the_finished_job(finished_job: tuple[str, int, Path]) -> None:
    url, _, _ = finished_job
    result = runner.invoke(app, ["jobs", "--db", url])
    assert result.exit_code == 0, result.output
    assert "tiny" in result.output and "finished" in result.output


def test_export_refuses_a_candidate_that_was_not_evaluated(
    finished_job: tuple[str, int, Path],
) -> None:
    url, job_id, folder = finished_job
    store = Store.open(url)
    (pending,) = store.add_candidates(job_id, [("0" * 64, {"depth": 1}, 99)])
    out = folder / "never"
    result = runner.invoke(
        app, ["export", str(job_id), str(pending.id), "--db", url, "--out", str(out)]
    )
    assert result.exit_code == 1
    assert "is pending" in result.output
    assert not out.exists()


def test_unknown_job_is_a_clear_error(finished_job: tuple[str, int, Path]) -> None:
    url, _, _ = finished_job
    result = runner.invoke(app, ["front", "999", "--db", url])
    assert result.exit_code == 1
    assert "999" in result.output


def test_export_writes_a_loadable_model(finished_job: tuple[str, int, Path]) -> None:
    url, job_id, folder = finished_job
    front = Store.open(url).latest_front(job_id)
    assert front is not None
    chosen = front.points[0].candidate_id
    out = folder / "export"
    result = runner.invoke(
        app, ["export", str(job_id), str(chosen), "--db", url, "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "differs" not in result.output  # the rebuilt model reproduces the stored accuracy
    config = json.loads((out / "config.json").read_text())
    assert config["candidate_id"] == chosen
    assert yaml.safe_load((out / "config.yaml").read_text()) == config
    model = torch.jit.load(str(out / "model_torchscript.pt"))
    # The exported model takes raw pixels, as a user has them, and classifies them well.
    digits = load_digits()
    with torch.inference_mode():
        predicted = model(torch.tensor(digits.data, dtype=torch.float32)).argmax(dim=1)
    agreement = (predicted.numpy() == digits.target).mean()
    assert agreement > config["metrics"]["accuracy"]["value"] - 0.1
    state = torch.load(out / "model_state_dict.pt", weights_only=True)
    assert state and all(isinstance(t, torch.Tensor) for t in state.values())
    readme = (out / "README.md").read_text()
    assert "Median of" in readme and "torch_version" in readme
    assert "raw pixel values of scikit-learn's digits (0..16)" in readme


def test_bad_spec_exits_2_naming_fields_and_writes_nothing(
    tmp_path: Path, tiny_spec: dict[str, Any]
) -> None:
    tiny_spec["objectives"][0]["metric"] = "acc"
    tiny_spec["budget"] = {}
    spec_path = tmp_path / "bad.yaml"
    spec_path.write_text(yaml.safe_dump(tiny_spec))
    db_file = tmp_path / "jobs.db"
    result = runner.invoke(app, ["run", str(spec_path), "--db", f"sqlite:///{db_file}"])
    assert result.exit_code == 2
    assert "objectives[0].metric" in result.output and "acc" in result.output
    assert "budget" in result.output
    assert not db_file.exists()


def test_table_job_exports_its_architecture_untrained(tmp_path: Path) -> None:
    """An nb201 job takes its figures from tables; export gives the network to train."""
    spec = Path(__file__).parents[2] / "examples" / "nb201_pixel3.yaml"
    url = f"sqlite:///{tmp_path / 'nb201.db'}"
    result = runner.invoke(app, ["run", str(spec), "--db", url, "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    front = Store.open(url).latest_front(1)
    assert front is not None
    out = tmp_path / "export"
    chosen = front.points[-1].candidate_id
    result = runner.invoke(app, ["export", "1", str(chosen), "--db", url, "--out", str(out)])
    assert result.exit_code == 0, result.output
    model = torch.jit.load(str(out / "model_torchscript.pt"))
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    readme = (out / "README.md").read_text()
    assert "not trained here" in readme and "latency_ms.csv" in readme
    assert "raw pixel values" not in readme and "0..16" not in readme  # not digits


def test_language_model_job_exports_its_rebuilt_model(tmp_path: Path) -> None:
    """An LM job is rebuilt by its own evaluation kind: same quality, a model of tokens."""
    spec = yaml.safe_load((Path(__file__).parents[2] / "examples" / "tiny_lm.yaml").read_text())
    spec["space"] = {
        "layers": 1,
        "d_model": 32,
        "heads": 2,
        "kv_heads": {"type": "choice", "values": [1, 2]},
    }
    spec["budget"] = {"evaluations": 2}
    spec["optimizer"] = {"name": "random"}
    spec["evaluation"] = {
        "type": "lm",
        "steps": 5,
        "finetune_steps": 0,
        "batch_size": 4,
        "seq_len": 16,
        "eval_windows": 2,
        "prompt_len": 8,
        "new_tokens": 4,
    }
    spec["measurement"] = {"batch_size": 1, "warmup": 1, "min_repeats": 2, "max_repeats": 3}
    spec_path = tmp_path / "lm.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    url = f"sqlite:///{tmp_path / 'lm.db'}"
    result = runner.invoke(app, ["run", str(spec_path), "--db", url, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    store = Store.open(url)
    front = store.latest_front(1)
    assert front is not None
    chosen = front.points[0].candidate_id
    stored = store.get_candidate(1, chosen).metrics["perplexity"].value
    out = tmp_path / "export"
    result = runner.invoke(app, ["export", "1", str(chosen), "--db", url, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "differs" not in result.output
    readme = (out / "README.md").read_text()
    assert f"{stored:.4f}" in readme  # the rebuilt model's perplexity is the stored one
    model = torch.jit.load(str(out / "model_torchscript.pt"))
    with torch.inference_mode():
        logits = model(torch.zeros(2, 8, dtype=torch.long))
    assert logits.shape[:2] == (2, 8)


def test_resume_refuses_a_job_driven_elsewhere_and_jobs_shows_it_stale_once_dead(
    tmp_path: Path, tiny_spec: dict[str, Any]
) -> None:
    url = f"sqlite:///{tmp_path / 'leased.db'}"
    with Store.open(url) as store:
        job_id = store.create_job(name="busy", family="mlp", target="cpu", spec=tiny_spec).id
        elsewhere = LeaseOwner(host="otherhost", pid=777)
        assert Leases(store).acquire(job_id, elsewhere, 2.0)
        store.set_job_state(job_id, JobState.RUNNING)
    refused = runner.invoke(app, ["resume", str(job_id), "--db", url])
    assert refused.exit_code == 1
    assert f"job {job_id} is being run by runner {elsewhere.id[:8]}" in refused.output
    assert "otherhost (pid 777)" in refused.output
    with Store.open(url) as store:
        assert store.get_job(job_id).state is JobState.RUNNING  # nothing written
    listed = runner.invoke(app, ["jobs", "--db", url], env={"COLUMNS": "200"})
    assert "interrupted" not in listed.output and "otherhost pid 777" in listed.output
    time.sleep(2.1)  # the other driver died: its lease runs out
    listed = runner.invoke(app, ["jobs", "--db", url], env={"COLUMNS": "200"})
    assert f"interrupted (driver gone; hwsearch resume {job_id})" in listed.output
    assert "last heartbeat" in listed.output


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ConflictError("state", "job 3 is finished and cannot become running"), 2),
        (StorageError("limit", "must be a positive integer, got 0"), 2),
        (NotFoundError("job 9 not found"), 1),
    ],
)
def test_storage_errors_are_one_clear_line_and_an_exit_code(
    error: Exception, code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(typer.Exit) as info, user_errors():
        raise error
    assert info.value.exit_code == code
    assert capsys.readouterr().err.strip() == f"error: {error}"


def test_sigterm_leaves_the_job_interrupted_and_resume_finishes_it(
    tmp_path: Path, tiny_spec: dict[str, Any]
) -> None:
    import os
    import signal
    import subprocess
    import sys

    from hwsearch.records import CandidateStatus

    tiny_spec["budget"] = {"evaluations": 6}
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(tiny_spec))
    url = f"sqlite:///{tmp_path / 'term.db'}"
    Store.open(url).close()
    command = [sys.executable, "-c", "from hwsearch.service.cli import app; app()"]
    driver = subprocess.Popen(
        [*command, "run", str(spec_path), "--db", url, "--out", str(tmp_path / "out")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    with Store.open(url) as store:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and driver.poll() is None:
            jobs = store.list_jobs()
            if jobs and store.count_candidates(jobs[0].id, status=CandidateStatus.DONE) >= 2:
                break
            time.sleep(0.05)
        driver.send_signal(signal.SIGTERM)
        _, stderr = driver.communicate(timeout=120)
        assert driver.returncode == 143, stderr
        (job,) = store.list_jobs()
        assert job.state is JobState.INTERRUPTED and job.error == "interrupted (SIGTERM)"
        assert 2 <= job.evaluations < 6
        assert f"continue it with: hwsearch resume {job.id}" in " ".join(stderr.split())
    listed = runner.invoke(app, ["jobs", "--db", url], env={"COLUMNS": "200"})
    assert f"interrupted (hwsearch resume {job.id})" in listed.output
    resumed = runner.invoke(app, ["resume", str(job.id), "--db", url, "--out", str(tmp_path)])
    assert resumed.exit_code == 0, resumed.output
    with Store.open(url) as store:
        assert store.get_job(job.id).state is JobState.FINISHED


def test_a_rerun_says_what_it_reused_and_no_reuse_measures_again(
    finished_job: tuple[str, int, Path], tiny_spec_module: dict[str, Any]
) -> None:
    url, first, folder = finished_job
    spec_path = folder / "again.yaml"
    spec_path.write_text(yaml.safe_dump({**tiny_spec_module, "budget": {"evaluations": 2}}))
    out = ["--db", url, "--out", str(folder / "again")]
    again = runner.invoke(app, ["run", str(spec_path), *out], env={"COLUMNS": "200"})
    assert again.exit_code == 0, again.output
    words = " ".join(again.stdout.split())
    assert f"reused 2 from job {first} (measured " in words and "--no-reuse" in words
    fresh = runner.invoke(app, ["run", str(spec_path), *out, "--no-reuse"])
    assert fresh.exit_code == 0, fresh.output
    assert "from job" not in fresh.stdout and "reused 0" in fresh.stdout
    with Store.open(url) as store:
        newest = store.list_jobs()[0]
        assert newest.spec["reuse"] is False
        assert all(
            "reused" not in c.metrics["accuracy"].details for c in store.list_candidates(newest.id)
        )


def test_the_front_table_shows_bracketed_knobs_as_written(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'brackets.db'}"
    with Store.open(url) as store:
        job_id = store.create_job(name="byo", family="mlp", target="cpu", spec={}).id
        configs = [{"layers[head].weight_bits": bits, "layers[blocks.*].sparsity": 0.5}
                   for bits in (4, 8)]  # fmt: skip
        added = store.add_candidates(job_id, [(f"h{i}", c, 0) for i, c in enumerate(configs)])
        for i, candidate in enumerate(added):
            metrics = [MetricValue("accuracy", 0.8 + i / 10, Provenance.MEASURED),
                       MetricValue("latency_ms", 1.0 + i, Provenance.MEASURED)]  # fmt: skip
            store.record_result(candidate.id, metrics, feasible=True)
        points = [FrontPoint(c.id, c.config_hash, {"accuracy": 0.8 + i / 10, "latency_ms": 1.0 + i},
                             measured=True) for i, c in enumerate(added)]  # fmt: skip
        store.save_front(job_id, generation=0, objectives=["accuracy", "latency_ms"],
                         directions=["maximize", "minimize"], reference_point=[0.0, 10.0],
                         hypervolume=1.0, evaluations=2, points=points)  # fmt: skip
    result = runner.invoke(
        app, ["front", str(job_id), "--db", url, "--wide"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    assert "layers[head].weight_bits=4" in result.stdout
    assert "layers[blocks.*].sparsity=0.5" in result.stdout


def test_submit_refuses_a_spec_of_the_users_own_code_before_importing_it(tmp_path: Path) -> None:
    """A server leaves such a job queued (it never imports code a spec names): the queue
    refuses it at once, naming the field and what to run instead, and stores no job."""
    marker = tmp_path / "imported"
    (tmp_path / "own_model.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    spec_path = tmp_path / "own.yaml"
    spec_path.write_text(
        yaml.safe_dump(
            {
                "name": "own",
                "family": {"model": "own_model:build", "input_shape": [8]},
                "evaluation": {"type": "python", "evaluate": "own_model:evaluate"},
            }
        )
    )
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    result = runner.invoke(app, ["submit", str(spec_path), "--db", url])
    assert result.exit_code == 2, result.output
    assert "family" in result.output and "hwsearch run SPEC" in result.output
    assert not marker.exists()
    assert Store.open(url).list_jobs() == []


def test_run_warns_before_its_default_folder_takes_another_databases_job(
    tmp_path: Path, nb201_table_spec: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """runs/job-1 is named by the job's id, which every database counts from 1."""
    spec = nb201_table_spec(4, optimizer={"name": "random", "population_size": 4})
    spec_path = tmp_path / "tables.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    monkeypatch.chdir(tmp_path)
    said = []
    for db, out in (("first.db", []), ("second.db", []), ("first.db", ["--out", "runs/job-1"])):
        url = f"sqlite:///{tmp_path / db}"
        result = runner.invoke(app, ["run", str(spec_path), "--db", url, "--no-reuse", *out])
        assert result.exit_code == 0, result.output
        said.append("".join(result.output.split()))  # the console wraps long paths
    assert "heldtheresults" not in said[0]
    assert "runs/job-1heldtheresultsofsqlite:///" in said[1]
    assert "first.dbjob1;overwrittenwiththoseofsqlite:///" in said[1]
    assert "second.dbjob1;--outFOLDERkeepsboth" in said[1]
    # a folder given with --out: the warning, without the hint
    assert "second.dbjob1;overwrittenwiththoseof" in said[2]
    assert "first.dbjob2" in said[2] and "--outFOLDER" not in said[2]


@pytest.mark.parametrize("command", [["db", "upgrade"], ["db", "current"]])
def test_db_commands_name_an_unreachable_database_in_one_line(command: list[str]) -> None:
    url = "postgresql://postgres@127.0.0.1:1/nowhere"  # port 1: refused at once
    result = runner.invoke(app, [*command, "--db", url])
    assert result.exit_code == 1
    assert "cannot open database postgresql://postgres@127.0.0.1:1/nowhere" in " ".join(
        result.output.split()
    )
    assert "Traceback" not in result.output and result.exception is not None
    assert isinstance(result.exception, SystemExit)


def test_cancel_a_queued_job_at_once_and_flag_a_running_one(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cancel.db'}"
    store = Store.open(url)
    try:
        queued = store.create_job(name="q", family="mlp", target="cpu", spec={}).id
        running = store.create_job(name="r", family="mlp", target="cpu", spec={}).id
        assert Leases(store).acquire(running, LeaseOwner(host="here", pid=1), 600)
        store.set_job_state(running, JobState.RUNNING)
        stale = store.create_job(name="s", family="mlp", target="cpu", spec={}).id
        store.set_job_state(stale, JobState.RUNNING)  # no driver holds it: interrupted
        first = runner.invoke(app, ["cancel", str(queued), "--db", url])
        assert first.exit_code == 0, first.output
        assert f"job {queued} cancelled: 0 evaluated" in first.output
        assert store.get_job(queued).state is JobState.CANCELLED
        second = runner.invoke(app, ["cancel", str(running), "--db", url])
        assert second.exit_code == 0, second.output
        assert "cancel requested; it stops after the evaluation in flight" in second.output
        assert store.get_job(running).state is JobState.RUNNING
        assert store.cancel_requested(running)
        gone = runner.invoke(app, ["cancel", str(stale), "--db", url])
        assert gone.exit_code == 0 and f"job {stale} cancelled" in gone.output
        assert store.get_job(stale).state is JobState.CANCELLED
        again = runner.invoke(app, ["cancel", str(queued), "--db", url])
        assert again.exit_code == 2
        assert "is cancelled; only queued, running or interrupted" in " ".join(again.output.split())
    finally:
        store.close()
