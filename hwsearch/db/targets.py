"""Target profiles (power, cores, embodied carbon, grid), stored by name."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from hwsearch.db.checks import MAX_LABEL, check_finite, check_text, json_object
from hwsearch.db.convert import target_record
from hwsearch.db.models import TargetRow, utcnow
from hwsearch.db.repository import Repository
from hwsearch.db.retry import install as _install_retries
from hwsearch.errors import NotFoundError, StorageError
from hwsearch.records import TargetRecord

__all__ = ["TargetRepository"]


class TargetRepository(Repository):
    """The targets table."""

    def save_target(self, profile: dict[str, Any], *, replace: bool = True) -> TargetRecord:
        """Store a target profile by its ``name`` (the fields of ``TargetRecord`` less the
        timestamps). An existing profile of that name is updated, or with ``replace=False``
        kept as it is and returned."""
        values = check_target_profile(profile)
        with self._writing() as session:
            row = session.scalars(
                select(TargetRow).where(TargetRow.name == values["name"]).with_for_update()
            ).one_or_none()
            if row is None:
                row = TargetRow(**values)
                session.add(row)
            elif replace:
                for key, value in values.items():
                    setattr(row, key, value)
                row.updated_at = utcnow()
            session.flush()
            return target_record(row)

    def get_target(self, name: str) -> TargetRecord:
        with self._reading() as session:
            row = session.scalars(select(TargetRow).where(TargetRow.name == name)).one_or_none()
            if row is None:
                raise NotFoundError(f"target {name!r} not found")
            return target_record(row)

    def list_targets(self) -> list[TargetRecord]:
        """Every stored target profile, by name."""
        with self._reading() as session:
            return [
                target_record(r)
                for r in session.scalars(select(TargetRow).order_by(TargetRow.name))
            ]


_install_retries(TargetRepository)

_TARGET_KINDS = ("cpu", "cuda", "table")
_TARGET_NUMBERS = ("tdp_w", "embodied_kgco2e", "lifetime_years", "busy_share", "pue")


def check_target_profile(profile: object) -> dict[str, Any]:
    """The columns of a target profile, each checked (a ``StorageError`` names the field)."""
    if not isinstance(profile, dict):
        raise StorageError("profile", f"must be a dict, got {type(profile).__name__}")
    allowed = {*_TARGET_NUMBERS, "name", "kind", "cores", "region", "grid_gco2e_per_kwh"}
    allowed |= {"meter", "sources"}
    unknown = sorted(set(profile) - allowed)
    if unknown:
        raise StorageError(unknown[0], f"not a profile field; fields: {', '.join(sorted(allowed))}")
    check_text("name", profile.get("name"), MAX_LABEL)
    if profile.get("kind") not in _TARGET_KINDS:
        raise StorageError(
            "kind", f"must be one of {list(_TARGET_KINDS)}, got {profile.get('kind')!r}"
        )
    values: dict[str, Any] = {"name": profile["name"], "kind": profile["kind"]}
    for key in _TARGET_NUMBERS:
        values[key] = check_finite(key, profile.get(key))
        if values[key] < 0:
            raise StorageError(key, f"must not be negative, got {values[key]!r}")
    cores = profile.get("cores", 1)
    if isinstance(cores, bool) or not isinstance(cores, int) or cores < 1:
        raise StorageError("cores", f"must be an integer >= 1, got {cores!r}")
    values["cores"] = cores
    grid = profile.get("grid_gco2e_per_kwh")
    values["grid_gco2e_per_kwh"] = (
        None if grid is None else check_finite("grid_gco2e_per_kwh", grid)
    )
    check_text("region", profile.get("region"), 16)
    values["region"] = profile["region"]
    meter = profile.get("meter", "auto")
    check_text("meter", meter, 16)
    values["meter"] = meter
    values["sources"] = json_object("sources", profile.get("sources") or {})
    return values
