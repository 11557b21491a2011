"""Predictors: fit / predict / evaluate round trip, uncertainty, metrics."""

from __future__ import annotations

import numpy as np
import pytest

from hwsearch.errors import UnknownNameError
from hwsearch.predictors import PREDICTORS, evaluate, make_predictor


def _data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(n, 3))
    y = 2.0 + x[:, 0] - 0.5 * x[:, 1] + 0.3 * np.sin(3 * x[:, 2]) + rng.normal(0, 0.02, n)
    return x, y


@pytest.mark.parametrize("kind", sorted(PREDICTORS))
def test_fit_predict_evaluate_round_trip(kind: str) -> None:
    x, y = _data(120)
    xt, yt = _data(200, seed=1)
    mean, std = make_predictor(kind).fit(x, y).predict(xt)
    assert mean.shape == std.shape == (200,)
    assert (std > 0).all()
    metrics = evaluate(yt, mean)
    assert metrics["spearman"] > 0.9
    assert metrics["kendall"] > 0.7
    assert metrics["rmse"] < 0.3
    # a constant prediction ranks nothing
    assert evaluate(yt, np.full(200, yt.mean()))["spearman"] == 0.0


@pytest.mark.parametrize("kind", ["gp", "ridge", "forest"])
def test_uncertainty_is_larger_far_from_the_data(kind: str) -> None:
    x, y = _data(80)
    model = make_predictor(kind).fit(x, y)
    _, near = model.predict(x[:20] + 0.01)
    far_points = np.tile([[6.0, -6.0, 6.0]], (20, 1))
    _, far = model.predict(far_points)
    if kind == "forest":  # trees cannot extrapolate: their spread is a weaker signal
        assert far.mean() >= near.mean()
    elif kind == "ridge":  # noise dominates; the weights' uncertainty adds far away
        assert far.min() > 1.5 * near.max()
    else:
        assert far.min() > 3 * near.max()


def test_gp_is_calibrated_on_held_out_points() -> None:
    x, y = _data(100)
    xt, yt = _data(400, seed=2)
    mean, std = make_predictor("gp").fit(x, y).predict(xt)
    inside = np.abs(yt - mean) <= 2 * std
    assert 0.85 <= inside.mean() <= 1.0


def test_metrics_by_hand() -> None:
    m = evaluate([1.0, 2.0, 4.0], [1.05, 2.5, 4.0])
    assert m["rmse"] == pytest.approx(np.sqrt((0.05**2 + 0.5**2) / 3))
    assert m["mape"] == pytest.approx((0.05 + 0.25 + 0.0) / 3)
    assert m["within_10pct"] == pytest.approx(2 / 3)
    assert m["spearman"] == pytest.approx(1.0)
    assert m["kendall"] == pytest.approx(1.0)
    assert evaluate([1, 2, 3], [3, 2, 1])["kendall"] == pytest.approx(-1.0)


def test_bad_input_is_rejected_with_the_reason() -> None:
    with pytest.raises(UnknownNameError, match="valid names: forest, gp, ridge"):
        make_predictor("svm")
    with pytest.raises(ValueError, match="3 rows but y has 2"):
        make_predictor("ridge").fit(np.zeros((3, 2)), [1.0, 2.0])
    with pytest.raises(ValueError, match="finite"):
        make_predictor("gp").fit([[0.0], [np.nan]], [1.0, 2.0])
    with pytest.raises(ValueError, match="alpha must be positive"):
        make_predictor("ridge", alpha=0.0)
    with pytest.raises(ValueError, match="2 values but y_pred has 3"):
        evaluate([1, 2], [1, 2, 3])
