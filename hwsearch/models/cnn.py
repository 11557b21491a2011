"""The ``cnn`` family: a small ResNet for 1x8x8 digit images.

Stem conv (+ BatchNorm + activation), then ``stages`` stages of ``blocks`` residual basic
blocks (conv-BN-act-conv-BN, plus the shortcut, then the activation); stage ``i > 0`` starts
with a stride-2 block; global average pooling and a linear classifier.

A block of the per-block knobs is a stage: ``width`` and ``kernel_size`` take one value per
stage. Compression per stage: the stem uses the first ``weight_bits`` / ``act_bits`` entry,
stage ``i`` (its convolutions and shortcut) entry ``i``, the classifier the last entry; an
``act_bits`` entry applies to the activations entering those layers. Channel pruning shrinks
the inner convolution of every residual block (conv1's filters, bn1, conv2's inputs), so the
residual additions keep their shapes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from hwsearch.models.base import Knob, ModelFamily, register_family
from hwsearch.models.compression.knobs import canonical_config, compression_knobs
from hwsearch.models.shapes import ACTIVATION_NAMES, IMAGE_SHAPE

if TYPE_CHECKING:
    import torch

    from hwsearch.models.cnn_net import ResNet

__all__ = ["CNN", "IMAGE_SHAPE", "CNNFamily"]


class CNNFamily(ModelFamily):
    """Small residual networks on 1x8x8 digit images."""

    name = "cnn"
    knobs: Mapping[str, Knob] = {
        "stages": Knob(
            "stages", "int", 2, "number of stages (stage i > 0 halves H, W)", low=1, high=3
        ),
        "blocks": Knob("blocks", "int", 1, "residual basic blocks per stage", low=1, high=3),
        "width": Knob("width", "int", 16, "channels per stage", low=1, high=1024, per_block=True),
        "kernel_size": Knob(
            "kernel_size",
            "choice",
            3,
            "conv kernel size per stage",
            choices=(3, 5, 7),
            per_block=True,
        ),
        "activation": Knob("activation", "choice", "relu", "activation", choices=ACTIVATION_NAMES),
        **compression_knobs(),
    }

    def num_blocks(self, config: Mapping[str, Any]) -> int:
        return int(config.get("stages", self.knobs["stages"].default))

    def canonical(self, config: Mapping[str, Any]) -> dict[str, Any]:
        return canonical_config(self.name, self.knobs, config, self.num_blocks)

    def build(self, config: Mapping[str, Any]) -> ResNet:
        from hwsearch.models.cnn_net import ResNet

        cfg = self.canonical(config)
        return ResNet(cfg["width"], cfg["kernel_size"], cfg["blocks"], cfg["activation"])

    def example_input(self, batch_size: int) -> torch.Tensor:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size!r}")
        import torch

        generator = torch.Generator().manual_seed(0)
        return torch.randn(batch_size, *IMAGE_SHAPE, generator=generator)


CNN = register_family(CNNFamily())
