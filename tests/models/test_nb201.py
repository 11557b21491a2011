"""The nb201 family: configs, architecture strings, the network and its analytic counts."""

from __future__ import annotations

import itertools
import random

import pytest
import torch

from hwsearch.errors import SpecError
from hwsearch.hardware import TableKeyed, count_macs, count_params
from hwsearch.models import family_names, get_family
from hwsearch.models.nb201 import (
    EDGES,
    OPERATIONS,
    arch_string,
    config_from_arch,
    nb201_counts,
)
from hwsearch.models.nb201_net import Zero

NB201 = get_family("nb201")
# Index 1 of the benchmark (the example in the shared data's README).
ARCH = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|"
    "+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
)


def test_registered_keyed_and_not_trainable() -> None:
    assert "nb201" in family_names()
    assert isinstance(NB201, TableKeyed)
    assert NB201.num_blocks({}) == 6 == len(EDGES)
    assert NB201.knobs["ops"].per_block and NB201.knobs["ops"].choices == OPERATIONS
    assert getattr(NB201, "trainable", True) is False  # quality comes from tables


def test_canonical_config() -> None:
    cfg = NB201.canonical({"ops": "skip_connect"})
    assert cfg == {
        "ops": ["skip_connect"] * 6,
        "channels": 16,
        "cells": 5,
        "num_classes": 10,
        "input_size": 32,
    }
    assert NB201.canonical({"ops": ("none",) * 6}) == NB201.canonical({"ops": ["none"] * 6})
    with pytest.raises(SpecError, match=r"ops: has 7 value\(s\); a cell has exactly 6 edges"):
        NB201.canonical({"ops": ["none"] * 7})
    with pytest.raises(SpecError, match=r"ops\[2\]: 'conv' is not one of"):
        NB201.canonical({"ops": ["none", "none", "conv", "none", "none", "none"]})
    with pytest.raises(SpecError, match="input_size: 30 is not a multiple of 4"):
        NB201.canonical({"input_size": 30})
    with pytest.raises(SpecError, match="depth: unknown knob of family 'nb201'"):
        NB201.canonical({"depth": 3})


def test_arch_string_order_and_round_trip() -> None:
    cfg = config_from_arch(ARCH)
    assert cfg["ops"] == [
        "nor_conv_3x3",  # 0 -> 1
        "nor_conv_3x3",  # 0 -> 2
        "avg_pool_3x3",  # 1 -> 2
        "skip_connect",  # 0 -> 3
        "nor_conv_3x3",  # 1 -> 3
        "skip_connect",  # 2 -> 3
    ]
    assert arch_string(cfg) == ARCH
    assert NB201.table_key(cfg) == ARCH  # type: ignore[attr-defined]
    rng = random.Random(0)
    for _ in range(50):
        ops = [rng.choice(OPERATIONS) for _ in range(6)]
        text = arch_string({"ops": ops})
        assert config_from_arch(text)["ops"] == ops
        assert arch_string(config_from_arch(text)) == text
    # the other knobs do not enter the key
    assert arch_string({"ops": cfg["ops"], "channels": 8}) == ARCH


@pytest.mark.parametrize(
    ("arch", "reason"),
    [
        ("|none~0|+|none~0|none~1|", "has 2 node(s) separated by '+'"),
        ("|none~0|+|none~0|+|none~0|none~1|none~2|", "node 2 has 1 edge(s), expected 2"),
        ("|none~0|+|none~0|none~1|+|none~0|none~1|conv~2|", "unknown operation 'conv'"),
        ("|none~0|+|none~0|none~2|+|none~0|none~1|none~2|", "should read 'op~1'"),
        ("none~0+|none~0|none~1|+|none~0|none~1|none~2|", "node 1 'none~0' is not enclosed"),
    ],
)
def test_bad_arch_strings_say_what_is_wrong(arch: str, reason: str) -> None:
    with pytest.raises(SpecError) as info:
        config_from_arch(arch)
    assert info.value.field == "arch"
    assert reason in info.value.reason


def test_all_conv3x3_network_has_the_published_size() -> None:
    """NAS-Bench-201's largest cell (every edge nor_conv_3x3, C=16, N=5): 1.53 MB of
    parameters and 220.11 MFLOPs in the benchmark's tables."""
    model = NB201.build({"ops": "nor_conv_3x3"})
    # hand count: stem 3*16*9 + 2*16; a cell 6*(9c^2 + 2c); reduction c->2c
    # 9*c*2c + 9*(2c)^2 + 2*(2*2c) + c*2c; last BN 2*64; classifier 64*10 + 10
    stem = 3 * 16 * 9 + 32
    cells = sum(5 * 6 * (9 * c * c + 2 * c) for c in (16, 32, 64))
    reductions = sum(9 * c * 2 * c + 9 * 4 * c * c + 8 * c + 2 * c * c for c in (16, 32))
    expected = stem + cells + reductions + 128 + 650
    assert count_params(model) == expected == 1_531_546
    assert nb201_counts({"ops": "nor_conv_3x3"}).params == expected
    macs = count_macs(model, NB201.example_input(1))
    assert macs == nb201_counts({"ops": "nor_conv_3x3"}).macs
    assert macs / 1e6 == pytest.approx(220.11, abs=0.05)


