"""Features of NAS-Bench-201 cells against PyTorch's own counts of the built networks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hwsearch.errors import SpecError
from hwsearch.hardware import count_macs, count_params
from hwsearch.models.nb201 import NB201, OPERATIONS, arch_string
from hwsearch.predictors import featurize, nb201_codes_from_archs, nb201_features
from hwsearch.predictors.features import nb201_live_edges, nb201_op_counts, nb201_used_edges

CELLS = [
    ["nor_conv_3x3", "nor_conv_1x1", "skip_connect", "none", "avg_pool_3x3", "nor_conv_3x3"],
    ["none"] * 6,
    ["nor_conv_1x1", "nor_conv_1x1", "avg_pool_3x3", "skip_connect", "none", "none"],
]


@pytest.mark.parametrize("ops", CELLS)
def test_macs_and_params_match_pytorch_counts(ops: list[str]) -> None:
    config = {"ops": ops, "channels": 4, "cells": 1}
    features = featurize("nb201", [config])
    row = dict(zip(features.names, features.values[0], strict=True))
    model = NB201.build(config)
    assert math.exp(row["log_params"]) == pytest.approx(count_params(model), rel=1e-9)
    macs = count_macs(model, NB201.example_input_for(config, 1))
    assert math.exp(row["log_macs"]) == pytest.approx(macs, rel=1e-9)


def test_hand_counted_params_of_one_conv_edge() -> None:
    # One 3x3 conv edge adds, per cell, 9*C*C weights + 2*C batch-norm parameters; with
    # C=4, N=1 the three stages (4, 8, 16 channels) add 9*(16+64+256) + 2*(4+8+16).
    base = featurize("nb201", [{"ops": ["none"] * 6, "channels": 4, "cells": 1}])
    one = featurize("nb201", [{"ops": ["nor_conv_3x3"] + ["none"] * 5, "channels": 4, "cells": 1}])
    col = base.names.index("log_params")
    added = math.exp(one.values[0, col]) - math.exp(base.values[0, col])
    assert added == pytest.approx(9 * (16 + 64 + 256) + 2 * (4 + 8 + 16))


def test_onehot_and_counts_from_arch_strings() -> None:
    archs = [arch_string({"ops": ops}) for ops in CELLS]
    features = nb201_features(nb201_codes_from_archs(archs))
    onehot = features.select(("edge",)).values.reshape(3, 6, len(OPERATIONS))
    assert (onehot.sum(axis=2) == 1).all()
    for i, ops in enumerate(CELLS):
        assert [OPERATIONS[j] for j in onehot[i].argmax(axis=1)] == ops
        counts = features.select(("count=",)).values[i]
        assert counts.tolist() == [ops.count(op) for op in OPERATIONS]


def test_whole_space_is_featurised_with_distinct_rows() -> None:
    codes = np.array(np.meshgrid(*[range(5)] * 6, indexing="ij")).reshape(6, -1).T
    features = nb201_features(codes)
    assert features.values.shape == (15625, 30 + 5 + 1 + 4 + 2)
    assert len(np.unique(features.select(("edge",)).values, axis=0)) == 15625


def test_bad_input_names_the_field() -> None:
    with pytest.raises(SpecError, match=r"arch\[1\]"):
        nb201_codes_from_archs([arch_string({"ops": CELLS[0]}), "|conv~0|"])
    with pytest.raises(SpecError, match="unknown operation 'conv_5x5'"):
        nb201_codes_from_archs([arch_string({"ops": CELLS[0]}).replace("nor_conv_1x1", "conv_5x5")])
    with pytest.raises(SpecError, match="channels"):
        featurize("nb201", [{"channels": 4}, {"channels": 8}])
    with pytest.raises(SpecError, match="family"):
        featurize("resnet", [{}])


def test_dead_edges_and_disconnected_cells() -> None:
    # 0->1 conv, 1->3 none, 2->3 none, 0->3 none: node 3 gets nothing, the cell is dead.
    dead = ["nor_conv_3x3", "skip_connect", "nor_conv_1x1", "none", "none", "none"]
    # 0->1 none, 0->2 conv, 1->2 pool (node 1 is unreachable), 2->3 skip: live path 0->2->3.
    partial = ["none", "nor_conv_3x3", "avg_pool_3x3", "none", "nor_conv_1x1", "skip_connect"]
    codes = nb201_codes_from_archs([arch_string({"ops": dead}), arch_string({"ops": partial})])
    assert nb201_live_edges(codes).tolist() == [
        [False] * 6,
        [False, True, False, False, False, True],
    ]
    features = nb201_features(codes)
    assert features.select(("connected",)).values.ravel().tolist() == [0.0, 1.0]
    live = dict(zip(features.names, features.values[1], strict=True))
    assert live["live_count=nor_conv_3x3"] == 1
    assert live["live_count=skip_connect"] == 1
    assert live["live_count=nor_conv_1x1"] == 0  # 1 -> 3, but node 1 is unreachable
    assert live["count=nor_conv_1x1"] == 1


def test_used_edges_and_operation_counts() -> None:
    # The pool on 1->2 computes on zeros (node 1 is unreachable) but feeds the output: used.
    partial = ["none", "nor_conv_3x3", "avg_pool_3x3", "none", "nor_conv_1x1", "skip_connect"]
    # The conv on 0->1 feeds nothing (node 1 has no outgoing operation): unused.
    unused = ["nor_conv_3x3", "none", "none", "skip_connect", "none", "none"]
    dead = ["nor_conv_3x3", "skip_connect", "nor_conv_1x1", "none", "none", "none"]
    codes = nb201_codes_from_archs([arch_string({"ops": ops}) for ops in (partial, unused, dead)])
    assert nb201_used_edges(codes).tolist() == [
        [False, True, True, False, True, True],
        [False, False, False, True, False, False],
        [False] * 6,
    ]
    every = nb201_op_counts(codes)
    assert every.names == tuple(f"count={op}" for op in OPERATIONS[1:])
    assert every.values.tolist() == [[1, 1, 1, 1], [1, 0, 1, 0], [1, 1, 1, 0]]
    used = nb201_op_counts(codes, nb201_used_edges(codes))
    assert used.values.tolist() == [[1, 1, 1, 1], [1, 0, 0, 0], [0, 0, 0, 0]]
    with pytest.raises(ValueError, match="shape"):
        nb201_op_counts(codes, np.ones((3, 5), bool))
