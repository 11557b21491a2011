"""Candidate features, predictors with uncertainty, evaluation metrics and transfer to a new
device from few measurements."""

from hwsearch.predictors.features import (
    Features,
    cnn_features,
    featurize,
    mlp_features,
    nb201_codes_from_archs,
    nb201_codes_from_configs,
    nb201_features,
    nb201_op_counts,
    nb201_used_edges,
    transformer_features,
)
from hwsearch.predictors.metrics import METRIC_NAMES, evaluate
from hwsearch.predictors.models import (
    PREDICTORS,
    ForestPredictor,
    GPPredictor,
    Predictor,
    RidgePredictor,
    make_predictor,
)
from hwsearch.predictors.transfer import (
    TransferPredictor,
    pruned_sources,
    random_set,
    reference_set,
    source_factors,
)

__all__ = [
    "METRIC_NAMES",
    "PREDICTORS",
    "Features",
    "ForestPredictor",
    "GPPredictor",
    "Predictor",
    "RidgePredictor",
    "TransferPredictor",
    "cnn_features",
    "evaluate",
    "featurize",
    "make_predictor",
    "mlp_features",
    "nb201_codes_from_archs",
    "nb201_codes_from_configs",
    "nb201_features",
    "nb201_op_counts",
    "nb201_used_edges",
    "pruned_sources",
    "random_set",
    "reference_set",
    "source_factors",
    "transformer_features",
]
