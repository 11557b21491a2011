"""Dependency-aware channel pruning of any model (torch-pruning under per-layer rules)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from hwsearch.errors import SpecError
from hwsearch.hardware.counts import count_params
from hwsearch.models.custom.compress import CompressReport, compress
from hwsearch.models.custom.rules import resolve_rules

from .nets import ConcatNet, DepthwiseNet, ResNet, randomise_norms

torch.manual_seed(0)


def _masked_dense(dense: nn.Module, report: CompressReport) -> nn.Module:
    """The dense model with every removed channel's producing weights, bias and norm zeroed:
    what the pruned model must compute exactly."""
    masked = copy.deepcopy(dense)
    for name, idxs in report.removed_out.items():
        module = masked.get_submodule(name)
        with torch.no_grad():
            if isinstance(module, nn.Linear | nn.Conv1d | nn.Conv2d):
                module.weight[idxs] = 0.0
                if module.bias is not None:
                    module.bias[idxs] = 0.0
            elif isinstance(module, nn.BatchNorm2d):
                module.weight[idxs] = 0.0
                module.bias[idxs] = 0.0
    return masked


def _prune(
    model: nn.Module, layers: dict, shape=(2, 3, 16, 16)
) -> tuple[nn.Module, CompressReport, torch.Tensor]:
    x = torch.randn(*shape)
    report = compress(model, resolve_rules(model, layers), x[:1])
    return model, report, x


def test_residual_net_prunes_tied_channels_together() -> None:
    dense = randomise_norms(ResNet())
    before = count_params(dense)
    pruned, report, x = _prune(
        copy.deepcopy(dense),
        {
            "stem.*": {"sparsity": 0.5, "sparsity_pattern": "channel"},
            "features.*": {"sparsity": 0.5, "sparsity_pattern": "channel"},
        },
    )
    assert pruned(x).shape == (2, 10)
    # the residual stream of stage 1 (stem, blocks 0-1 conv2, block 2 input) is one group
    stream = ["stem.0", "features.0.conv2", "features.1.conv2"]
    assert {report.pruned_out[n] for n in stream} == {(16, 8)}
    assert report.pruned_in["features.2.conv1"] == (16, 8)
    assert report.pruned_in["features.2.short.0"] == (16, 8)
    # the same channels leave every tied layer
    assert len({tuple(report.removed_out[n]) for n in stream}) == 1
    # stage 2's stream: projection shortcut and conv2s tied, the classifier's inputs follow
    assert report.pruned_out["features.2.short.0"] == (32, 16)
    assert report.pruned_in["classifier"] == (32, 16)
    assert pruned.get_submodule("classifier").out_features == 10
    # halving every width quarters the conv weights (the classifier's rows stay)
    after = count_params(pruned)
    assert 0.22 * before < after < 0.32 * before
    assert torch.allclose(pruned(x), _masked_dense(dense, report)(x), atol=1e-5)


def test_untouched_stem_keeps_the_residual_stream_whole() -> None:
    """A group is pruned only when every layer it shrinks has a channel rule."""
    dense = randomise_norms(ResNet())
    pruned, report, x = _prune(
        copy.deepcopy(dense), {"features.*": {"sparsity": 0.5, "sparsity_pattern": "channel"}}
    )
    assert "stem.0" not in report.pruned_out
    assert "features.0.conv2" not in report.pruned_out  # tied to the unruled stem
    assert report.pruned_out["features.0.conv1"] == (16, 8)  # inner convs are free
    assert report.pruned_in["features.0.conv2"] == (16, 8)
    assert torch.allclose(pruned(x), _masked_dense(dense, report)(x), atol=1e-5)


def test_depthwise_and_grouped_convolutions() -> None:
    dense = randomise_norms(DepthwiseNet())
    before = count_params(dense)
    pruned, report, x = _prune(
        copy.deepcopy(dense), {"features.*": {"sparsity": 0.5, "sparsity_pattern": "channel"}}
    )
    assert pruned(x).shape == (2, 10)
    f = pruned.features
    # the depthwise conv follows its producer: same channels, still depthwise
    assert f[0].out_channels == 16 and f[3].in_channels == f[3].out_channels == f[3].groups == 16
    assert report.removed_out["features.0"] == report.removed_out["features.3"]
    # the grouped conv keeps 4 groups with equal shares of channels
    assert f[8].groups == 4 and f[8].out_channels == 32 and f[8].in_channels == 32
    assert f[8].in_channels % f[8].groups == 0
    assert count_params(pruned) < 0.45 * before
    assert torch.allclose(pruned(x), _masked_dense(dense, report)(x), atol=1e-5)


def test_concatenation_prunes_each_branch_and_the_consumer() -> None:
    dense = ConcatNet().eval()
    pruned, report, x = _prune(
        copy.deepcopy(dense),
        {
            "a": {"sparsity": 0.5, "sparsity_pattern": "channel"},
            "b": {"sparsity": 0.5, "sparsity_pattern": "channel"},
        },
    )
    assert pruned.a.out_channels == 4 and pruned.b.out_channels == 8
    assert pruned.mix.in_channels == 12
    assert torch.allclose(pruned(x), _masked_dense(dense, report)(x), atol=1e-5)


def test_channel_rule_on_the_output_layer_is_refused() -> None:
    model = ResNet().eval()
    with pytest.raises(SpecError, match=r"layers\[classifier\].*output"):
        _prune(model, {"classifier": {"sparsity": 0.5, "sparsity_pattern": "channel"}})


class Encoder(nn.Module):
    """torch's transformer encoder layer: attention heads, a residual stream, LayerNorms."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(8, 32)
        self.layer = nn.TransformerEncoderLayer(32, 4, 64, batch_first=True, dropout=0.0)
        self.head = nn.Linear(32, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layer(self.embed(x)).mean(1))


