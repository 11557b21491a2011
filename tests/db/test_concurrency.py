"""Several writers at once, lost connections and a PostgreSQL outage: no row is lost.

The outage test stops and starts a PostgreSQL server it made itself
(:class:`ThrowawayPostgres`), never the machine's own.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError

from hwsearch.db import Store, make_engine
from hwsearch.db.retry import is_transient
from hwsearch.records import CandidateStatus, JobState, MetricValue, Provenance
from hwsearch.search.driver import run_job
from hwsearch.search.spec import parse_spec
from hwsearch.workers import EvalOutcome, EvalTask, InProcessExecutor, evaluate_safely

WRITERS = 4
PER_WRITER = 40
SHARED = 20


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
def pg_url(postgres_server_url: str) -> Iterator[str]:
    """A fresh schema on the test PostgreSQL server (as the shared ``db_url`` makes one)."""
    schema = f"hwsearch_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_libpq(postgres_server_url), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = make_url(postgres_server_url).set(drivername="postgresql")
    url = url.update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with psycopg.connect(_libpq(postgres_server_url), autocommit=True) as conn:
            conn.execute("SET lock_timeout = '10s'")
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def _metrics(i: int) -> list[MetricValue]:
    return [
        MetricValue("accuracy", 0.5 + i / 1000, Provenance.MEASURED, "cpu"),
        MetricValue("latency_ms", 1.0 + i, Provenance.MEASURED, "cpu"),
    ]


def test_concurrent_writers_keep_every_row(db_url: str) -> None:
    """Writers each with their own store: their jobs complete, a shared job has each
    config once, and every result of every writer is stored."""
    Store.open(db_url).close()
    with Store.open(db_url) as store:
        shared = store.create_job(name="shared", family="mlp", target="cpu", spec={}).id
    errors: list[BaseException] = []
    start = threading.Barrier(WRITERS)

    def writer(w: int) -> None:
        try:
            with Store.open(db_url) as mine:
                job = mine.create_job(name=f"w{w}", family="mlp", target="cpu", spec={}).id
                start.wait()
                for first in range(0, PER_WRITER, 8):
                    items = [(f"w{w}-{i}", {"i": i}, first // 8) for i in range(first, first + 8)]
                    for c in mine.add_candidates(job, items):
                        mine.record_result(c.id, _metrics(c.generation), feasible=True)
                    # Everyone proposes the same shared configs at once.
                    same = [(f"s-{i}", {"i": i}, 0) for i in range(SHARED)]
                    mine.add_candidates(shared, same)
        except BaseException as exc:  # reported below, with the writer's error
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    with Store.open(db_url) as store:
        jobs = {j.name: j for j in store.list_jobs()}
        assert store.count_candidates(shared) == SHARED
        for w in range(WRITERS):
            job = jobs[f"w{w}"]
            assert job.evaluations == PER_WRITER
            done = store.list_candidates(job.id, status=CandidateStatus.DONE)
            assert sorted(c.config_hash for c in done) == sorted(
                f"w{w}-{i}" for i in range(PER_WRITER)
            )
            assert all(set(c.metrics) == {"accuracy", "latency_ms"} for c in done)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _real_error(url: str, statement: str) -> DBAPIError:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(statement)
    except DBAPIError as exc:
        return exc
    finally:
        engine.dispose()
    raise AssertionError(f"{statement!r} did not fail")


def test_only_connection_and_conflict_errors_count_as_transient(
    tmp_path: Path, postgres_server_url: str
) -> None:
    refused = _real_error(f"postgresql://nobody@127.0.0.1:{_free_port()}/none", "SELECT 1")
    assert is_transient(refused, "postgresql")
    syntax = _real_error(postgres_server_url, "SELEC 1")
    assert not is_transient(syntax, "postgresql")
    conflict = _real_error(  # the error PostgreSQL raises for a serialisation failure
        postgres_server_url,
        "DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '40001', MESSAGE = 'conflict'; END $$",
    )
    assert getattr(conflict.orig, "sqlstate", None) == "40001"
    assert is_transient(conflict, "postgresql")
    missing = _real_error(f"sqlite:///{tmp_path / 'x.db'}", "SELECT * FROM missing")
    assert not is_transient(missing, "sqlite")


def test_a_connection_killed_mid_transaction_is_retried(pg_url: str) -> None:
    """The store's transaction waits on a row lock; its backend is terminated; the call
    runs again on a fresh connection and lands once the lock is released."""
    with Store.open(pg_url) as store:
        job = store.create_job(name="j", family="mlp", target="cpu", spec={})
        result: list[Any] = []

        def set_running() -> None:
            try:
                result.append(store.set_job_state(job.id, JobState.RUNNING))
            except BaseException as exc:
                result.append(exc)

        with psycopg.connect(_libpq(pg_url)) as holder:
            holder.execute("SELECT id FROM jobs WHERE id = %s FOR UPDATE", (job.id,))
            thread = threading.Thread(target=set_running)
            thread.start()
            victim = _wait_for_lock_waiter(holder)
            with psycopg.connect(_libpq(pg_url), autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (victim,))
            time.sleep(0.5)
            holder.rollback()  # release the lock; the retried call now goes through
        thread.join(timeout=30)
        assert len(result) == 1
        assert not isinstance(result[0], BaseException), result[0]
        assert store.get_job(job.id).state == JobState.RUNNING


def _wait_for_lock_waiter(holder: psycopg.Connection[Any]) -> int:
    deadline = time.monotonic() + 20
    with psycopg.connect(_libpq_from(holder), autocommit=True) as watcher:
        while time.monotonic() < deadline:
            row = watcher.execute(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND pid <> %s AND query ILIKE '%%FOR UPDATE%%'",
                (holder.info.backend_pid,),
            ).fetchone()
            if row is not None:
                return int(row[0])
            time.sleep(0.05)
    raise AssertionError("the store's transaction never waited on the lock")


def _libpq_from(conn: psycopg.Connection[Any]) -> str:
    info = conn.info
    return f"host={info.host} port={info.port} dbname={info.dbname} user={info.user}"


def test_a_result_stored_again_lands_once_and_a_different_one_is_refused(db_url: str) -> None:
    """What a retry after a commit that did land meets: the same values already stored, so
    the call succeeds without a second row; other values for a stored metric are refused."""
    with Store.open(db_url) as store:
        job = store.create_job(name="j", family="mlp", target="cpu", spec={})
        [c] = store.add_candidates(job.id, [("h", {}, 0)])
        store.record_result(c.id, _metrics(0), feasible=True)
        store.record_result(c.id, _metrics(0), feasible=True)  # the retry of a landed commit
        with store.engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT count(*) FROM measurements").scalar()
        assert rows == 2 and len(store.get_candidate(job.id, c.id).metrics) == 2
        with pytest.raises((IntegrityError, ValueError)):
            store.record_result(c.id, _metrics(1), feasible=True)
        assert store.get_candidate(job.id, c.id).metrics["latency_ms"].value == 1.0


# -- an outage of a server of the test's own ---------------------------------------------------


def _wait_for_postgres(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with psycopg.connect(_libpq(url), connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return
        except psycopg.Error:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


class StopsPostgres:
    """The real evaluation; the second one also stops the test's PostgreSQL for
    ``outage_s`` seconds."""

    def __init__(self, server: Any, outage_s: float) -> None:
        self.server = server
        self.outage_s = outage_s
        self.calls = 0
        self.restarted = threading.Event()

    def __call__(self, task: EvalTask) -> EvalOutcome:
        self.calls += 1
        outcome = evaluate_safely(task)
        if self.calls == 2:
            self.server.stop()
            threading.Thread(target=self._start_later, daemon=True).start()
        return outcome

    def _start_later(self) -> None:
        time.sleep(self.outage_s)
        self.server.start()
        self.restarted.set()


@pytest.mark.postgres
def test_postgres_stopped_during_a_job_the_driver_retries_and_loses_nothing(
    throwaway_postgres: Any, tiny_spec: dict[str, Any], caplog: Any
) -> None:
    evaluate = StopsPostgres(throwaway_postgres, outage_s=3.0)
    caplog.set_level(logging.WARNING, logger="hwsearch.db")
    try:
        with Store.open(throwaway_postgres.url) as store:
            job = run_job(
                parse_spec(tiny_spec), store, executor=InProcessExecutor(evaluate=evaluate)
            )
            candidates = store.list_candidates(job.id)
    finally:
        evaluate.restarted.wait(timeout=30)
    assert evaluate.calls == 6
    assert job.state == JobState.FINISHED
    assert len(candidates) == 6
    assert all(c.status == CandidateStatus.DONE for c in candidates)
    assert any("retrying" in r.getMessage() for r in caplog.records)  # it did meet the outage
