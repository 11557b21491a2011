"""The ``mlp`` family: a fully connected classifier of the 64 digit pixels.

A block is a hidden layer (Linear + activation). Per-block knobs take one value per hidden
layer. Compression per block: hidden layer ``i`` uses ``weight_bits[i]`` for its weights and
``act_bits[i]`` for the activations entering it; the output layer uses the last entries.
Channel pruning removes hidden neurons (the rows of a hidden layer and the matching columns
of the next layer).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from hwsearch.models.base import Knob, ModelFamily, register_family
from hwsearch.models.compression.knobs import canonical_config, compression_knobs
from hwsearch.models.shapes import ACTIVATION_NAMES, IN_FEATURES, NUM_CLASSES

if TYPE_CHECKING:
    import torch

    from hwsearch.models.mlp_net import MLPNet

__all__ = ["IN_FEATURES", "MLP", "NUM_CLASSES", "MLPFamily"]


class MLPFamily(ModelFamily):
    """Fully connected networks on the flat 64 pixels of a digit."""

    name = "mlp"
    knobs: Mapping[str, Knob] = {
        "depth": Knob("depth", "int", 2, "number of hidden layers", low=1, high=6),
        "width": Knob(
            "width", "int", 64, "neurons per hidden layer", low=1, high=4096, per_block=True
        ),
        "activation": Knob(
            "activation", "choice", "relu", "hidden activation", choices=ACTIVATION_NAMES
        ),
        **compression_knobs(),
    }

    def num_blocks(self, config: Mapping[str, Any]) -> int:
        return int(config.get("depth", self.knobs["depth"].default))

    def canonical(self, config: Mapping[str, Any]) -> dict[str, Any]:
        return canonical_config(self.name, self.knobs, config, self.num_blocks)

    def build(self, config: Mapping[str, Any]) -> MLPNet:
        from hwsearch.models.mlp_net import MLPNet

        cfg = self.canonical(config)
        return MLPNet(cfg["width"], cfg["activation"])

    def example_input(self, batch_size: int) -> torch.Tensor:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size!r}")
        import torch

        generator = torch.Generator().manual_seed(0)
        return torch.randn(batch_size, IN_FEATURES, generator=generator)


MLP = register_family(MLPFamily())
