"""Every sparsity pattern and bit-width on a Linear and on a Conv, simulated and materialised."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from hwsearch.models.compression import ActFakeQuant, calibrate_activations
from hwsearch.models.custom.compress import ACT_QUANT, bake, compress
from hwsearch.models.custom.materialize import (
    DYNAMIC,
    FP32,
    INT4,
    INT8,
    STATIC,
    TORCHAO_INT8,
    materialize,
    plan,
)
from hwsearch.models.custom.rules import resolve_rules

from .nets import MLP, Conv1dNet, DepthwiseNet

BITS = (2, 4, 8, 16, 32)
# (model, input shape, the layer under test)
CASES = {
    "linear": (MLP, (8, 64), "fc1"),
    "conv2d": (DepthwiseNet, (4, 3, 8, 8), "features.6"),
    "conv1d": (Conv1dNet, (4, 4, 16), "c2"),
}


def _setup(case: str, knobs: dict) -> tuple[nn.Module, nn.Module, torch.Tensor, nn.Module]:
    cls, shape, name = CASES[case]
    torch.manual_seed(0)
    dense = cls().eval()
    model = copy.deepcopy(dense)
    x = torch.randn(*shape)
    compress(model, resolve_rules(model, {name: knobs}), x[:1])
    return dense, model, x, model.get_submodule(name)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("pattern", ["unstructured", "2:4", "1:4"])
def test_masks(case: str, pattern: str) -> None:
    _, model, x, layer = _setup(case, {"sparsity": 0.5, "sparsity_pattern": pattern})
    w = layer.weight.detach()
    if pattern == "unstructured":
        assert float((w == 0).float().mean()) == pytest.approx(0.5, abs=0.01)
    else:
        n, m = (int(v) for v in pattern.split(":"))
        groups = w.reshape(w.shape[0], -1, m)
        assert int((groups != 0).sum(dim=2).max()) <= n
        assert float((w == 0).float().mean()) == pytest.approx(1 - n / m, abs=0.01)
    baked = bake(model)
    assert torch.equal(baked.get_submodule(CASES[case][2]).weight, w)  # zeros folded in
    assert torch.allclose(baked(x), model(x))


@pytest.mark.parametrize("case", ["linear", "conv2d", "conv1d"])
def test_channel_pattern_shrinks_the_layer(case: str) -> None:
    dense, model, x, layer = _setup(case, {"sparsity": 0.5, "sparsity_pattern": "channel"})
    out = layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels
    full = dense.get_submodule(CASES[case][2])
    full_out = full.out_features if isinstance(full, nn.Linear) else full.out_channels
    assert out == full_out // 2
    assert model(x).shape == dense(x).shape


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("bits", BITS)
def test_weight_bits(case: str, bits: int) -> None:
    dense, model, x, layer = _setup(case, {"weight_bits": bits})
    w = layer.weight.detach()
    w0 = dense.get_submodule(CASES[case][2]).weight.detach()
    if bits == 32:
        assert torch.equal(w, w0)
    elif bits == 16:
        assert torch.equal(w, w0.half().float())
    else:
        levels = max(len(torch.unique(row)) for row in w.reshape(w.shape[0], -1))
        assert levels <= 2**bits - 1
        scale = w0.abs().reshape(w0.shape[0], -1).amax(1) / (2 ** (bits - 1) - 1)
        err = (w - w0).abs().reshape(w0.shape[0], -1).amax(1)
        assert torch.all(err <= scale / 2 + 1e-6)
    mat = materialize(
        bake(model), resolve_rules(model, {CASES[case][2]: {"weight_bits": bits}}), [x]
    )
    path = mat.paths[CASES[case][2]]
    if bits > 8:
        assert path == FP32
    elif case == "linear":
        assert path == DYNAMIC
    else:
        assert path == FP32  # no weight-only convolution kernel on CPUs
    with torch.no_grad():
        tol = 0.05 * float(model(x).abs().max())
        assert torch.allclose(mat.model(x), model(x), atol=tol)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("bits", BITS)
def test_act_bits(case: str, bits: int) -> None:
    dense, model, x, layer = _setup(case, {"act_bits": bits, "weight_bits": 8})
    if bits == 32:
        assert not hasattr(layer, ACT_QUANT)
        return
    quant = getattr(layer, ACT_QUANT)
    assert isinstance(quant, ActFakeQuant) and quant.bits == bits
    seen: list[torch.Tensor] = []
    quant.register_forward_hook(lambda _m, _i, out: seen.append(out.detach()))
    calibrate_activations(model, [x])
    assert bool(quant.observed) or bits == 16
    seen.clear()
    model(x)
    if bits <= 8:
        assert len(torch.unique(seen[0])) <= 2**bits
    else:
        assert torch.equal(seen[0], seen[0].half().float())
    rules = resolve_rules(dense, {CASES[case][2]: {"act_bits": bits, "weight_bits": 8}})
    mat = materialize(bake(model), rules, [x])
    path = mat.paths[CASES[case][2]]
    assert path == (STATIC if bits <= 8 else (DYNAMIC if case == "linear" else FP32))
    with torch.no_grad():
        # below 8 bits the int8 kernels are finer than the simulation: compare with float
        ref = model(x) if bits >= 8 else bake(model)(x)
        assert torch.allclose(mat.model(x), ref, atol=0.08 * float(ref.abs().max()))


def test_bake_leaves_the_compressed_model_alone() -> None:
    _, model, x, layer = _setup("linear", {"sparsity": 0.5, "weight_bits": 4, "act_bits": 8})
    calibrate_activations(model, [x])
    before = model(x)
    baked = bake(model)
    assert not any(isinstance(m, ActFakeQuant) for m in baked.modules())
    assert type(baked.fc1) is nn.Linear
    assert torch.equal(model(x), before)  # the original still compresses
    assert hasattr(layer, "parametrizations")


def test_plan_of_unruled_layers_is_dense_fp32() -> None:
    model = MLP()
    assert set(plan(model, {}).values()) == {FP32}


@pytest.mark.parametrize(
    ("weight_only", "bits", "path"),
    [("torchao", 8, TORCHAO_INT8), ("hwsearch", 8, INT8), ("hwsearch", 4, INT4)],
)
def test_other_weight_only_paths(weight_only: str, bits: int, path: str) -> None:
    _, model, x, _ = _setup("linear", {"weight_bits": bits})
    rules = resolve_rules(model, {"fc1": {"weight_bits": bits}})
    mat = materialize(bake(model), rules, [x], weight_only=weight_only)
    assert mat.paths["fc1"] == path and mat.kernel_path == f"{path}+fp32"
    with torch.no_grad():
        ref = model(x)
        assert torch.allclose(mat.model(x), ref, atol=0.05 * float(ref.abs().max()))
    with torch.inference_mode():  # the measurement protocol runs here
        mat.model(x)


def test_unknown_weight_only_path() -> None:
    with pytest.raises(ValueError, match="weight_only"):
        plan(MLP(), {}, weight_only="fastest")


def test_untraceable_model_falls_back_with_a_note() -> None:
    class Branchy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(8, 8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.sum() > 0:  # data-dependent: FX cannot trace it
                return self.fc(x)
            return -self.fc(x)

    model = Branchy()
    x = torch.randn(4, 8)
    rules = resolve_rules(model, {"fc": {"weight_bits": 8, "act_bits": 8}})
    compress(model, rules, x[:1])
    mat = materialize(bake(model), rules, [x])
    assert mat.paths["fc"] == DYNAMIC and "FX graph-mode quantization failed" in mat.notes[0]


def test_static_int8_quantizes_whole_regions() -> None:
    from hwsearch.models.custom.materialize import static_regions

    from .nets import ResNet

    model = ResNet()
    every = [n for n, m in model.named_modules() if isinstance(m, nn.Linear | nn.Conv2d)]
    features = [n for n in every if n.startswith("features.")]
    assert static_regions(model, every) == [""]
    assert static_regions(model, features) == ["features"]
    assert static_regions(model, ["features.0.conv1"]) == ["features.0.conv1"]
    assert static_regions(model, features[:2]) == ["features.0"]  # the whole block
    x = torch.randn(2, 3, 16, 16)
    rules = resolve_rules(model, {"features.*": {"weight_bits": 8, "act_bits": 8}})
    compress(model, rules, x[:1])
    calibrate_activations(model, [x])
    mat = materialize(bake(model.eval()), rules, [x])
    import torch.ao.nn.quantized as nnq

    convs = [m for m in mat.model.modules() if isinstance(m, nnq.Conv2d)]
    assert len(convs) == len(features)  # every conv of the region runs int8
    # norms were folded into the quantized convolutions, not left as float islands
    assert not any(isinstance(m, nn.BatchNorm2d) for m in mat.model.modules())
    with torch.no_grad():
        ref = model(x)
        assert torch.allclose(mat.model(x), ref, atol=0.1 * float(ref.abs().max()))
