"""hwsearch: hardware-aware search and co-design of neural networks."""

from hwsearch.errors import (
    FilterError,
    HwsearchError,
    MeasurementError,
    NotFoundError,
    SpecError,
    SpecErrors,
    UnknownNameError,
)

__version__ = "0.1.0"

__all__ = [
    "FilterError",
    "HwsearchError",
    "MeasurementError",
    "NotFoundError",
    "SpecError",
    "SpecErrors",
    "UnknownNameError",
    "__version__",
]
