"""The pipeline a worker runs: train, compress, fine-tune, measure accuracy and size, deploy."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch
from torch.nn.utils import parametrize

from hwsearch.models import BuiltCandidate, TrainSettings, build_candidate, get_family
from hwsearch.models.data import load_digits_split
from hwsearch.models.training import predict

CNN = get_family("cnn")
MLP = get_family("mlp")


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("epochs", 0),
        ("finetune_epochs", -1),
        ("batch_size", 2.5),
        ("learning_rate", -0.1),
        ("learning_rate", float("nan")),
        ("epochs", True),
    ],
)
def test_train_settings_reject_bad_values(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=field) as info:
        TrainSettings(**{field: value})
    assert repr(value) in str(info.value)


def test_train_settings_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        TrainSettings(4)  # type: ignore[call-arg]
    assert TrainSettings(finetune_epochs=0).epochs == 4


def _same(a: BuiltCandidate, b: BuiltCandidate) -> None:
    assert a.accuracy == b.accuracy
    assert a.size_bytes == b.size_bytes
    assert a.kernel_path == b.kernel_path
    for (name, x), (_, y) in zip(
        a.float_model.state_dict().items(), b.float_model.state_dict().items(), strict=True
    ):
        assert torch.equal(x, y), name


def test_unpruned_cnn_learns_digits_deterministically() -> None:
    config = {"stages": 2, "width": [16, 32]}
    rng_before = torch.get_rng_state()
    first = build_candidate(CNN, config, TrainSettings(), seed=7)
    second = build_candidate(CNN, CNN.canonical(config), TrainSettings(), seed=7)
    assert torch.equal(torch.get_rng_state(), rng_before)  # global RNG untouched
    _same(first, second)
    assert first.accuracy > 0.8
    assert first.kernel_path == "fp32"
    assert first.sparsity == 0.0
    assert not first.model.training and not first.deploy_model.training


def test_seed_changes_the_result() -> None:
    config = {"depth": 1, "width": 16}
    settings = TrainSettings(epochs=2, finetune_epochs=0)
    a = build_candidate(MLP, config, settings, seed=1)
    b = build_candidate(MLP, config, settings, seed=2)
    assert (
        a.float_model.state_dict()["head.weight"]
        .ne(b.float_model.state_dict()["head.weight"])
        .any()
    )


def test_compressed_mlp_candidate() -> None:
    config = {
        "depth": 2,
        "width": 64,
        "sparsity": 0.5,
        "sparsity_pattern": "2:4",
        "weight_bits": 8,
        "act_bits": 8,
    }
    dense = build_candidate(MLP, {"depth": 2, "width": 64}, TrainSettings(), seed=0)
    built = build_candidate(MLP, config, TrainSettings(), seed=0)
    assert built.kernel_path == "x86-int8-static"
    assert built.sparsity == pytest.approx(0.5)
    assert 0.8 < built.accuracy <= 1.0
    # 8-bit values plus 2 index bits for half the weights, against 32 bits for all of them
    assert built.size_bytes < dense.size_bytes / 5
    assert parametrize.is_parametrized(built.model.blocks[0].linear)
    assert not any(parametrize.is_parametrized(m) for m in built.float_model.modules())
    data = load_digits_split(0)
    agreement = predict(built.deploy_model, data.x_test) == predict(built.model, data.x_test)
    assert float(agreement.float().mean()) >= 0.95


def test_channel_pruned_cnn_is_smaller() -> None:
    config = {"stages": 2, "width": [8, 16], "sparsity": 0.5, "sparsity_pattern": "channel"}
    settings = TrainSettings(epochs=2)
    built = build_candidate(CNN, config, settings, seed=0)
    dense = build_candidate(CNN, {"stages": 2, "width": [8, 16]}, settings, seed=0)
    assert built.float_model.stages[1][0].conv1.weight.shape[0] == 8
    assert built.size_bytes < dense.size_bytes
    assert 0.3 < built.sparsity < 0.5  # the inner convs only
    assert built.deploy_model(CNN.example_input(3)).shape == (3, 10)
