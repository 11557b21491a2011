"""Pareto fronts, one per generation of a job, and the hypervolume history."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from functools import cache

from sqlalchemy import (
    Boolean,
    Connection,
    Engine,
    Integer,
    Select,
    Text,
    and_,
    any_,
    bindparam,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from hwsearch.db.checks import MAX_LABEL, check_count, check_finite, check_text
from hwsearch.db.convert import front_record
from hwsearch.db.models import Candidate, Front, FrontPointRow, Job, Measurement
from hwsearch.db.repository import Repository, require_job
from hwsearch.db.retry import install as _install_retries
from hwsearch.errors import ConflictError, HwsearchError, NotFoundError, StorageError
from hwsearch.records import FrontPoint, FrontRecord, HypervolumePoint, NewFront

__all__ = ["FrontRepository", "checked_front", "front_clash", "front_landed", "write_front"]

_DIRECTIONS = ("minimize", "maximize")


class FrontRepository(Repository):
    """The fronts and front_points tables."""

    def save_front(
        self,
        job_id: int,
        *,
        generation: int,
        objectives: list[str],
        directions: list[str],
        reference_point: list[float],
        hypervolume: float,
        evaluations: int,
        points: Sequence[FrontPoint],
    ) -> FrontRecord:
        """Store the Pareto front of one generation.

        Every point must be a candidate of the job with a stored metric for each objective;
        the values of the returned (and later read) points are those stored metrics.
        """
        front = checked_front(
            NewFront(
                job_id, generation, objectives, directions, reference_point, hypervolume,
                evaluations, points,
            )
        )  # fmt: skip
        try:
            with self._write_engine.begin() as connection:
                return write_front(connection, front)
        except IntegrityError as exc:
            if front_landed(self._engine, front):  # a retry whose first COMMIT landed
                with self._reading() as session:
                    query = _fronts_query(job_id).where(Front.generation == generation)
                    return front_record(session.scalars(query).one())
            clash = front_clash(self._engine, front)
            if clash is None:
                raise
            raise clash from exc

    def latest_front(self, job_id: int) -> FrontRecord | None:
        """The front of the job's highest generation, or ``None`` before the first."""
        query = _fronts_query(job_id).order_by(Front.generation.desc()).limit(1)
        with self._reading() as session:
            require_job(session, job_id)
            front = session.scalars(query).one_or_none()
            return None if front is None else front_record(front)

    def list_fronts(self, job_id: int) -> list[FrontRecord]:
        """Every front of the job, by generation (its hypervolume history)."""
        with self._reading() as session:
            require_job(session, job_id)
            query = _fronts_query(job_id).order_by(Front.generation)
            return [front_record(f) for f in session.scalars(query)]

    def latest_front_id(self, job_id: int) -> int | None:
        """The id of the job's newest front (a cheap check whether a cached front is stale)."""
        with self._reading() as session:
            require_job(session, job_id)
            found = session.scalar(
                select(Front.id)
                .where(Front.job_id == job_id)
                .order_by(Front.generation.desc())
                .limit(1)
            )
            return None if found is None else int(found)

    def hypervolume_history(self, job_id: int) -> list[HypervolumePoint]:
        """Hypervolume and front size of every generation, without loading the points."""
        size = (
            select(func.count(FrontPointRow.candidate_id))
            .where(FrontPointRow.front_id == Front.id)
            .correlate(Front)
            .scalar_subquery()
        )
        query = (
            select(Front.generation, Front.evaluations, Front.hypervolume, size)
            .where(Front.job_id == job_id)
            .order_by(Front.generation)
        )
        with self._reading() as session:
            require_job(session, job_id)
            return [
                HypervolumePoint(int(g), int(e), float(hv), int(n or 0))
                for g, e, hv, n in session.execute(query)
            ]


_install_retries(FrontRepository)


def checked_front(front: NewFront) -> NewFront:
    """``front`` with its fields checked (:class:`~hwsearch.errors.StorageError` naming the
    first bad one) and its lists copied; the points' owners and values are checked when it
    is written."""
    if not isinstance(front, NewFront):
        front = NewFront(*front)
    check_count("generation", front.generation)
    check_count("evaluations", front.evaluations)
    _check_front_axes(front.objectives, front.directions, front.reference_point)
    hv = check_finite("hypervolume", front.hypervolume)
    if hv < 0:
        raise StorageError("hypervolume", f"must not be negative, got {front.hypervolume!r}")
    _distinct_candidates(front.points)
    return front._replace(
        objectives=list(front.objectives),
        directions=list(front.directions),
        reference_point=[float(v) for v in front.reference_point],
        hypervolume=hv,
        points=list(front.points),
    )