@pytest.mark.parametrize(
    "ops",
    [
        ["none"] * 6,
        ["skip_connect", "avg_pool_3x3", "none", "skip_connect", "none", "avg_pool_3x3"],
        ["nor_conv_1x1", "nor_conv_3x3", "skip_connect", "none", "avg_pool_3x3", "nor_conv_1x1"],
    ],
)
def test_analytic_counts_match_the_built_network(ops: list[str]) -> None:
    for channels, cells, size in [(16, 5, 32), (8, 2, 16)]:
        cfg = {"ops": ops, "channels": channels, "cells": cells, "input_size": size}
        model = NB201.build(cfg)
        counts = nb201_counts(cfg)
        assert counts.params == count_params(model)
        example = NB201.example_input_for(cfg, 1)  # type: ignore[attr-defined]
        assert counts.macs == count_macs(model, example)


def test_none_edges_have_no_parameters_and_output_zeros() -> None:
    conv = ["nor_conv_3x3"] * 6
    base = count_params(NB201.build({"ops": conv}))
    # replacing one conv edge by none removes exactly that edge's conv + BN in 15 cells
    with_none = count_params(NB201.build({"ops": ["none", *conv[1:]]}))
    assert base - with_none == sum(5 * (9 * c * c + 2 * c) for c in (16, 32, 64))
    empty = NB201.build({"ops": "none"})
    cell_params = [p for name, p in empty.named_parameters() if ".edges." in name]
    assert cell_params == []
    assert any(isinstance(m, Zero) for m in empty.modules())
    x = torch.randn(2, 16, 8, 8)
    assert torch.equal(Zero()(x), torch.zeros_like(x))


def test_output_shapes_and_stage_layout() -> None:
    model = NB201.build({"ops": "nor_conv_1x1", "num_classes": 7, "channels": 4, "cells": 2})
    model.eval()
    with torch.no_grad():
        assert model(NB201.example_input(3)).shape == (3, 7)
        big = NB201.example_input_for({"input_size": 64}, 2)  # type: ignore[attr-defined]
        assert big.shape == (2, 3, 64, 64)
        assert model(big).shape == (2, 7)
    assert NB201.example_input(1).shape == (1, 3, 32, 32)
    # stages of N cells at C, 2C, 4C channels with a reduction block in between
    kinds = [type(m).__name__ for m in dict(model.named_modules())["cells"].children()]
    assert kinds == ["Cell", "Cell", "ReductionBlock"] * 2 + ["Cell", "Cell"]
    params = dict(model.named_parameters())
    assert params["stem.0.weight"].shape == (4, 3, 3, 3)
    assert params["classifier.weight"].shape == (7, 16)  # 4C inputs, num_classes outputs


def test_cell_computes_the_sum_over_incoming_edges() -> None:
    """With only skip connections and zeros the cell is exact arithmetic on its input:
    node1 = x, node2 = x + node1, node3 = x + node1 + node2 = 4x."""
    from hwsearch.models.nb201_net import Cell

    cell = Cell(["skip_connect"] * 6, 4)
    x = torch.randn(1, 4, 5, 5)
    assert torch.allclose(cell(x), 4 * x)
    # only the 0->3 edge kept: the output is x
    only_direct = ["none", "none", "none", "skip_connect", "none", "none"]
    assert torch.allclose(Cell(only_direct, 4)(x), x)
    # node 2 skipped from node 1 only, node 3 from node 2 only: node1 = 0 -> output 0
    chain = ["none", "none", "skip_connect", "none", "none", "skip_connect"]
    assert torch.count_nonzero(Cell(chain, 4)(x)) == 0


def test_arch_strings_are_distinct_for_all_15625_cells() -> None:
    keys = {arch_string({"ops": list(ops)}) for ops in itertools.product(OPERATIONS, repeat=6)}
    assert len(keys) == 5**6


def test_cell_structure_reads_the_live_paths_of_the_cell() -> None:
    def structure(*ops: str) -> list[float]:
        return [float(v) for v in NB201.structure([{"ops": list(ops)}])[0]]

    # convolutions on edges no input-output path keeps alive count for nothing
    dead = structure("nor_conv_3x3", "nor_conv_3x3", "nor_conv_3x3", "none", "none", "none")
    assert dead == [0.0] * len(dead) == structure(*["none"] * 6)
    deep = structure(*["nor_conv_3x3"] * 6)
    assert deep[:6] == [1.0] * 6  # some path alive, all of them, each of the four
    assert deep[6] == 1.0 and deep[10] == 1.0  # every edge a live 3x3; a chain of three
    assert deep[-2:] == [1.0, 1.0]
    # only the direct edge 3<-0 alive, a skip: a residual, nothing that convolves
    skip = structure("none", "none", "none", "skip_connect", "none", "none")
    assert skip[:6] == [1.0, 0.25, 1.0, 0.0, 0.0, 0.0]
    assert skip[11] == 1.0 and skip[-2:] == [0.0, 0.0]
    one_conv = structure("nor_conv_1x1", "none", "none", "skip_connect", "skip_connect", "none")
    assert one_conv[-2:] == [1.0, 0.0] and one_conv[7] == pytest.approx(1 / 6)


@pytest.mark.parametrize("seed", range(4))
def test_a_cell_without_live_paths_is_what_the_network_ignores(seed: int) -> None:
    """The structure's 'some path alive' is exactly whether the input reaches the output."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    x1, x2 = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)
    found = set()
    while len(found) < 2:
        ops = [rng.choice(OPERATIONS) for _ in EDGES]
        alive = bool(NB201.structure([{"ops": ops}])[0][0])
        if alive in found:
            continue
        found.add(alive)
        config = NB201.canonical({"ops": ops, "cells": 1})
        model = NB201.build(config).eval()
        with torch.no_grad():
            same = torch.allclose(model(x1), model(x2))
        assert same != alive, ops
