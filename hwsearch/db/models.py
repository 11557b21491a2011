"""SQLAlchemy models: jobs, candidates, measurements and Pareto fronts.

The schema is created by the Alembic migrations under ``migrations/``; a test checks that
the migrated schema and these models agree. Enumerated columns are stored as short strings
(the enum *values*) with a CHECK constraint, so they read the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Dialect,
    Double,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from hwsearch.records import CandidateStatus, JobState, Provenance, TokenScope

__all__ = [
    "ApiToken",
    "Base",
    "Candidate",
    "DriverEventRow",
    "Front",
    "FrontPointRow",
    "Job",
    "Measurement",
    "PredictorRow",
    "TargetRow",
    "utcnow",
]

# Stable constraint names, so later migrations can address them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JSONType = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp that always reads back in UTC.

    SQLite has no timezone type and returns naive values; they were written in UTC, so the
    zone is attached on the way out. Naive values are refused on the way in.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"timestamp {value!r} has no timezone; use an aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _enum_column(enum_cls: type[enum.Enum], name: str) -> Enum:
    return Enum(
        enum_cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSONType,
        list[Any]: JSONType,
        datetime: UTCDateTime,
    }


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    family: Mapped[str] = mapped_column(String(100))
    target: Mapped[str] = mapped_column(String(100))
    state: Mapped[JobState] = mapped_column(
        _enum_column(JobState, "job_state"), default=JobState.QUEUED, index=True
    )
    spec: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    # Set by the service to ask the job's driver to stop after the generation in flight.
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Energy and carbon of the search itself (hwsearch.hardware.footprint), once it ran.
    footprint: Mapped[dict[str, Any] | None]
    # The lease of the driver running the job (hwsearch.db.leases); migration 0007.
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_host: Mapped[str | None] = mapped_column(String(255))
    lease_pid: Mapped[int | None] = mapped_column(Integer)
    heartbeat_at: Mapped[datetime | None]
    lease_expires_at: Mapped[datetime | None]
    # The API token that submitted the job; it (or an admin token) may cancel it.
    owner_token_id: Mapped[int | None] = mapped_column(
        ForeignKey("api_tokens.id", ondelete="SET NULL")
    )

    candidates: Mapped[list[Candidate]] = relationship(
        back_populates="job", cascade="all, delete-orphan", passive_deletes=True
    )


class Candidate(Base):
    __tablename__ = "candidates"
    __table_args__ = (UniqueConstraint("job_id", "config_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    config_hash: Mapped[str] = mapped_column(String(64))
    config: Mapped[dict[str, Any]]
    generation: Mapped[int] = mapped_column(Integer)
    status: Mapped[CandidateStatus] = mapped_column(
        _enum_column(CandidateStatus, "candidate_status"), default=CandidateStatus.PENDING
    )
    feasible: Mapped[bool | None] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    job: Mapped[Job] = relationship(back_populates="candidates")
    measurements: Mapped[list[Measurement]] = relationship(
        back_populates="candidate",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Measurement.id",
    )


class DriverEventRow(Base):
    """One step of a job's driver (an ask of the optimizer, a result told to it), numbered
    by ``seq`` in the order it happened: what an asynchronous job's resume replays
    (hwsearch.search.driver); migration 0009."""

    __tablename__ = "driver_events"
    __table_args__ = (UniqueConstraint("job_id", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[int] = mapped_column(Integer)


class Measurement(Base):
    """One number about one candidate; ``config_hash`` and ``target`` are copied here so a
    measurement can be found for reuse by another job without joining through the jobs."""

    __tablename__ = "measurements"
    __table_args__ = (
        UniqueConstraint("candidate_id", "metric"),
        Index(None, "config_hash", "target"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    candidate_id: Mapped[int] = mapped_column(
        ForeignKey("candidates.id", ondelete="CASCADE"), index=True
    )
    config_hash: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(100))
    metric: Mapped[str] = mapped_column(String(100))
    value: Mapped[float] = mapped_column(Double)
    provenance: Mapped[Provenance] = mapped_column(_enum_column(Provenance, "provenance"))
    details: Mapped[dict[str, Any]]
    # Digest of the settings the value depends on besides config and target (training
    # settings, timing protocol, seed, tables); reuse across jobs requires it to match.
    context: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    candidate: Mapped[Candidate] = relationship(back_populates="measurements")


class Front(Base):
    __tablename__ = "fronts"
    __table_args__ = (UniqueConstraint("job_id", "generation"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    generation: Mapped[int] = mapped_column(Integer)
    objectives: Mapped[list[Any]]
    directions: Mapped[list[Any]]
    reference_point: Mapped[list[Any]]
    hypervolume: Mapped[float] = mapped_column(Double)
    evaluations: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    points: Mapped[list[FrontPointRow]] = relationship(
        back_populates="front",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="FrontPointRow.position",
    )


class FrontPointRow(Base):
    __tablename__ = "front_points"

    front_id: Mapped[int] = mapped_column(
        ForeignKey("fronts.id", ondelete="CASCADE"), primary_key=True
    )
    candidate_id: Mapped[int] = mapped_column(
        ForeignKey("candidates.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer)
    measured: Mapped[bool] = mapped_column(Boolean)

    front: Mapped[Front] = relationship(back_populates="points")
    candidate: Mapped[Candidate] = relationship()


class ApiToken(Base):
    """A service API token: only the SHA-256 digest of its secret is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scope: Mapped[TokenScope] = mapped_column(_enum_column(TokenScope, "token_scope"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class TargetRow(Base):
    """The energy and carbon profile of one target (hwsearch.hardware.profiles)."""

    __tablename__ = "targets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(
        Enum(
            "cpu",
            "cuda",
            "table",
            name="target_kind",
            native_enum=False,
            create_constraint=True,
            length=16,
        )
    )
    tdp_w: Mapped[float] = mapped_column(Double)
    cores: Mapped[int] = mapped_column(Integer)
    embodied_kgco2e: Mapped[float] = mapped_column(Double)
    lifetime_years: Mapped[float] = mapped_column(Double)
    busy_share: Mapped[float] = mapped_column(Double)
    region: Mapped[str] = mapped_column(String(16))
    pue: Mapped[float] = mapped_column(Double)
    grid_gco2e_per_kwh: Mapped[float | None] = mapped_column(Double)
    meter: Mapped[str] = mapped_column(String(16))
    sources: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class PredictorRow(Base):
    """A fitted predictor of one metric of a (family, target), numbered by ``version``;
    ``state`` is the fitted model in JSON form (see hwsearch.predictors.registry)."""

    __tablename__ = "predictors"
    __table_args__ = (UniqueConstraint("family", "target", "metric", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    family: Mapped[str] = mapped_column(String(100))
    target: Mapped[str] = mapped_column(String(100))
    metric: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    training_size: Mapped[int] = mapped_column(Integer)
    features: Mapped[list[Any]]
    metrics: Mapped[dict[str, Any]]
    state: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PredictionRow(Base):
    """A predictor's value of one metric of a candidate, made before (or instead of) a
    measurement: the job's predicted-vs-measured record."""

    __tablename__ = "predictions"
    __table_args__ = (UniqueConstraint("candidate_id", "metric"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    candidate_id: Mapped[int] = mapped_column(
        ForeignKey("candidates.id", ondelete="CASCADE"), index=True
    )
    metric: Mapped[str] = mapped_column(String(100))
    value: Mapped[float] = mapped_column(Double)
    std: Mapped[float] = mapped_column(Double)
    predictor_id: Mapped[int | None] = mapped_column(
        ForeignKey("predictors.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    predictor: Mapped[PredictorRow | None] = relationship()
