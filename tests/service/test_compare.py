"""``hwsearch compare``: jobs' fronts on one hypervolume reference point."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from hwsearch.db import Store
from hwsearch.errors import SpecError
from hwsearch.records import FrontPoint, MetricValue, NewCandidate, Provenance
from hwsearch.search.pareto import hypervolume
from hwsearch.service.cli import app
from hwsearch.service.compare import compare_fronts, parse_reference
from hwsearch.service.fronts import load_front

runner = CliRunner()
OBJECTIVES = ["accuracy", "latency_ms"]
DIRECTIONS = ["maximize", "minimize"]


def _job(
    store: Store,
    points: list[tuple[float, float]],
    reference: list[float],
    objectives: list[str] = OBJECTIVES,
) -> int:
    """A job whose latest front is ``points`` (accuracy, latency), its hypervolume taken
    against its own ``reference``, as the driver stores it."""
    job = store.create_job(name="j", family="mlp", target="cpu", spec={})
    configs = [NewCandidate(f"{job.id}-{i}", {"width": i}, 0) for i in range(len(points))]
    candidates = store.add_candidates(job.id, configs)
    front = []
    for candidate, values in zip(candidates, points, strict=True):
        metrics = [
            MetricValue(m, v, Provenance.MEASURED, "cpu")
            for m, v in zip(objectives, values, strict=True)
        ]
        store.record_result(candidate.id, metrics, feasible=True)
        front.append(
            FrontPoint(
                candidate.id,
                candidate.config_hash,
                dict(zip(objectives, values, strict=True)),
                True,
            )
        )
    store.save_front(
        job.id,
        generation=0,
        objectives=objectives,
        directions=DIRECTIONS,
        reference_point=reference,
        hypervolume=hypervolume(points, DIRECTIONS, reference),
        evaluations=len(points),
        points=front,
    )
    return job.id


@pytest.fixture
def two_jobs(tmp_path: Path) -> tuple[Store, int, int]:
    """Job ``worse`` is dominated by job ``better`` everywhere, but its own reference point
    is so loose that its stored hypervolume is the larger."""
    store = Store.open(f"sqlite:///{tmp_path / 'compare.db'}")
    worse = _job(store, [(0.80, 4.0), (0.70, 2.0)], reference=[0.0, 100.0])
    better = _job(store, [(0.90, 3.0), (0.85, 1.5)], reference=[0.8, 3.5])
    return store, worse, better


def test_the_common_reference_ranks_jobs_their_own_hypervolumes_do_not(
    two_jobs: tuple[Store, int, int],
) -> None:
    store, worse, better = two_jobs
    views = [load_front(store, worse), load_front(store, better)]
    assert views[0].front.hypervolume > views[1].front.hypervolume  # misleading
    result = compare_fronts(views, {})
    by_job = {j.job_id: j for j in result.jobs}
    assert by_job[better].hypervolume > by_job[worse].hypervolume > 0
    assert by_job[better].on_joint_front == 2 and by_job[worse].on_joint_front == 0
    # the worst of all the points (accuracy 0.70, latency 4.0) plus 10% of the ranges
    assert result.reference == pytest.approx([0.70 - 0.02, 4.0 + 0.25])
    assert result.joint_hypervolume == pytest.approx(by_job[better].hypervolume)
    given = compare_fronts(views, {"latency_ms": 10.0})
    assert given.reference == pytest.approx([0.68, 10.0]) and given.reference_given


def test_bad_references_and_unlike_jobs_are_refused(
    two_jobs: tuple[Store, int, int],
) -> None:
    store, worse, _ = two_jobs
    assert parse_reference("accuracy=0.5, latency_ms=20", OBJECTIVES) == {
        "accuracy": 0.5,
        "latency_ms": 20.0,
    }
    for text, reason in [
        ("size_bytes=3", "not an objective"),
        ("accuracy", "METRIC=VALUE"),
        ("accuracy=high", "not a number"),
        ("accuracy=nan", "finite"),
    ]:
        with pytest.raises(SpecError, match=reason) as caught:
            parse_reference(text, OBJECTIVES)
        assert caught.value.field == "--reference"
    other = _job(store, [(0.9, 1000.0)], [0.0, 2000.0], objectives=["accuracy", "size_bytes"])
    with pytest.raises(SpecError, match="only jobs with the same objectives compare"):
        compare_fronts([load_front(store, worse), load_front(store, other)], {})
    with pytest.raises(SpecError, match="at least two jobs"):
        compare_fronts([load_front(store, worse)], {})


def test_compare_prints_both_hypervolumes_and_writes_a_plot(
    two_jobs: tuple[Store, int, int], tmp_path: Path
) -> None:
    store, worse, better = two_jobs
    out = tmp_path / "cmp.png"
    result = runner.invoke(
        app,
        ["compare", str(worse), str(better), "--db", store.url, "--out", str(out)],
        env={"COLUMNS": "160"},
    )
    assert result.exit_code == 0, result.output
    assert "one reference point" in result.stdout and "not comparable" in result.stdout
    assert "0 of 2" in result.stdout and "2 of 2" in result.stdout
    assert out.read_bytes()[:4] == b"\x89PNG"
    bad = runner.invoke(
        app, ["compare", str(worse), str(better), "--db", store.url, "--reference", "x=1"]
    )
    assert bad.exit_code == 2 and "--reference" in bad.output
