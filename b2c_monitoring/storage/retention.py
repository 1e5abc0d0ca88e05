"""Retention of the records that are not time partitions: old rows deleted in batches.

The time series (checks, samples, rollups, status and health changes) are partitioned
and lose whole partitions (``storage/partitions.py``); resolved alerts are pruned by
``storage/alerts.py``. Everything else that grows with use goes here, each by its own
age and never while it is open:

========================  =================================================  =========================
rows                      deleted once                                       kept whatever their age
========================  =================================================  =========================
``jobs``, with their      finished (succeeded, failed, cancelled) before     pending and running jobs;
``job_changes``           ``jobs`` and last stored (``updated_at``) before   a job with an open command
                          it too
``job_commands``          done or failed before ``job_commands``             pending and claimed ones
``audit_log``             recorded before ``audit`` (the longest)
``hub_events``            created before ``HUB_EVENTS_KEPT`` (1 hour)
``alert_silences``        ended before ``resolved_alerts``                   silences still running
``maintenance_windows``   ended before ``resolved_alerts``                   windows not yet over
========================  =================================================  =========================

A job is aged by when it finished (``completed_at``, the time its terminal report
names: what an operator reads as its age), and only once it was also last stored
before the cutoff: a probe with a wrong clock, or a backfill of old runs, does not
lose its jobs the moment they arrive; they are kept ``jobs`` after they were stored.
The index is on ``completed_at`` alone (0016 says why); ``updated_at`` is a filter.

A retry is a job of its own whose ``retry_of`` names the run it retried; each run
ages alone, so a kept retry may name a run that is gone (the API serves the id as it
is, and the run answers 404). Chains are not kept whole: that would need an index on
``retry_of`` that every stored job pays for, to keep rows nobody asked to keep.

A command requested for a job in the instant its batch is deleted may outlive it
(the request does not lock the job row): it then names a job that is gone, and ages
out like any other command. It needs an operator acting on a job finished ``jobs``
ago at that very moment; locking the job in every request was not worth it.

``cutoffs(retention, now)`` is the pure part: which instant for what. ``sweep``
deletes, at most ``batch`` rows of a table per statement, each statement its own
short transaction (autocommit connection), rows picked by an index on their age with
``FOR UPDATE SKIP LOCKED`` (a job a writer holds is left for the next round, and no
writer waits behind a whole backlog). It goes round the tables, a batch each, until
none has old rows left or ``budget`` is spent; the rest waits for the next round, so
a backlog of millions (the first round after an upgrade) is worked off over several
rounds without holding the maintenance lock for long.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

import psycopg
from psycopg.errors import LockNotAvailable

from b2c_monitoring.storage.hub_events import HUB_EVENTS_KEPT
from b2c_monitoring.storage.partitions import Retention

_LOCK_TIMEOUT: Final = "5s"  # a DDL statement in the way: give up this round, not wait


@dataclass(frozen=True)
class Cutoffs:
    """Rows older than these are deleted; None: that kind is left alone."""

    jobs: datetime | None = None
    job_commands: datetime | None = None
    audit: datetime | None = None
    hub_events: datetime | None = None
    ended: datetime | None = None  # silences and maintenance windows


def cutoffs(retention: Retention, now: datetime) -> Cutoffs:
    """What is old enough to delete as of ``now``."""
    return Cutoffs(
        jobs=now - retention.jobs,
        job_commands=now - retention.job_commands,
        audit=now - retention.audit,
        hub_events=now - HUB_EVENTS_KEPT,
        ended=now - retention.resolved_alerts,
    )


@dataclass(frozen=True)
class _Table:
    name: str  # also the key of the counts
    cutoff: Callable[[Cutoffs], datetime | None]
    # deletes at most %(batch)s rows older than %(cutoff)s; one row: how many of this
    # table, then of each of ``also`` (rows deleted along with them)
    sql: str
    also: tuple[str, ...] = ()


def _single(table: str, key: str, age: str, where: str = "true", *, lock: bool = False) -> str:
    """One table's batch, oldest first. ``lock``: rows that may still be updated are
    locked (and their age checked again on the latest version); rows that are never
    updated again (the audit log, events, finished commands) need no row lock."""
    locking = " FOR UPDATE SKIP LOCKED" if lock else ""
    return (
        f"WITH gone AS (DELETE FROM {table} WHERE {key} IN ("
        f" SELECT {key} FROM {table} WHERE {age} < %(cutoff)s AND {where}"
        f" ORDER BY {age} LIMIT %(batch)s{locking}) RETURNING 1)"
        " SELECT count(*) FROM gone"
    )


# job_changes has no foreign key (0010): a job's timeline goes in the statement that
# deletes the job. A writer adds changes only with its job's row locked, so no change
# can arrive for a job between its selection (locked here) and its deletion.
_JOBS: Final = """
WITH doomed AS (
    SELECT j.tenant_id, j.job_id FROM jobs j
    WHERE j.status IN ('succeeded', 'failed', 'cancelled') AND j.completed_at < %(cutoff)s
      AND j.updated_at < %(cutoff)s
      AND NOT EXISTS (SELECT 1 FROM job_commands c
          WHERE c.tenant_id = j.tenant_id AND c.job_id = j.job_id
            AND c.state IN ('pending', 'claimed'))
    ORDER BY j.completed_at LIMIT %(batch)s
    FOR UPDATE OF j SKIP LOCKED
), jobs_gone AS (
    DELETE FROM jobs j USING doomed d WHERE j.tenant_id = d.tenant_id AND j.job_id = d.job_id
    RETURNING j.tenant_id, j.job_id
), changes_gone AS (
    DELETE FROM job_changes c USING jobs_gone g
    WHERE c.tenant_id = g.tenant_id AND c.job_id = g.job_id
    RETURNING 1
)
SELECT (SELECT count(*) FROM jobs_gone), (SELECT count(*) FROM changes_gone)
"""

# Small tables first: a backlog of jobs must not keep the others from their turn.
TABLES: Final = (
    _Table("hub_events", lambda c: c.hub_events, _single("hub_events", "id", "created_at")),
    _Table(
        "job_commands",
        lambda c: c.job_commands,
        _single("job_commands", "id", "done_at", "state IN ('done', 'failed', 'expired')"),
    ),
    _Table("audit_log", lambda c: c.audit, _single("audit_log", "seq", "at")),
    _Table(
        "alert_silences", lambda c: c.ended, _single("alert_silences", "id", "until", lock=True)
    ),
    _Table(
        "maintenance_windows",
        lambda c: c.ended,
        _single("maintenance_windows", "id", "ends_at", lock=True),
    ),
    _Table("jobs", lambda c: c.jobs, _JOBS, also=("job_changes",)),
)


@dataclass
class SweepReport:
    deleted: dict[str, int] = field(default_factory=dict)  # rows per table
    seconds: float = 0.0
    longest_batch_s: float = 0.0  # the longest single transaction
    batches: int = 0
    left: bool = False  # the budget ran out with old rows left (the next round goes on)


def sweep(
    conn: psycopg.Connection[Any],
    cut: Cutoffs,
    *,
    batch: int,
    budget: timedelta,
    clock: Callable[[], float] = time.monotonic,
    tables: Sequence[_Table] = TABLES,
) -> SweepReport:
    """Delete what ``cut`` names, ``batch`` rows per transaction, for about ``budget``.

    Every table gets one batch whatever the budget, so each makes progress every
    round; then batches go on round the tables that had a full one, while the budget
    lasts. ``conn`` is in autocommit (each batch is a transaction of its own).
    """
    report = SweepReport()
    started = clock()
    todo = [(t, at) for t in tables if (at := t.cutoff(cut)) is not None]
    first_pass = True
    while todo:
        for table, at in list(todo):
            if not first_pass and clock() - started >= budget.total_seconds():
                report.left = True
                report.seconds = clock() - started
                return report
            began = clock()
            try:
                with conn.transaction():
                    conn.execute(f"SET LOCAL lock_timeout = '{_LOCK_TIMEOUT}'")
                    row = conn.execute(table.sql, {"cutoff": at, "batch": batch}).fetchone()
            except LockNotAvailable:
                # a schema change holds the table: the other tables go on, this one
                # waits for the next round
                todo.remove((table, at))
                report.left = True
                continue
            finally:
                report.longest_batch_s = max(report.longest_batch_s, clock() - began)
                report.batches += 1
            assert row is not None
            for name, count in zip((table.name, *table.also), row, strict=True):
                if count:
                    report.deleted[name] = report.deleted.get(name, 0) + int(count)
            if row[0] < batch:
                todo.remove((table, at))
        first_pass = False
    report.seconds = clock() - started
    return report
