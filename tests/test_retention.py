"""Retention of the records that are not partitioned (storage/retention.py), in the real
Postgres, one fresh database per test; the round is ``maintain`` as the processor runs it.

Every stored time is relative to the real clock: the store compares them with its own
rows, and a fixed date in the past would age out of the test as the calendar moves."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import psycopg_pool
import pytest

from b2c_monitoring.contract import JobState
from b2c_monitoring.processors.jobs import JobReport
from b2c_monitoring.settings import Settings
from b2c_monitoring.storage.db import make_pool
from b2c_monitoring.storage.jobs import JobStore
from b2c_monitoring.storage.maintenance import maintain
from b2c_monitoring.storage.metrics import MetricsPolicy
from b2c_monitoring.storage.partitions import Retention
from b2c_monitoring.storage.retention import cutoffs, sweep

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)
OLD = NOW - timedelta(days=40)  # past the 30 days of jobs and commands
POLICY = MetricsPolicy()  # the defaults: jobs and commands 30 days, audit 400


@pytest.fixture
def pool(fresh_db: str) -> Iterator[psycopg_pool.ConnectionPool]:
    p = make_pool(fresh_db, max_size=4, name="retention-test")
    p.open(wait=True)
    yield p
    p.close()


def finished(
    pool: psycopg_pool.ConnectionPool,
    job_id: str,
    at: datetime,
    stored: datetime,
    state: JobState = JobState.SUCCEEDED,
) -> None:
    """A job that ran from ``at`` for a minute, stored (updated_at) at ``stored``."""
    JobStore(pool).apply(
        [
            JobReport("t1", job_id, JobState.RUNNING, at, job_type="ERP_SYNC", progress=50),
            JobReport("t1", job_id, state, at + timedelta(minutes=1), job_type="ERP_SYNC"),
        ],
        stored,
    )


def running(pool: psycopg_pool.ConnectionPool, job_id: str, at: datetime) -> None:
    JobStore(pool).apply([JobReport("t1", job_id, JobState.RUNNING, at, progress=10)], at)


def command(
    pool: psycopg_pool.ConnectionPool, job_id: str, state: str, at: datetime, kind: str = "retry"
) -> str:
    done = state in ("done", "failed")
    with pool.connection() as conn:
        row = conn.execute(
            "INSERT INTO job_commands (id, tenant_id, job_id, kind, service_name, requested_by,"
            " requested_at, state, claimed_at, done_at) VALUES"
            " (%s, 't1', %s, %s, 'erp', 'ops', %s, %s, %s, %s) RETURNING id",
            (uuid.uuid4(), job_id, kind, at, state, at if state == "claimed" else None,
             at if done else None),
        ).fetchone()  # fmt: skip
    assert row is not None
    return str(row[0])


def audit(pool: psycopg_pool.ConnectionPool, target: str, at: datetime) -> None:
    with pool.connection() as conn:
        conn.execute(
            "INSERT INTO audit_log (at, actor_name, action, tenant_id, target)"
            " VALUES (%s, 'ops', 'job.retry', 't1', %s)",
            (at, target),
        )


def ids(pool: psycopg_pool.ConnectionPool, sql: str, *params: Any) -> set[str]:
    with pool.connection() as conn:
        return {str(r[0]) for r in conn.execute(sql, params).fetchall()}


def jobs(pool: psycopg_pool.ConnectionPool) -> set[str]:
    return ids(pool, "SELECT job_id FROM jobs")


def timelines(pool: psycopg_pool.ConnectionPool) -> set[str]:
    return ids(pool, "SELECT DISTINCT job_id FROM job_changes")


# ---- pure ------------------------------------------------------------------------------


def test_cutoffs_are_now_minus_each_retention() -> None:
    now = datetime(2026, 6, 1, tzinfo=UTC)  # pure: no store compares with it
    retention = Retention(jobs=timedelta(days=7), job_commands=timedelta(days=3))
    cut = cutoffs(retention, now)
    assert cut.jobs == now - timedelta(days=7)
    assert cut.job_commands == now - timedelta(days=3)
    assert cut.audit == now - timedelta(days=400)
    assert cut.hub_events == now - timedelta(hours=1)
    assert cut.ended == now - timedelta(days=90)  # silences and windows: as resolved alerts


def test_the_audit_log_is_never_kept_shorter_than_what_it_audits() -> None:
    with pytest.raises(ValueError, match="audit"):
        Retention(jobs=timedelta(days=60), audit=timedelta(days=45))
    with pytest.raises(ValueError, match="B2C_AUDIT_RETENTION_DAYS"):
        Settings(job_retention_days=500, audit_retention_days=400)
    assert Settings(job_retention_days=400, audit_retention_days=400).audit_retention_days == 400


# ---- the maintenance round -------------------------------------------------------------


def test_old_finished_jobs_go_with_their_timelines_and_running_or_recent_ones_stay(
    pool: psycopg_pool.ConnectionPool,
) -> None:
    finished(pool, "old-ok", OLD, OLD)
    finished(pool, "old-failed", OLD, OLD, JobState.FAILED)
    finished(pool, "old-cancelled", OLD, OLD, JobState.CANCELLED)
    finished(pool, "recent", NOW - timedelta(days=20), NOW - timedelta(days=20))
    # reported with old times, stored only now (a backfill, a probe's wrong clock)
    finished(pool, "old-but-stored-now", OLD, NOW)
    running(pool, "still-running", OLD)
    JobStore(pool).apply([JobReport("t1", "still-pending", JobState.PENDING, OLD)], OLD)
    assert timelines(pool) == jobs(pool)

    report = maintain(pool, POLICY, NOW)

    kept = {"recent", "old-but-stored-now", "still-running", "still-pending"}
    assert jobs(pool) == kept
    assert timelines(pool) == kept
    assert report.deleted["jobs"] == 3
    assert report.deleted["job_changes"] == 6  # two changes a job
    assert not report.deletes_left


def test_a_job_with_an_open_command_stays_until_the_command_is_done(
    pool: psycopg_pool.ConnectionPool,
) -> None:
    finished(pool, "asked-again", OLD, OLD, JobState.FAILED)
    finished(pool, "being-cancelled", OLD, OLD, JobState.FAILED)
    pending = command(pool, "asked-again", "pending", NOW)
    claimed = command(pool, "being-cancelled", "claimed", NOW, kind="cancel")
    maintain(pool, POLICY, NOW)
    assert jobs(pool) == {"asked-again", "being-cancelled"}
    assert ids(pool, "SELECT id FROM job_commands") == {pending, claimed}

    with pool.connection() as conn:
        conn.execute("UPDATE job_commands SET state = 'done', done_at = %s", (NOW,))
    maintain(pool, POLICY, NOW)
    assert jobs(pool) == set()
    assert timelines(pool) == set()
    # the commands are younger than their retention: they outlive their jobs
    assert ids(pool, "SELECT id FROM job_commands") == {pending, claimed}


def test_done_and_failed_commands_age_out_and_open_ones_never(
    pool: psycopg_pool.ConnectionPool,
) -> None:
    old_done = command(pool, "j1", "done", OLD)
    old_failed = command(pool, "j2", "failed", OLD)
    recent = command(pool, "j3", "done", NOW - timedelta(days=20))
    old_pending = command(pool, "j4", "pending", OLD)
    old_claimed = command(pool, "j5", "claimed", OLD, kind="cancel")
    report = maintain(pool, POLICY, NOW)
    assert ids(pool, "SELECT id FROM job_commands") == {recent, old_pending, old_claimed}
    assert report.deleted["job_commands"] == 2
    assert {old_done, old_failed}.isdisjoint(ids(pool, "SELECT id FROM job_commands"))


def test_the_audit_log_outlives_the_jobs_it_names(pool: psycopg_pool.ConnectionPool) -> None:
    finished(pool, "retried", OLD, OLD, JobState.FAILED)
    audit(pool, "retried", OLD)
    audit(pool, "a-year-ago", NOW - timedelta(days=365))
    audit(pool, "long-gone", NOW - timedelta(days=401))
    report = maintain(pool, POLICY, NOW)
    assert jobs(pool) == set()
    assert ids(pool, "SELECT target FROM audit_log") == {"retried", "a-year-ago"}
    assert report.deleted["audit_log"] == 1


def test_hub_events_silences_and_windows_age_out_and_running_ones_stay(
    pool: psycopg_pool.ConnectionPool,
) -> None:
    long_ago = NOW - timedelta(days=100)  # past the 90 days of resolved alerts
    with pool.connection() as conn:
        for age, job_id in ((timedelta(hours=2), "stale"), (timedelta(minutes=5), "fresh")):
            conn.execute(
                "INSERT INTO hub_events (xid, tenant_id, target, arguments, job_id, created_at)"
                " VALUES (pg_current_xact_id(), 't1', 'JobStatusChanged', '[]', %s, %s)",
                (job_id, NOW - age),
            )
        for name, until in (
            ("ended", long_ago + timedelta(hours=1)),
            ("running", NOW + timedelta(days=1)),
        ):
            conn.execute(
                "INSERT INTO alert_silences (id, tenant_id, dedup_key, until, created_by, reason,"
                " created_at) VALUES (%s, 't1', 'k', %s, 'ops', %s, %s)",
                (uuid.uuid4(), until, name, long_ago),
            )
            conn.execute(
                "INSERT INTO maintenance_windows (id, tenant_id, service_name, starts_at, ends_at,"
                " reason, created_by, created_at) VALUES (%s, 't1', 'erp', %s, %s, %s, 'ops', %s)",
                (uuid.uuid4(), long_ago, until, name, long_ago),
            )  # fmt: skip
    report = maintain(pool, POLICY, NOW)
    assert ids(pool, "SELECT job_id FROM hub_events") == {"fresh"}
    assert ids(pool, "SELECT reason FROM alert_silences") == {"running"}
    assert ids(pool, "SELECT reason FROM maintenance_windows") == {"running"}
    assert (report.deleted["alert_silences"], report.deleted["maintenance_windows"]) == (1, 1)


def test_the_budget_leaves_the_rest_of_a_backlog_for_the_next_rounds(
    pool: psycopg_pool.ConnectionPool,
) -> None:
    for n in range(23):
        finished(pool, f"old-{n:02d}", OLD + timedelta(minutes=n), OLD)
    finished(pool, "recent", NOW - timedelta(days=1), NOW - timedelta(days=1))
    # no time at all: each table gets its one batch a round, and no more
    tight = replace(
        POLICY, retention=replace(Retention(), delete_batch=5, delete_budget=timedelta(0))
    )
    rounds = []
    while True:
        report = maintain(pool, tight, NOW)
        rounds.append(report.deleted.get("jobs", 0))
        if not report.deletes_left:
            break
    assert rounds == [5, 5, 5, 5, 3]
    assert jobs(pool) == timelines(pool) == {"recent"}


def test_the_oldest_jobs_go_first(pool: psycopg_pool.ConnectionPool, fresh_db: str) -> None:
    for n in range(6):
        finished(pool, f"day-{n}", OLD - timedelta(days=n), OLD)
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        sweep(conn, cutoffs(Retention(), NOW), batch=4, budget=timedelta(0))
    assert jobs(pool) == {"day-0", "day-1"}


def test_a_job_a_writer_holds_is_left_for_the_next_round_and_nobody_waits(
    pool: psycopg_pool.ConnectionPool, fresh_db: str
) -> None:
    finished(pool, "held", OLD, OLD)
    finished(pool, "free", OLD, OLD)
    locked, release = threading.Event(), threading.Event()

    def writer() -> None:
        with psycopg.connect(fresh_db) as conn, conn.transaction():
            conn.execute("SELECT 1 FROM jobs WHERE job_id = 'held' FOR UPDATE")
            locked.set()
            release.wait(30)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert locked.wait(10)
        report = maintain(pool, POLICY, NOW)
        assert jobs(pool) == {"held"}
        assert report.longest_delete_s < 5  # did not wait for the writer
    finally:
        release.set()
        thread.join()
    maintain(pool, POLICY, NOW)
    assert jobs(pool) == timelines(pool) == set()
