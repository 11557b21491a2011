from __future__ import annotations

import pytest

from hwsearch.errors import FilterError
from hwsearch.search.filters import parse_filter
from hwsearch.search.objectives import METRICS

POINT = {"accuracy": 0.92, "latency_ms": 3.0, "size_bytes": 5000.0}


def test_simple_comparisons() -> None:
    assert parse_filter("latency_ms < 4", METRICS)(POINT)
    assert not parse_filter("latency_ms >= 4", METRICS)(POINT)
    assert parse_filter("accuracy==0.92", METRICS)(POINT)
    assert parse_filter("size_bytes != 1e3", METRICS)(POINT)
    assert parse_filter("latency_ms > -1.5", METRICS)(POINT)


def test_precedence_not_and_or() -> None:
    # and binds tighter than or: true or (false and false) -> true
    f = parse_filter("accuracy > 0.9 or latency_ms > 10 and size_bytes > 1e9", METRICS)
    assert f(POINT)
    # parentheses change it: (true or false) and false -> false
    g = parse_filter("(accuracy > 0.9 or latency_ms > 10) and size_bytes > 1e9", METRICS)
    assert not g(POINT)
    # not binds tighter than and
    h = parse_filter("not accuracy < 0.5 and latency_ms < 1", METRICS)
    assert not h(POINT)
    assert parse_filter("not (accuracy < 0.5 and latency_ms < 1)", METRICS)(POINT)
    assert parse_filter("NOT not accuracy > 0.9", METRICS)(POINT)
    assert f.metrics == {"accuracy", "latency_ms", "size_bytes"}


def test_missing_metric_compares_false() -> None:
    f = parse_filter("peak_memory_bytes < 10", METRICS)
    assert not f(POINT)
    assert parse_filter("not peak_memory_bytes < 10", METRICS)(POINT)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "foo < 3",
            "unknown metric 'foo' at column 1 (a filter compares metrics, not config knobs); "
            "known: accuracy, carbon_embodied_g_per_1k",
        ),
        ("latency_ms <= fast", "expected a number after '<=' at column 15, found 'fast'"),
        ("latency_ms <=", "expected a number after '<=' at the end, found nothing"),
        ("latency_ms 3", "expected a comparison (< <= > >= == !=) after 'latency_ms' at column 12"),
        ("(accuracy > 1", "expected ')' at the end to close the '(' at column 1"),
        ("accuracy > 1)", "expected 'and', 'or' or the end at column 13, found ')'"),
        ("accuracy > 1 and", "expected a metric name at the end, found nothing"),
        ("accuracy = 1", "unexpected character '=' at column 10 ('=' compares only as '==')"),
        ("", "empty filter"),
        ("accuracy > 1; rm -rf", "unexpected character ';' at column 13"),
        (
            "layers[features.*].sparsity == 0.5",
            "unexpected character '[' at column 7 (a filter compares metrics, not config knobs)",
        ),
    ],
)
def test_errors_say_where_and_why(text: str, message: str) -> None:
    with pytest.raises(FilterError) as info:
        parse_filter(text, METRICS)
    assert str(info.value).startswith(message)


def test_no_code_execution() -> None:
    for text in ("__import__('os')", "__import__('os').system('true') > 0", "exec < 1"):
        with pytest.raises(FilterError):
            parse_filter(text, METRICS)
    with pytest.raises(FilterError, match='unexpected character "\'" at column 12'):
        parse_filter("__import__('os')", METRICS)
    with pytest.raises(FilterError, match="unknown metric '__import__'"):
        parse_filter("__import__ < 1", METRICS)
    with pytest.raises(FilterError, match="unexpected character '\\['"):
        parse_filter("accuracy[0] > 1", METRICS)


def test_restricted_known_metrics_and_text_form() -> None:
    with pytest.raises(FilterError, match=r"unknown metric 'macs' at column 1 .*; known: accuracy"):
        parse_filter("macs < 3", ["accuracy"])
    f = parse_filter("not (accuracy>0.5 or accuracy<0.1) and accuracy != 0.3", ["accuracy"])
    assert str(f) == "not (accuracy > 0.5 or accuracy < 0.1) and accuracy != 0.3"
    assert parse_filter(str(f), ["accuracy"]).root == f.root
