"""Model families (``mlp``, ``cnn``, ``nb201``, ``transformer``), their compression, training
and deployment.

Importing this package registers the families; ``get_family(name)`` returns one.
"""

from hwsearch.models import cnn as _cnn  # noqa: F401  (registers "cnn")
from hwsearch.models import mlp as _mlp  # noqa: F401  (registers "mlp")
from hwsearch.models import nb201 as _nb201  # noqa: F401  (registers "nb201")
from hwsearch.models import transformer as _transformer  # noqa: F401  (registers "transformer")
from hwsearch.models.base import Knob, ModelFamily, family_names, get_family
from hwsearch.models.compression import CompressionSpec, model_size_bytes
from hwsearch.models.custom import family as _custom  # noqa: F401  (registers "python")
from hwsearch.models.pipeline import BuiltCandidate, TrainSettings, build_candidate
from hwsearch.models.sources import DataSource, Split, get_source, register_source

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
