"""What every part of the spec shares: the strict model base, short value text, the family
lookup and its default evaluation."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from hwsearch.errors import UnknownNameError

if TYPE_CHECKING:
    from hwsearch.models.base import ModelFamily

Scalar = bool | int | float | str


#: how YAML and JSON, the languages specs are written in, spell these
_SPELLED = {True: "true", False: "false", None: "null"}


def describe(value: Any) -> str:
    """``repr(value)``, cut to 60 characters (for error messages); ``true``, ``false``
    and ``null`` as a spec spells them."""
    if value is None or isinstance(value, bool):
        return _SPELLED[value]
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class SpecModel(BaseModel):
    """A spec section: unknown fields rejected, strict types, no inf or nan, frozen."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


def get_family(name: str) -> ModelFamily:
    """The registered family ``name``, with the built-in families registered first."""
    with contextlib.suppress(ImportError):
        import hwsearch.models  # noqa: F401  # registers the built-in families
    from hwsearch.models.base import get_family as registered

    return registered(name)


def default_evaluation(family: Any) -> str:
    """The evaluation type of ``family`` where a spec names none (``train`` if unknown)."""
    try:
        return get_family(family).default_evaluation if isinstance(family, str) else "train"
    except UnknownNameError:
        return "train"
