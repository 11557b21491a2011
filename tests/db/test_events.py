"""Driver events: appended in order, one transaction per call, never interleaved."""

from __future__ import annotations

import pytest

from hwsearch.db import Store
from hwsearch.errors import ConflictError, NotFoundError, StorageError
from hwsearch.records import DriverEvent


def test_events_are_appended_in_order_and_a_landed_write_is_not_repeated(store: Store) -> None:
    job = store.create_job(name="j", family="mlp", target="cpu", spec={})
    first = [DriverEvent("async", 0), DriverEvent("ask", 4)]
    assert store.append_events(job.id, first, start=0) == 2
    more = [DriverEvent("tell", 2), DriverEvent("tell", 0), DriverEvent("ask", 2)]
    assert store.append_events(job.id, more, start=2) == 5
    # the same write again (its commit landed, its answer was lost): nothing added
    assert store.append_events(job.id, more, start=2) == 5
    assert store.list_events(job.id) == first + more
    with pytest.raises(ConflictError, match="has 5 driver events, expected 3"):
        store.append_events(job.id, [DriverEvent("tell", 1)], start=3)  # another writer
    assert store.append_events(job.id, [DriverEvent("tell", 1)]) == 6  # no start: appended
    other = store.create_job(name="k", family="mlp", target="cpu", spec={})
    assert store.list_events(other.id) == []


def test_bad_events_are_refused_by_field(store: Store) -> None:
    job = store.create_job(name="j", family="mlp", target="cpu", spec={})
    with pytest.raises(StorageError, match=r"events\[1\].kind"):
        store.append_events(job.id, [DriverEvent("ask", 1), DriverEvent("jump", 0)])
    with pytest.raises(StorageError, match=r"events\[0\].value"):
        store.append_events(job.id, [DriverEvent("tell", -1)])
    assert store.list_events(job.id) == []
    with pytest.raises(NotFoundError):
        store.append_events(job.id + 99, [DriverEvent("ask", 1)])