def write_front(connection: Connection, front: NewFront) -> FrontRecord:
    """Insert a front checked by :func:`checked_front` on ``connection`` (in the caller's
    transaction): one query of its points' owners and stored values, one INSERT of the
    front and one of its points. A job that does not exist, or a generation that has a
    front already, shows as an :class:`~sqlalchemy.exc.IntegrityError`
    (:func:`front_clash` names it)."""
    job_id, objectives, points = front.job_id, list(front.objectives), front.points
    owners, values = _stored_points(connection, {p.candidate_id for p in points}, objectives)
    strangers = any(owners.get(p.candidate_id, (None,))[0] != job_id for p in points)
    if strangers and connection.scalar(select(Job.id).where(Job.id == job_id)) is None:
        raise NotFoundError(f"job {job_id} not found")  # named before its points
    for i, point in enumerate(points):
        owner, stored = owners.get(point.candidate_id), values.get(point.candidate_id)
        _check_point(i, point, owner, stored or {}, job_id, objectives)
    record = FrontRecord(
        id=0,  # given by the INSERT below
        job_id=job_id,
        generation=front.generation,
        objectives=objectives,
        directions=list(front.directions),
        reference_point=list(front.reference_point),
        hypervolume=front.hypervolume,
        evaluations=front.evaluations,
        points=[
            FrontPoint(
                candidate_id=p.candidate_id,
                config_hash=owners[p.candidate_id][1],
                values={name: values[p.candidate_id][name] for name in objectives},
                measured=bool(p.measured),
            )
            for p in points
        ],
    )
    row = {column: getattr(record, column) for column in _FRONT_COLUMNS}
    front_id = connection.execute(_INSERT_FRONT, row).scalar_one()
    if points:
        _insert_points(connection, front_id, points)
    return replace(record, id=front_id)


#: a front's row (built once: the statement is the same for every front)
_INSERT_FRONT = insert(Front).returning(Front.id)
#: the columns of a front's row, named as the fields of its record
_FRONT_COLUMNS = (
    "job_id", "generation", "objectives", "directions", "reference_point", "hypervolume",
    "evaluations",
)  # fmt: skip


def front_landed(engine: Engine, front: NewFront) -> bool:
    """Whether ``front`` is stored already: its generation has a front of the same
    evaluations, hypervolume and points (a retried write whose first COMMIT landed)."""
    with engine.connect() as connection:
        found = connection.execute(
            select(Front.id, Front.evaluations, Front.hypervolume).where(
                Front.job_id == front.job_id, Front.generation == front.generation
            )
        ).first()
        if found is None:
            return False
        front_id, evaluations, hypervolume = found
        points = connection.scalars(
            select(FrontPointRow.candidate_id)
            .where(FrontPointRow.front_id == front_id)
            .order_by(FrontPointRow.position)
        ).all()
    return (evaluations, hypervolume, list(points)) == (
        front.evaluations,
        front.hypervolume,
        [p.candidate_id for p in front.points],
    )


def front_clash(engine: Engine, front: NewFront) -> HwsearchError | None:
    """Why writing ``front`` broke an integrity constraint: its job does not exist, or its
    generation has a front already (``None``: neither)."""
    with engine.connect() as connection:
        if connection.scalar(select(Job.id).where(Job.id == front.job_id)) is None:
            return NotFoundError(f"job {front.job_id} not found")
        taken = connection.scalar(
            select(Front.id).where(
                Front.job_id == front.job_id, Front.generation == front.generation
            )
        )
    if taken is not None:
        return ConflictError(
            "generation",
            f"job {front.job_id} already has a front for generation {front.generation}",
        )
    return None


# On PostgreSQL the points go as arrays through ``unnest``: a statement of fixed text that
# psycopg converts once, where a VALUES list of four parameters a point is parsed anew.
_PG_INSERT_POINTS = text(
    "INSERT INTO front_points (front_id, candidate_id, position, measured) "
    "SELECT :front_id, u.candidate_id, u.position, u.measured "
    "FROM unnest(CAST(:candidate_id AS INTEGER[]), CAST(:position AS INTEGER[]), "
    "CAST(:measured AS BOOLEAN[])) AS u(candidate_id, position, measured)"
).bindparams(
    bindparam("front_id", type_=Integer()),
    bindparam("candidate_id", type_=postgresql.ARRAY(Integer())),
    bindparam("position", type_=postgresql.ARRAY(Integer())),
    bindparam("measured", type_=postgresql.ARRAY(Boolean())),
)


