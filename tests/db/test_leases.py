"""Job leases: one holder at a time, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time

import pytest

from hwsearch.db import Store
from hwsearch.db.leases import JobLeased, LeaseKeeper, LeaseLost, LeaseOwner, Leases, LeaseSettings
from hwsearch.errors import NotFoundError
from hwsearch.records import JobState

RACERS = 8


def test_of_drivers_racing_for_a_job_exactly_one_wins(db_url: str) -> None:
    Store.open(db_url).close()
    with Store.open(db_url) as store:
        job_id = store.create_job(name="j", family="mlp", target="cpu", spec={}).id
    won: list[LeaseOwner] = []
    start = threading.Barrier(RACERS)

    def race() -> None:
        with Store.open(db_url) as mine:  # each driver with its own connections
            owner = LeaseOwner()
            start.wait()
            if Leases(mine).acquire(job_id, owner, 30):
                won.append(owner)

    threads = [threading.Thread(target=race) for _ in range(RACERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1
    with Store.open(db_url) as store:
        lease = store.get_job(job_id).lease
        assert lease is not None and lease.owner == won[0].id


def test_a_lease_is_taken_only_when_free_own_or_expired(store: Store) -> None:
    job = store.create_job(name="j", family="mlp", target="cpu", spec={})
    leases, a, b = Leases(store), LeaseOwner(), LeaseOwner()
    assert leases.acquire(job.id, a, 0.3)
    assert not leases.acquire(job.id, b, 30) and not leases.renew(job.id, b, 30)
    with pytest.raises(JobLeased, match=rf"job {job.id} is being run by runner {a.id[:8]}"):
        leases.take(job.id, b, 30)
    assert leases.acquire(job.id, a, 0.3)  # one's own again: a renewal
    time.sleep(0.35)
    assert leases.acquire(job.id, b, 30)  # expired: taken over
    assert not leases.renew(job.id, a, 30)  # the old holder learns it lost the job
    leases.release(job.id, a)  # not a's to give back: nothing changes
    assert store.get_job(job.id).lease.owner == b.id  # type: ignore[union-attr]
    leases.release(job.id, b)
    assert leases.acquire(job.id, a, 30)  # given back: free at once
    with pytest.raises(NotFoundError):
        leases.acquire(99999, a, 30)


def test_a_finished_job_cannot_be_leased(store: Store) -> None:
    job = store.create_job(name="j", family="mlp", target="cpu", spec={})
    store.set_job_state(job.id, JobState.RUNNING)
    store.set_job_state(job.id, JobState.FINISHED)
    assert not Leases(store).acquire(job.id, LeaseOwner(), 30)


def test_the_keeper_renews_and_notices_a_take_over(store: Store) -> None:
    job = store.create_job(name="j", family="mlp", target="cpu", spec={})
    settings = LeaseSettings(duration_s=0.4, heartbeat_s=0.1)
    leases, mine, other = Leases(store), LeaseOwner(), LeaseOwner()
    assert leases.acquire(job.id, mine, settings.duration_s)
    keeper = LeaseKeeper(leases, job.id, mine, settings).start()
    try:
        time.sleep(1.0)  # well past the first lease: renewed meanwhile
        keeper.check()
        assert not leases.acquire(job.id, other, 30)
        # as another driver would after an expiry the keeper missed
        with store.engine.begin() as conn:
            conn.exec_driver_sql(
                "UPDATE jobs SET lease_owner = ? WHERE id = ?"
                if store.engine.dialect.name == "sqlite"
                else "UPDATE jobs SET lease_owner = %s WHERE id = %s",
                (other.id, job.id),
            )
        deadline = time.monotonic() + 5
        while True:
            try:
                keeper.check()
            except LeaseLost as exc:
                assert "taken over" in str(exc)
                break
            assert time.monotonic() < deadline, "the keeper never noticed"
            time.sleep(0.05)
    finally:
        keeper.stop()
    assert store.get_job(job.id).lease.owner == other.id  # type: ignore[union-attr]


def test_lease_settings_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="at least twice heartbeat_s"):
        LeaseSettings(duration_s=10, heartbeat_s=6)
    monkeypatch.setenv("HWSEARCH_LEASE_S", "soon")
    with pytest.raises(ValueError, match="HWSEARCH_LEASE_S must be a number"):
        LeaseSettings.from_environment()
    monkeypatch.setenv("HWSEARCH_LEASE_S", "60")
    monkeypatch.setenv("HWSEARCH_HEARTBEAT_S", "5")
    assert LeaseSettings.from_environment() == LeaseSettings(60, 5)
