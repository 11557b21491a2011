"""Data sources: what a trainable evaluation trains, calibrates and tests a candidate on.

A family names its source (:attr:`hwsearch.models.base.ModelFamily.data_source`); the
``train`` evaluation asks the source for the split of the job's seed. ``digits`` (the
scikit-learn 8x8 digits, no download) is the built-in one; plug-ins register theirs.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from torch import nn


@dataclass(frozen=True)
class Split:
    """Inputs and integer labels to train and test on (calibration uses training inputs)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


class DataSource(abc.ABC):
    """A classification data set, split reproducibly by a seed."""

    name: str
    #: How the split is made, stored with every quality metric it produced.
    description: str
    #: What an exported model of this source takes (the sentence its README writes).
    inputs: str = "It takes inputs as the source gives them; no preprocessing is inside."

    @abc.abstractmethod
    def split(self, seed: int) -> Split:
        """The train/test split drawn with ``seed`` (the same for the same seed)."""

    def exported(self, model: nn.Module, seed: int, example: torch.Tensor) -> nn.Module:
        """``model`` as export writes it: by default as is; a source whose models take
        preprocessed inputs wraps the preprocessing in (digits: raw pixel values)."""
        return model


class DigitsSource(DataSource):
    """scikit-learn's digits, stratified 75/25 split, pixels standardised per position."""

    name = "digits"
    description = "sklearn digits, stratified 75/25 split"
    inputs = (
        "It takes raw pixel values of scikit-learn's digits (0..16) and standardises them "
        "inside, with the training split's per-pixel mean and deviation."
    )

    def split(self, seed: int) -> Split:
        from hwsearch.models.data import load_digits_split

        data = load_digits_split(seed)
        return Split(data.x_train, data.y_train, data.x_test, data.y_test)

    def exported(self, model: nn.Module, seed: int, example: torch.Tensor) -> nn.Module:
        from hwsearch.models.data import RawPixelInput, load_digits_split

        return RawPixelInput(model, load_digits_split(seed), example)


_REGISTRY: dict[str, DataSource] = {}


def register_source(source: DataSource) -> DataSource:
    """Register ``source`` under its name (built-ins and plug-ins)."""
    _REGISTRY[source.name] = source
    return source


def get_source(name: str) -> DataSource:
    from hwsearch.errors import UnknownNameError

    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownNameError("data source", name, _REGISTRY) from None


def sources() -> Mapping[str, DataSource]:
    return dict(_REGISTRY)


DIGITS = register_source(DigitsSource())
