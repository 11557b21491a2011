"""Hypothesis strategies of valid-but-hostile inputs, for the tests and ``bench/hostile.py``.

:func:`hostile_specs` starts from a spec that parses and changes a few of its fields to
what an attacker would send: long lists, huge or boundary numbers, deep nesting, odd
unicode (control characters, right-to-left marks, emoji, combining marks), paths that
point outside any table folder or at devices. Most results are refused; some are valid,
which is the point: the checks must tell them apart without running anything. Needs
``hypothesis`` (a test dependency), imported when a strategy is built.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

#: A spec that parses (an MLP on the CPU, two evaluations).
BASE_SPEC: dict[str, Any] = {
    "name": "hostile",
    "family": "mlp",
    "target": "cpu",
    "space": {
        "depth": {"type": "int", "low": 1, "high": 2},
        "width": {"type": "choice", "values": [8, 16], "per_layer": 2},
    },
    "objectives": [
        {"metric": "accuracy", "direction": "maximize"},
        {"metric": "latency_ms", "direction": "minimize"},
    ],
    "budget": {"evaluations": 2},
    "optimizer": {"name": "optuna-nsga2", "population_size": 2},
}

#: Paths a hostile spec names; ``{secret}`` is replaced by the caller's planted file.
HOSTILE_PATHS = (
    "/proc/self/environ",
    "/etc/passwd",
    "/dev/zero",
    "/dev/urandom",
    "~/.bash_history",
    "~/../../etc/shadow",
    "../../../../../../etc/hostname",
    "{secret}",
    "../{secret_name}",
    "./../{secret_name}",
    "link_to_secret.csv",
    "a/../../{secret_name}",
    "/",
    ".",
    "latency.csv/..",
    "x" * 5000,
    "café/ñ/\u202etxt.csv",
)


def odd_text(max_size: int = 300) -> SearchStrategy[str]:
    """Strings with control characters, bidi marks, emoji, combining marks and the like."""
    from hypothesis import strategies as st

    specials = st.sampled_from(
        [
            "\x00",
            "\x1b[2J",
            "\u202e",
            "\u200b",
            "\ufeff",
            "\U0001f4a9",
            "e\u0301",
            "\ud7ff",
            "\uffff",
            "%00",
            "'; DROP TABLE jobs; --",
            "{{7*7}}",
            "${HOME}",
            "\n",
            "\t",
            "\\",
        ]
    )
    plain = st.text(st.characters(exclude_categories=["Cs"]), max_size=max_size)
    return st.one_of(plain, st.lists(st.one_of(specials, plain), max_size=8).map("".join))


def huge_numbers() -> SearchStrategy[Any]:
    """Numbers at and past every boundary a spec has."""
    from hypothesis import strategies as st

    edges = [0, -1, 1, 2**31 - 1, 2**32 - 1, 2**32, 2**53, 2**63, 10**12, 10**30, -(10**30)]
    return st.one_of(
        st.sampled_from(edges),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        st.sampled_from([1e308, -1e308, 5e-324, 1e9, 0.5]),
    )


def deep(depth: int) -> Any:
    """A list nested ``depth`` levels deep."""
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def where_filters() -> SearchStrategy[str]:
    """``where`` filters: deep, long, malformed and odd."""
    from hypothesis import strategies as st

    nested = st.integers(0, 2000).map(lambda n: "(" * n + "accuracy > 0.5" + ")" * n)
    nots = st.integers(0, 500).map(lambda n: "not " * n + "accuracy > 0.5")
    long = st.integers(1, 400).map(lambda n: " or ".join(["latency_ms < 2"] * n))
    return st.one_of(nested, nots, long, odd_text(), st.just("accuracy > 1e999999"))


def hostile_specs(secret: str = "/nonexistent/secret.csv") -> SearchStrategy[dict[str, Any]]:
    """Specs built from :data:`BASE_SPEC` with one to four hostile changes; ``secret`` is
    a file that must never be read (its path goes into table fields)."""
    from hypothesis import strategies as st

    name = secret.rsplit("/", 1)[-1]
    paths = st.sampled_from(
        [p.format(secret=secret, secret_name=name) for p in HOSTILE_PATHS]
    ) | odd_text(100)
    numbers = huge_numbers()
    scalars = st.one_of(numbers, odd_text(50), st.booleans())

    changes: list[SearchStrategy[tuple[str, Any]]] = [
        st.tuples(st.just("name"), odd_text(20_000) | st.just("x" * 100_000)),
        st.tuples(st.just("seed"), numbers),
        st.tuples(
            st.just("space"),
            st.dictionaries(
                odd_text(40) | st.just("width"),
                st.one_of(
                    st.fixed_dictionaries(
                        {
                            "type": st.just("choice"),
                            "values": st.lists(scalars, min_size=1, max_size=3000)
                            | st.integers(1, 5000).map(lambda n: list(range(n))),
                            "per_layer": numbers,
                        }
                    ),
                    st.fixed_dictionaries(
                        {"type": st.just("int"), "low": numbers, "high": numbers}
                    ),
                    st.fixed_dictionaries(
                        {"type": st.just("float"), "low": numbers, "high": numbers}
                    ),
                    st.integers(1, 200).map(deep),  # JSON-encodable, past the cap
                    scalars,
                ),
                min_size=1,
                max_size=40,
            ),
        ),
        st.tuples(
            st.just("constraints"),
            st.lists(odd_text(80) | st.just("latency_ms <= 5"), max_size=200)
            | st.integers(0, 20_000).map(lambda n: ["accuracy >= 0.1"] * n),
        ),
        st.tuples(
            st.just("budget"),
            st.fixed_dictionaries({"evaluations": numbers}, optional={"wall_time_s": numbers}),
        ),
        st.tuples(
            st.just("optimizer"),
            st.fixed_dictionaries(
                {"name": st.sampled_from(["optuna-nsga2", "random", "pymoo-nsga2", "x"])},
                optional={"population_size": numbers, "n_offsprings": numbers},
            ),
        ),
        st.tuples(
            st.just("target"),
            st.fixed_dictionaries(
                {"name": odd_text(30) | st.just("pixel3"), "table": paths},
                optional={"column": odd_text(30), "key": odd_text(30)},
            )
            | odd_text(60),
        ),
        st.tuples(
            st.just("evaluation"),
            st.fixed_dictionaries(
                {"type": st.just("table"), "table": paths, "column": st.just("pixel3")}
            )
            | st.fixed_dictionaries({"epochs": numbers, "batch_size": numbers}),
        ),
        st.tuples(
            st.just("measurement"),
            st.fixed_dictionaries(
                {"type": st.just("table"), "table": paths, "column": st.just("x")}
            ),
        ),
        st.tuples(
            st.just("prior"),
            st.fixed_dictionaries(
                {
                    "metric": st.just("latency_ms"),
                    "tables": st.lists(st.fixed_dictionaries({"table": paths}), max_size=40),
                }
            ),
        ),
        st.tuples(st.just("family"), st.sampled_from(["nb201", "mlp", "os.system"])),
        st.tuples(odd_text(40), scalars),  # an unknown field
    ]

    def build(picked: list[tuple[str, Any]]) -> dict[str, Any]:
        spec = copy.deepcopy(BASE_SPEC)
        for key, value in picked:
            spec[key] = value
        return spec

    return st.lists(st.one_of(changes), min_size=1, max_size=4).map(build)


__all__ = [
    "BASE_SPEC",
    "HOSTILE_PATHS",
    "deep",
    "hostile_specs",
    "huge_numbers",
    "odd_text",
    "where_filters",
]