def test_attention_heads_shrink_together_with_the_residual_stream() -> None:
    from hwsearch.models.compression import calibrate_activations
    from hwsearch.models.custom.weights import dump_weights, load_weights

    model = Encoder().eval()
    x = torch.randn(2, 5, 8)
    layers = {
        "embed": {"sparsity": 0.5, "sparsity_pattern": "channel"},
        "layer.*": {"sparsity": 0.5, "sparsity_pattern": "channel", "act_bits": 8},
    }
    report = compress(model, resolve_rules(model, layers), x[:1])
    attn = model.layer.self_attn
    assert attn.num_heads == 4 and attn.embed_dim == 16 and attn.head_dim == 4
    assert report.pruned_out["layer.self_attn"] == (32, 16)
    assert report.pruned_out["layer.norm1"] == (32, 16)  # LayerNorms follow the stream
    assert report.pruned_out["layer.linear1"] == (64, 32)
    assert report.pruned_in["head"] == (32, 16)
    assert model(x).shape == (2, 3)
    calibrate_activations(model, [x])
    again = load_weights(Encoder(), dump_weights(model)).eval()
    assert torch.equal(again(x), model(x))


class SelfAttention(nn.Module):
    """Attention that reshapes by a fixed head size: pruning its projections cannot work."""

    def __init__(self) -> None:
        super().__init__()
        self.q = nn.Linear(16, 16)
        self.k = nn.Linear(16, 16)
        self.v = nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q, k, v = (f(x).view(b, t, 4, 4).transpose(1, 2) for f in (self.q, self.k, self.v))
        y = torch.softmax(q @ k.transpose(-1, -2), -1) @ v
        return y.transpose(1, 2).reshape(b, t, 16)


class HandAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = SelfAttention()
        self.out = nn.Linear(16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.attn(x).mean(1))


def test_channel_rules_inside_a_hand_written_attention_are_refused() -> None:
    model = HandAttention()
    x = torch.randn(2, 3, 16)
    layers = {"attn.v": {"sparsity": 0.5, "sparsity_pattern": "channel"}}
    with pytest.raises(SpecError) as info:
        compress(model, resolve_rules(model, layers), x[:1])
    assert info.value.field == "layers[attn.v].sparsity_pattern"
    assert "SelfAttention" in info.value.reason
    # other patterns are fine there
    compress(model, resolve_rules(model, {"attn.v": {"weight_bits": 8}}), x[:1])
    assert model(x).shape == (2, 2)


def test_untouched_stem_reports_its_tied_rules() -> None:
    model = ResNet().eval()
    _, report, _ = _prune(model, {"features.*": {"sparsity": 0.5, "sparsity_pattern": "channel"}})
    assert "features.0.conv2" in report.unpruned and "features.0.conv1" not in report.unpruned


@pytest.mark.slow
def test_hugging_face_llama_mlp_prunes_gate_and_up_together() -> None:
    transformers = pytest.importorskip("transformers")
    config = transformers.LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=32,
    )
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config).eval()
    x = torch.randint(0, 64, (1, 8))
    layers = {"model.layers.*.mlp": {"sparsity": 0.5, "sparsity_pattern": "channel"}}
    report = compress(model, resolve_rules(model, layers), x)  # traced through ModelOutput.logits
    for i in range(2):
        mlp = model.model.layers[i].mlp
        assert mlp.gate_proj.out_features == mlp.up_proj.out_features == 32
        assert mlp.down_proj.in_features == 32 and mlp.down_proj.out_features == 32
        assert f"model.layers.{i}.mlp.down_proj" in report.unpruned  # the residual stream
    assert model(x).logits.shape == (1, 8, 64)
    with pytest.raises(SpecError, match="LlamaAttention"):
        compress(
            model,
            resolve_rules(
                model,
                {"model.layers.0.self_attn": {"sparsity": 0.5, "sparsity_pattern": "channel"}},
            ),
            x,
        )
