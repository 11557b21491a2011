"""Materialisation for the CPU: kernel path per bit-width and agreement with the float model."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
import torch
import torch.ao.nn.quantized as nnq
import torch.ao.nn.quantized.dynamic as nnqd
from torch import nn

from hwsearch.models import get_family
from hwsearch.models.compression import (
    CompressibleNet,
    CompressionSpec,
    apply_compression,
    bake,
    calibrate_activations,
)
from hwsearch.models.data import load_digits_split
from hwsearch.models.deploy import calibration_batches, layer_paths, materialize
from hwsearch.models.training import predict, train

DATA = load_digits_split(0)
ARCH: dict[str, dict[str, Any]] = {
    "mlp": {"depth": 2, "width": 32},
    "cnn": {"stages": 2, "width": [16, 16]},
}


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained() -> dict[str, CompressibleNet]:
    torch.set_num_threads(1)
    nets = {}
    for name, arch in ARCH.items():
        torch.manual_seed(0)
        net = get_family(name).build(arch)
        assert isinstance(net, CompressibleNet)
        train(net, DATA.x_train, DATA.y_train, epochs=4, batch_size=64, learning_rate=0.01, seed=0)
        nets[name] = net.eval()
    return nets


def _compressed(
    trained: dict[str, CompressibleNet], family: str, **compression: Any
) -> tuple[CompressibleNet, CompressionSpec, list[torch.Tensor]]:
    cfg = get_family(family).canonical({**ARCH[family], **compression})
    spec = CompressionSpec.from_config(cfg)
    model, _ = apply_compression(copy.deepcopy(trained[family]), spec)
    calibration = calibration_batches(DATA.x_train, 64)
    calibrate_activations(model, calibration)
    return model.eval(), spec, calibration


def _agreement(a: nn.Module, b: nn.Module) -> float:
    return float((predict(a, DATA.x_test) == predict(b, DATA.x_test)).float().mean())


@pytest.mark.parametrize(
    ("family", "weight_bits", "act_bits", "path"),
    [
        ("mlp", 8, 8, "x86-int8-static"),
        ("cnn", 8, 8, "x86-int8-static"),
        ("cnn", 4, 8, "x86-int8-static"),
        ("mlp", 8, 32, "int8-dynamic-linear"),
        ("cnn", 8, 32, "int8-dynamic-linear+fp32"),
        ("mlp", 16, 16, "fp32"),
        ("cnn", 32, 8, "fp32"),
        ("cnn", [8, 32], 8, "x86-int8-static+fp32"),
        ("mlp", [4, 16], [8, 32], "x86-int8-static+fp32"),
        ("mlp", 8, [8, 32], "x86-int8-static+int8-dynamic-linear"),
    ],
)
def test_kernel_path_follows_the_bit_widths(
    trained: dict[str, CompressibleNet],
    family: str,
    weight_bits: Any,
    act_bits: Any,
    path: str,
) -> None:
    model, spec, calibration = _compressed(
        trained, family, weight_bits=weight_bits, act_bits=act_bits
    )
    deployed, kernel_path = materialize(bake(model), spec, calibration)
    assert kernel_path == path
    assert not deployed.training
    modules = list(deployed.modules())
    dynamic = any(isinstance(m, nnqd.Linear) for m in modules)
    static = any(
        isinstance(m, nnq.Conv2d | nnq.Linear) and not isinstance(m, nnqd.Linear) for m in modules
    )
    assert dynamic == ("int8-dynamic-linear" in path)
    assert static == ("x86-int8-static" in path)
    assert _agreement(deployed, model) >= 0.95
    assert deployed(get_family(family).example_input(3)).shape == (3, 10)


@pytest.mark.parametrize("family", ["mlp", "cnn"])
def test_static_int8_agrees_with_the_compressed_float_model(
    trained: dict[str, CompressibleNet], family: str
) -> None:
    model, spec, calibration = _compressed(
        trained, family, weight_bits=8, act_bits=8, sparsity=0.5, sparsity_pattern="2:4"
    )
    float_model = bake(model).eval()
    deployed, kernel_path = materialize(float_model, spec, calibration)
    assert kernel_path == "x86-int8-static"
    assert _agreement(deployed, model) >= 0.95
    assert _agreement(float_model, model) >= 0.97  # removing 8-bit activation fake-quant
    correct = predict(deployed, DATA.x_test) == DATA.y_test
    reference = predict(model, DATA.x_test) == DATA.y_test
    assert abs(float(correct.float().mean()) - float(reference.float().mean())) < 0.03


def test_channel_pruned_layers_stay_small_when_deployed(
    trained: dict[str, CompressibleNet],
) -> None:
    model, spec, calibration = _compressed(
        trained, "cnn", sparsity=0.5, sparsity_pattern="channel", weight_bits=8, act_bits=8
    )
    deployed, _ = materialize(bake(model), spec, calibration)
    conv1 = deployed.get_submodule("stages.1.0.conv1")
    assert conv1.weight().shape[0] == 8  # quantized module: weight() holds 8 of 16 filters


def test_fp32_path_keeps_masks_as_dense_zeros(trained: dict[str, CompressibleNet]) -> None:
    model, spec, calibration = _compressed(
        trained, "mlp", sparsity=0.8, sparsity_pattern="unstructured"
    )
    deployed, kernel_path = materialize(bake(model), spec, calibration)
    assert kernel_path == "fp32"
    weight = deployed.get_submodule("blocks.0.linear").weight
    assert weight.shape == (32, 64)
    assert float((weight == 0).float().mean()) == pytest.approx(0.8, abs=0.01)
    x = DATA.x_test[:50]
    with torch.no_grad():
        assert torch.allclose(deployed(x), model(x), atol=1e-5)


def test_materialize_rejects_an_unbaked_model(trained: dict[str, CompressibleNet]) -> None:
    model, spec, calibration = _compressed(trained, "mlp", weight_bits=8, act_bits=8)
    with pytest.raises(ValueError, match="bake"):
        materialize(model, spec, calibration)
    layer_paths(model, spec)  # naming the paths needs no baking
    with pytest.raises(ValueError, match="calibration"):
        materialize(bake(model), spec, [])
