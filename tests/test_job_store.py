"""Storing derived jobs in the real Postgres, one fresh database per test."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import psycopg_pool
import pytest

from b2c_monitoring.contract import JobState
from b2c_monitoring.errors import StorageRejected, StorageUnavailable
from b2c_monitoring.processors.jobs import JobReport
from b2c_monitoring.storage.db import make_pool, retry_conflicts
from b2c_monitoring.storage.jobs import JobStore

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 28, 13, 0, tzinfo=UTC)


def report(job_id: str, state: JobState, second: int, tenant: str = "t1", **kw: Any) -> JobReport:
    return JobReport(
        tenant_id=tenant,
        job_id=job_id,
        state=state,
        at=T0 + timedelta(seconds=second),
        job_type="ERP_SYNC",
        **kw,
    )


@pytest.fixture
def pool(fresh_db: str) -> Iterator[psycopg_pool.ConnectionPool]:
    p = make_pool(fresh_db, max_size=4, name="test")
    p.open(wait=True)
    yield p
    p.close()


def test_a_batch_is_derived_and_stored_with_its_timeline(pool: psycopg_pool.ConnectionPool) -> None:
    store = JobStore(pool)
    applied = store.apply(
        [
            report("a", JobState.RUNNING, 1, progress=10),
            report("b", JobState.PENDING, 1),
            report("a", JobState.FAILED, 5, error_message="ERP answered 503"),
        ],
        NOW,
    )
    assert applied.jobs_written == 2
    [a] = store.get("a", ["t1"])
    assert (a.status, a.progress_percent, a.error_message) == (
        JobState.FAILED,
        10,
        "ERP answered 503",
    )
    assert a.started_at == T0 + timedelta(seconds=1)
    assert [(c.status, c.progress_percent) for c in store.timeline("t1", "a")] == [
        (JobState.RUNNING, 10),
        (JobState.FAILED, 0),  # each row the progress its own report carried
    ]


def test_a_later_batch_merges_onto_the_stored_job(pool: psycopg_pool.ConnectionPool) -> None:
    store = JobStore(pool)
    store.apply([report("a", JobState.SUCCEEDED, 9)], NOW)
    store.apply([report("a", JobState.RUNNING, 2, progress=40)], NOW)  # late and out of order
    [a] = store.get("a", None)
    assert (a.status, a.progress_percent, a.started_at) == (
        JobState.SUCCEEDED,
        100,
        T0 + timedelta(seconds=2),
    )


def test_tenants_are_kept_apart(pool: psycopg_pool.ConnectionPool) -> None:
    store = JobStore(pool)
    store.apply(
        [
            report("same", JobState.RUNNING, 1, tenant="t1"),
            report("same", JobState.FAILED, 1, tenant="t2"),
        ],
        NOW,
    )
    assert [j.status for j in store.get("same", ["t1"])] == [JobState.RUNNING]
    assert [j.status for j in store.get("same", ["t2"])] == [JobState.FAILED]
    assert store.get("same", ["t3"]) == []


def test_two_replicas_writing_the_same_jobs_at_once_lose_nothing(fresh_db: str) -> None:
    """Each replica has its own pool; they race on inserting and updating the same rows."""
    reports = [
        report(f"j{i % 20}", JobState.RUNNING, s, progress=s) for i in range(200) for s in (i % 50,)
    ]
    reports += [report(f"j{i}", JobState.SUCCEEDED, 60) for i in range(0, 20, 2)]
    halves = [reports[0::2], reports[1::2]]
    errors: list[BaseException] = []

    def replica(batch: list[JobReport]) -> None:
        p = make_pool(fresh_db, max_size=2, name="replica")
        p.open(wait=True)
        try:
            store = JobStore(p)
            for start in range(0, len(batch), 7):
                store.apply(batch[start : start + 7], NOW)
        except BaseException as exc:
            errors.append(exc)
        finally:
            p.close()

    threads = [threading.Thread(target=replica, args=(h,)) for h in halves]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []

    p = make_pool(fresh_db, max_size=1, name="check")
    p.open(wait=True)
    try:
        # the same reports applied by one writer, in one order, into another tenant's rows
        expected = JobStore(p)
        expected.apply([JobReport(**{**r.__dict__, "tenant_id": "serial"}) for r in reports], NOW)
        for i in range(20):
            [raced] = expected.get(f"j{i}", ["t1"])
            [serial] = expected.get(f"j{i}", ["serial"])
            assert (raced.status, raced.progress_percent, raced.started_at, raced.completed_at) == (
                serial.status,
                serial.progress_percent,
                serial.started_at,
                serial.completed_at,
            )
    finally:
        p.close()


def test_an_unreachable_database_is_a_retryable_error() -> None:
    p = make_pool("postgresql://b2c@127.0.0.1:1/b2c", max_size=1, name="down")
    p.open(wait=False)
    try:
        with pytest.raises(StorageUnavailable) as caught:
            JobStore(p).apply([report("a", JobState.RUNNING, 1)], NOW)
        assert caught.value.retryable
    finally:
        p.close()


def test_nothing_is_half_stored_when_a_batch_fails(
    pool: psycopg_pool.ConnectionPool, fresh_db: str
) -> None:
    store = JobStore(pool)
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        # a job change that the database refuses makes the whole batch fail
        conn.execute("ALTER TABLE job_changes ADD CONSTRAINT no_failed CHECK (status <> 'failed')")
    with pytest.raises(StorageRejected):
        store.apply([report("ok", JobState.RUNNING, 1), report("bad", JobState.FAILED, 1)], NOW)
    assert store.get("ok", None) == []


def test_a_batch_that_loses_every_race_is_refused_as_retryable_not_as_bad_data() -> None:
    """A unique violation that outlasts the retries (writers inserting the same new jobs
    again and again) must reach the collector as retryable: a permanent refusal drops
    the batch."""
    attempts: list[int] = []

    def always_beaten() -> None:
        attempts.append(1)
        raise psycopg.errors.UniqueViolation("another writer inserted this job first")

    with pytest.raises(StorageUnavailable) as caught:
        retry_conflicts(always_beaten, also=(psycopg.errors.UniqueViolation,))
    assert caught.value.retryable
    assert len(attempts) > 1
