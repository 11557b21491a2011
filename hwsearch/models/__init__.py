"""Model families (``mlp``, ``cnn``, ``nb201``, ``transformer``), their compression, training
and deployment.

Importing this package registers the families; ``get_family(name)`` returns one. It does
not import torch: the families' knobs and configs need none, their networks (``*_net.py``)
and the pipeline load it when a model is built, so a spec is checked without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hwsearch.lazy import lazy_names
from hwsearch.models import cnn as _cnn  # noqa: F401  (registers "cnn")
from hwsearch.models import mlp as _mlp  # noqa: F401  (registers "mlp")
from hwsearch.models import nb201 as _nb201  # noqa: F401  (registers "nb201")
from hwsearch.models import transformer as _transformer  # noqa: F401  (registers "transformer")
from hwsearch.models.base import Knob, ModelFamily, family_names, get_family
from hwsearch.models.compression.knobs import CompressionSpec
from hwsearch.models.custom import family as _custom  # noqa: F401  (registers "python")
from hwsearch.models.sources import DataSource, Split, get_source, register_source

if TYPE_CHECKING:
    from hwsearch.models.compression.applied import model_size_bytes
    from hwsearch.models.pipeline import BuiltCandidate, TrainSettings, build_candidate

#: names from modules that import torch, loaded on first use
_LAZY = {
    "BuiltCandidate": "hwsearch.models.pipeline",
    "TrainSettings": "hwsearch.models.pipeline",
    "build_candidate": "hwsearch.models.pipeline",
    "model_size_bytes": "hwsearch.models.compression.applied",
}


__getattr__ = lazy_names(globals(), _LAZY)


__all__ = [
    "BuiltCandidate",
    "CompressionSpec",
    "DataSource",
    "Knob",
    "ModelFamily",
    "Split",
    "TrainSettings",
    "build_candidate",
    "family_names",
    "get_family",
    "get_source",
    "model_size_bytes",
    "register_source",
]
