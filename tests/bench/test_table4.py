"""bench/table4.py: its bookkeeping (oracle, feasibility, answers, over-limit count) on
hand-made tables, and a whole run on a synthetic NAS-Bench-201 table whose optimum is known."""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import table4  # noqa: E402
from bench.search_quality import OPERATIONS  # noqa: E402

ACC = np.array([70.0, 90.0, 80.0, 85.0, 60.0])
LAT = np.array([5.0, 12.0, 10.0, 10.0001, 3.0])


def test_within_counts_a_latency_on_the_limit_as_feasible() -> None:
    assert table4.within(LAT, 10.0).tolist() == [True, False, True, False, True]


def test_oracle_is_the_most_accurate_architecture_within_the_limit() -> None:
    assert table4.oracle(ACC, LAT, 10.0) == 2  # 90 and 85 are over the limit
    assert table4.oracle(ACC, LAT, 12.0) == 1
    assert table4.oracle(ACC, LAT, 4.0) == 4


def test_oracle_refuses_a_limit_nothing_meets() -> None:
    with pytest.raises(ValueError, match=r"no architecture is within 2\.5 ms"):
        table4.oracle(ACC, LAT, 2.5)


def test_answer_is_the_most_accurate_feasible_evaluation() -> None:
    assert table4.answer([1, 3, 0], ACC, LAT, 10.0) == 0  # 1 and 3 more accurate, too slow
    assert table4.answer([4, 2, 0], ACC, LAT, 10.0) == 2
    assert table4.answer([1, 3], ACC, LAT, 10.0) is None
    assert table4.answer([], ACC, LAT, 10.0) is None


def test_summary_counts_answers_over_the_limit_and_runs_without_one() -> None:
    # answer 1 breaks the 10 ms limit (as an answer judged by a predicted latency could)
    summary = table4.summarise([2, 0, None, 1], ACC, LAT, 10.0)
    assert summary.oracle_accuracy == 80.0
    assert summary.over_limit_share == 0.25
    assert summary.no_answer_share == 0.25
    assert summary.best_accuracy_mean == pytest.approx((80 + 70 + 90) / 3)
    assert summary.gap_pp == pytest.approx(80 - (80 + 70 + 90) / 3)
    clean = table4.summarise([2, 2], ACC, LAT, 10.0)
    assert (clean.gap_pp, clean.over_limit_share, clean.no_answer_share) == (0.0, 0.0, 0.0)
    nothing = table4.summarise([None], ACC, LAT, 10.0)
    assert nothing.best_accuracy_mean is None and nothing.gap_pp is None
    assert nothing.no_answer_share == 1.0


def _synthetic(tmp_path: Path) -> tuple[Path, Path]:
    """All 15,625 cells: accuracy and latency linear in the counts of convolutions."""
    rows_acc, rows_lat = ["index,arch,cifar10_acc,cifar100_acc,imagenet16_acc"], []
    rows_lat.append("index,arch,dev_a,dev_b")
    for i, ops in enumerate(itertools.product(OPERATIONS, repeat=6)):
        arch = "|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(*ops)
        n3 = ops.count("nor_conv_3x3")
        n1 = ops.count("nor_conv_1x1")
        pool = ops.count("avg_pool_3x3")
        lat = 1.0 + 2.0 * n3 + n1
        rows_acc.append(f"{i},{arch},{80 + n1 + pool},{50 + 5 * n3 + 2 * n1},{20 + n3}")
        rows_lat.append(f"{i},{arch},{lat},{2 * lat + 0.5 * pool}")
    acc, lat = tmp_path / "accuracy.csv", tmp_path / "latency_ms.csv"
    acc.write_text("\n".join(rows_acc) + "\n")
    lat.write_text("\n".join(rows_lat) + "\n")
    return acc, lat


def test_a_run_reports_the_issue_keys_and_never_an_answer_over_the_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    acc, lat = _synthetic(tmp_path)
    # dev_a <= 5 ms: 2 n3 + n1 <= 4; cifar100 = 50 + 5 n3 + 2 n1 is best at n3 = 2: 60 %.
    # dev_b <= 3 ms: n3 = n1 = 0 and at most one pool (2 + 0.5): 50 %.
    args = ["--accuracy-csv", str(acc), "--latency-csv", str(lat), "--target", "dev_a,dev_b"]
    args += ["--limit-ms", "5,2.5", "--budget", "10,30", "--seeds", "2"]
    args += ["--strategies", "random,default", "--jobs", "1"]
    assert table4.main([*args, "--prior-latency-csv", str(lat)]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    settings = [x for x in lines if x["target"] != "mean"]
    assert len(settings) == 2 * 2 * 2  # targets x strategies x budgets
    for line in settings:
        for key in ("best_accuracy_mean", "oracle_accuracy", "gap_pp", "over_limit_share"):
            assert key in line
        assert line["dataset"] == "cifar100" and line["prior"] is True
        assert line["evaluations"] == line["budget"]
        assert line["over_limit_share"] == 0.0
        expected = 60.0 if line["target"] == "dev_a" else 50.0
        assert line["oracle_accuracy"] == expected
        assert line["limit_ms"] == (5.0 if line["target"] == "dev_a" else 2.5)
        if line["best_accuracy_mean"] is None:  # 1.6 % of dev_b's cells are within 2.5 ms
            assert line["no_answer_share"] == 1.0 and line["gap_pp"] is None
            continue
        assert line["best_accuracy_mean"] <= expected
        assert line["gap_pp"] == pytest.approx(expected - line["best_accuracy_mean"], abs=1e-3)
    means = [x for x in lines if x["target"] == "mean"]
    assert {(m["strategy"], m["budget"]) for m in means} == {
        (s, n) for s in ("random", "default") for n in (10, 30)
    }
    # the default strategy, with the other device known, finds dev_a's optimum in 30
    (default_a,) = [
        x for x in settings if (x["target"], x["strategy"], x["budget"]) == ("dev_a", "default", 30)
    ]
    assert default_a["gap_pp"] == 0.0


def test_dataset_picks_the_accuracy_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    acc, lat = _synthetic(tmp_path)
    args = ["--accuracy-csv", str(acc), "--latency-csv", str(lat), "--target", "dev_a"]
    args += ["--limit-ms", "1", "--budget", "5", "--seeds", "1", "--strategies", "random"]
    assert table4.main([*args, "--jobs", "1", "--dataset", "cifar10"]) == 0
    first = json.loads(capsys.readouterr().out.splitlines()[0])
    # within 1 ms: no convolution; cifar10 = 80 + pools, best with 6 pools
    assert first["oracle_accuracy"] == 86.0 and first["dataset"] == "cifar10"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--target", "dev_a,dev_b", "--limit-ms", "5"], "1 limit(s) for 2 target(s)"),
        (["--target", "dev_c", "--limit-ms", "5"], "'dev_c' is not a column"),
        (["--target", "dev_a", "--limit-ms", "0.5"], "no architecture is within 0.5 ms"),
        (["--target", "dev_a", "--limit-ms", "fast"], "--limit-ms: expected numbers"),
    ],
)
def test_bad_arguments_name_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    acc, lat = _synthetic(tmp_path)
    args = ["--accuracy-csv", str(acc), "--latency-csv", str(lat), "--budget", "5"]
    args += ["--seeds", "1", "--strategies", "random", "--jobs", "1", *extra]
    with pytest.raises(SystemExit):
        table4.main(args)
    assert message in capsys.readouterr().err
