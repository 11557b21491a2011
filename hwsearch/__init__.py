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


def __getattr__(name: str) -> object:
    """``hwsearch.search`` (callable: search your own model) without importing it eagerly."""
    if name == "search":
        import importlib

        return importlib.import_module("hwsearch.search")
    raise AttributeError(f"module 'hwsearch' has no attribute {name!r}")


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