def _insert_points(connection: Connection, front_id: int, points: Sequence[FrontPoint]) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(
            _PG_INSERT_POINTS,
            {
                "front_id": front_id,
                "candidate_id": [p.candidate_id for p in points],
                "position": list(range(len(points))),
                "measured": [bool(p.measured) for p in points],
            },
        )
        return
    connection.execute(
        insert(FrontPointRow),
        [
            {
                "front_id": front_id,
                "candidate_id": p.candidate_id,
                "position": i,
                "measured": bool(p.measured),
            }
            for i, p in enumerate(points)
        ],
    )


def _distinct_candidates(points: Sequence[FrontPoint]) -> set[int]:
    """The candidate ids of ``points``, refusing one given twice."""
    seen: set[int] = set()
    for i, point in enumerate(points):
        if point.candidate_id in seen:
            raise StorageError(
                f"points[{i}].candidate_id", f"candidate {point.candidate_id} appears twice"
            )
        seen.add(point.candidate_id)
    return seen


def _stored_points(
    connection: Connection, ids: set[int], objectives: list[str]
) -> tuple[dict[int, tuple[int, str]], dict[int, dict[str, float]]]:
    """Of candidates ``ids``: each one's (job id, config hash), and its stored objectives
    (one query)."""
    if not ids:
        return {}, {}
    query = _points_query(postgres=connection.dialect.name == "postgresql")
    params = {"ids": sorted(ids), "objectives": list(objectives)}
    owners: dict[int, tuple[int, str]] = {}
    values: dict[int, dict[str, float]] = {}
    for candidate_id, owner, config_hash, metric, value in connection.execute(query, params):
        owners[candidate_id] = (owner, config_hash)
        if metric is not None:
            values.setdefault(candidate_id, {})[metric] = value
    return owners, values


@cache
def _points_query(*, postgres: bool) -> Select[int, int, str, str, float]:
    """:func:`_stored_points`' query, built once: the ids and objectives are parameters,
    on PostgreSQL arrays (``= ANY``: a statement of fixed text that psycopg converts once),
    elsewhere expanding IN lists."""
    if postgres:
        ids = Candidate.id == any_(bindparam("ids", type_=postgresql.ARRAY(Integer())))
        metric = Measurement.metric == any_(bindparam("objectives", type_=postgresql.ARRAY(Text())))
    else:
        ids = Candidate.id.in_(bindparam("ids", expanding=True))
        metric = Measurement.metric.in_(bindparam("objectives", expanding=True))
    return (
        select(
            Candidate.id, Candidate.job_id, Candidate.config_hash, Measurement.metric,
            Measurement.value,
        )
        .outerjoin(Measurement, and_(Measurement.candidate_id == Candidate.id, metric))
        .where(ids)
    )  # fmt: skip


def _fronts_query(job_id: int) -> Select[Front]:
    return (
        select(Front)
        .where(Front.job_id == job_id)
        .options(
            selectinload(Front.points)
            .selectinload(FrontPointRow.candidate)
            .selectinload(Candidate.measurements)
        )
    )


def _check_front_axes(
    objectives: Sequence[str], directions: Sequence[str], reference_point: Sequence[float]
) -> None:
    if not objectives:
        raise StorageError("objectives", "must name at least one metric")
    for i, name in enumerate(objectives):
        check_text(f"objectives[{i}]", name, MAX_LABEL)
    if len(set(objectives)) != len(objectives):
        raise StorageError("objectives", f"names a metric twice: {list(objectives)!r}")
    for field, values in (("directions", directions), ("reference_point", reference_point)):
        if len(values) != len(objectives):
            raise StorageError(field, f"has {len(values)} entries for {len(objectives)} objectives")
    for i, direction in enumerate(directions):
        if direction not in _DIRECTIONS:
            raise StorageError(
                f"directions[{i}]", f"must be 'minimize' or 'maximize', got {direction!r}"
            )
    for i, value in enumerate(reference_point):
        check_finite(f"reference_point[{i}]", value)


def _check_point(
    i: int,
    point: FrontPoint,
    owner: tuple[int, str] | None,
    stored: dict[str, float],
    job_id: int,
    objectives: list[str],
) -> None:
    """``owner`` is the candidate's (job id, config hash), ``stored`` its objective values."""
    if owner is None or owner[0] != job_id:
        raise NotFoundError(
            f"points[{i}]: candidate {point.candidate_id} not found in job {job_id}"
        )
    if point.config_hash != owner[1]:
        raise StorageError(
            f"points[{i}].config_hash",
            f"{point.config_hash!r} is not the hash of candidate {point.candidate_id} "
            f"({owner[1]!r})",
        )
    missing = [name for name in objectives if name not in stored]
    if missing:
        raise StorageError(
            f"points[{i}]",
            f"candidate {point.candidate_id} has no stored {', '.join(map(repr, missing))}; "
            "record its result before saving a front with it",
        )
