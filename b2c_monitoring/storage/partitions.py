"""Time partitions of the history tables: creating, rolling up, dropping.

Every time series (checks, resource samples, their rollups, status changes) is a
table partitioned by range of its time, one partition per day or per month, named
``<table>_pYYYYMMDD`` or ``<table>_pYYYYMM``. Retention drops a whole partition once
all of it is older than the table's retention: one statement, no row-by-row DELETE,
no bloat left behind.

Full resolution is kept at least ``raw`` (24 h and more; a day's partition goes when
its last instant is older than that); beyond it the 5-minute and hourly rollups
remain. Rollups are recomputed from the finer table for every bucket since the last
run (minus ``LATE``), and from the earliest sample of a batch that arrived later than
that (``mark_late``: a backlog after an outage), with upserts, so running them twice
or on two replicas gives the same rows.

``maintain(now)`` does all of it, under a session advisory lock: one replica at a time
maintains, the others skip that round. Each step is its own short transaction with a
lock timeout, so a writer is never held up for long by the DDL.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final, Literal

import psycopg
import psycopg_pool

from b2c_monitoring.storage.db import translate_errors

log = logging.getLogger(__name__)

Period = Literal["day", "month"]

_MAINTENANCE_LOCK: Final = 0x62326D70  # "b2mp"
_DDL_LOCK: Final = 0x62326D71  # serializes partition DDL between replicas
LATE: Final = timedelta(hours=1)  # rollups recompute this far back for late data
_AHEAD: Final = timedelta(days=2)


@dataclass(frozen=True)
class Retention:
    """How long each resolution is kept (settings ``B2C_RETENTION_*``), and the records
    that are deleted row by row (``storage/retention.py``)."""

    raw: timedelta = timedelta(hours=48)
    five_minutes: timedelta = timedelta(days=8)
    hourly: timedelta = timedelta(days=90)
    history: timedelta = timedelta(days=90)  # status and health changes
    resolved_alerts: timedelta = timedelta(days=90)  # storage/alerts.py, prune_resolved
    jobs: timedelta = timedelta(days=30)  # after they finished, with their timelines
    job_commands: timedelta = timedelta(days=30)  # after they were done or failed
    audit: timedelta = timedelta(days=400)  # the longest: who did what outlives the what
    # how the row deletes run: rows per transaction, and seconds per round
    delete_batch: int = 5_000
    delete_budget: timedelta = timedelta(seconds=10)

    def __post_init__(self) -> None:
        if self.raw < timedelta(hours=24):
            raise ValueError("full resolution is kept at least 24 hours")
        if self.history < timedelta(days=30):
            raise ValueError("status history is kept at least 30 days (uptime over 30 d)")
        if self.audit < max(self.jobs, self.job_commands, self.resolved_alerts):
            raise ValueError("the audit log is kept at least as long as jobs, commands and alerts")
        if self.delete_batch < 1:
            raise ValueError("a delete batch has at least one row")


@dataclass(frozen=True)
class Partitioned:
    table: str
    period: Period
    keep: str  # the Retention field


TABLES: Final = (
    Partitioned("service_checks", "day", "raw"),
    Partitioned("service_checks_5m", "day", "five_minutes"),
    Partitioned("service_checks_1h", "month", "hourly"),
    Partitioned("resource_samples", "day", "raw"),
    Partitioned("resource_samples_5m", "day", "five_minutes"),
    Partitioned("resource_samples_1h", "month", "hourly"),
    Partitioned("service_status_changes", "month", "history"),
    Partitioned("component_health_changes", "month", "history"),
)
BY_NAME: Final = {t.table: t for t in TABLES}


def period_start(at: datetime | date, period: Period) -> date:
    day = at.astimezone(UTC).date() if isinstance(at, datetime) else at
    return day if period == "day" else day.replace(day=1)


def next_period(start: date, period: Period) -> date:
    if period == "day":
        return start + timedelta(days=1)
    return (start.replace(day=28) + timedelta(days=4)).replace(day=1)


def partition_name(table: str, start: date, period: Period) -> str:
    return f"{table}_p{start:%Y%m%d}" if period == "day" else f"{table}_p{start:%Y%m}"


def _bound(day: date) -> str:
    return f"{day.isoformat()} 00:00:00+00"


def periods(since: datetime, until: datetime, period: Period) -> list[date]:
    """Starts of the periods that cover ``[since, until]``."""
    start, end = period_start(since, period), period_start(until, period)
    found = []
    while start <= end:
        found.append(start)
        start = next_period(start, period)
    return found


def existing(conn: psycopg.Connection[Any], table: str) -> set[str]:
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = %s",
        (table,),
    ).fetchall()
    return {row[0] for row in rows}


def create_partitions(
    conn: psycopg.Connection[Any], spec: Partitioned, starts: Iterable[date]
) -> list[str]:
    """Create the missing partitions of ``spec`` starting at ``starts``; their names."""
    have = existing(conn, spec.table)
    wanted = [(s, partition_name(spec.table, s, spec.period)) for s in sorted(set(starts))]
    missing = [(s, name) for s, name in wanted if name not in have]
    if not missing:
        return []
    created = []
    with conn.transaction():
        conn.execute("SET LOCAL lock_timeout = '5s'")
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK,))
        for start, name in missing:
            end = next_period(start, spec.period)
            conn.execute(
                f'CREATE TABLE IF NOT EXISTS "{name}" PARTITION OF "{spec.table}" '
                f"FOR VALUES FROM ('{_bound(start)}') TO ('{_bound(end)}')"
            )
            created.append(name)
    return created


@contextlib.contextmanager
def autocommit_connection(pool: psycopg_pool.ConnectionPool) -> Iterator[psycopg.Connection[Any]]:
    """A pooled connection in autocommit, so each ``conn.transaction()`` is a real,
    short transaction (DDL locks must not outlive their step)."""
    with pool.connection() as conn:
        conn.autocommit = True
        try:
            yield conn
        finally:
            with contextlib.suppress(psycopg.Error):
                conn.autocommit = False


class PartitionGuard:
    """Makes sure a writer's rows have a partition before it inserts them.

    ``maintain`` creates partitions ahead of time; this covers what it cannot know:
    a late report's status change in a month long past, a first start before any
    maintenance, a maintenance thread that stopped. Known partitions are cached.
    """

    def __init__(self, pool: psycopg_pool.ConnectionPool) -> None:
        self._pool = pool
        self._known: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def ensure(self, needs: dict[str, Sequence[datetime]]) -> None:
        wanted = {
            table: {period_start(at, BY_NAME[table].period) for at in times}
            for table, times in needs.items()
            if times
        }
        with self._lock:
            missing = {
                table: starts
                for table, starts in wanted.items()
                if any(
                    partition_name(table, s, BY_NAME[table].period)
                    not in self._known.get(table, ())
                    for s in starts
                )
            }
            if not missing:
                return
            with translate_errors(), autocommit_connection(self._pool) as conn:
                for table, starts in missing.items():
                    create_partitions(conn, BY_NAME[table], starts)
                    self._known[table] = existing(conn, table)


# Rollups


@dataclass(frozen=True)
class Rollup:
    name: str  # also its watermark
    target: str
    source: str
    bucket: timedelta
    source_time: str  # the source's time column
    sql: str  # INSERT ... SELECT ... WHERE time >= %(since)s AND time < %(until)s ...


_CHECKS_FROM_RAW: Final = """
INSERT INTO service_checks_5m AS r (service_id, bucket, checks, up_checks, latency_count,
    latency_sum, latency_min, latency_max)
SELECT service_id, date_bin('5 minutes', at, TIMESTAMPTZ '2000-01-01 00:00:00+00'),
    count(up), count(*) FILTER (WHERE up), count(latency_s), coalesce(sum(latency_s), 0),
    min(latency_s), max(latency_s)
FROM service_checks WHERE at >= %(since)s AND at < %(until)s
GROUP BY 1, 2
ON CONFLICT (service_id, bucket) DO UPDATE SET checks = excluded.checks,
    up_checks = excluded.up_checks, latency_count = excluded.latency_count,
    latency_sum = excluded.latency_sum, latency_min = excluded.latency_min,
    latency_max = excluded.latency_max
"""

_CHECKS_HOURLY: Final = """
INSERT INTO service_checks_1h AS r (service_id, bucket, checks, up_checks, latency_count,
    latency_sum, latency_min, latency_max)
SELECT service_id, date_trunc('hour', bucket, 'UTC'), sum(checks), sum(up_checks),
    sum(latency_count), sum(latency_sum), min(latency_min), max(latency_max)
FROM service_checks_5m WHERE bucket >= %(since)s AND bucket < %(until)s
GROUP BY 1, 2
ON CONFLICT (service_id, bucket) DO UPDATE SET checks = excluded.checks,
    up_checks = excluded.up_checks, latency_count = excluded.latency_count,
    latency_sum = excluded.latency_sum, latency_min = excluded.latency_min,
    latency_max = excluded.latency_max
"""

_RESOURCE_COLUMNS: Final = (
    "samples, cpu_count, cpu_sum, cpu_max, memory_count, memory_sum, memory_max, "
    "memory_limit, threads_max, pool_used_max, queue_depth_max"
)
_RESOURCE_UPDATE: Final = ", ".join(f"{c} = excluded.{c}" for c in _RESOURCE_COLUMNS.split(", "))

_RESOURCES_FROM_RAW: Final = f"""
INSERT INTO resource_samples_5m (tenant_id, owner, bucket, {_RESOURCE_COLUMNS})
SELECT tenant_id, owner, date_bin('5 minutes', at, TIMESTAMPTZ '2000-01-01 00:00:00+00'),
    count(*), count(cpu_ratio), coalesce(sum(cpu_ratio), 0), max(cpu_ratio),
    count(memory_used), coalesce(sum(memory_used), 0), max(memory_used), max(memory_limit),
    max(threads), max(pool_used), max(queue_depth)
FROM resource_samples WHERE at >= %(since)s AND at < %(until)s
GROUP BY 1, 2, 3
ON CONFLICT (tenant_id, owner, bucket) DO UPDATE SET {_RESOURCE_UPDATE}
"""

_RESOURCES_HOURLY: Final = f"""
INSERT INTO resource_samples_1h (tenant_id, owner, bucket, {_RESOURCE_COLUMNS})
SELECT tenant_id, owner, date_trunc('hour', bucket, 'UTC'),
    sum(samples), sum(cpu_count), sum(cpu_sum), max(cpu_max), sum(memory_count),
    sum(memory_sum), max(memory_max), max(memory_limit), max(threads_max),
    max(pool_used_max), max(queue_depth_max)
FROM resource_samples_5m WHERE bucket >= %(since)s AND bucket < %(until)s
GROUP BY 1, 2, 3
ON CONFLICT (tenant_id, owner, bucket) DO UPDATE SET {_RESOURCE_UPDATE}
"""

# in order: each hourly rollup reads the 5-minute one made just before it
ROLLUPS: Final = (
    Rollup(
        "service_checks_5m",
        "service_checks_5m",
        "service_checks",
        timedelta(minutes=5),
        "at",
        _CHECKS_FROM_RAW,
    ),
    Rollup(
        "service_checks_1h",
        "service_checks_1h",
        "service_checks_5m",
        timedelta(hours=1),
        "bucket",
        _CHECKS_HOURLY,
    ),
    Rollup(
        "resource_samples_5m",
        "resource_samples_5m",
        "resource_samples",
        timedelta(minutes=5),
        "at",
        _RESOURCES_FROM_RAW,
    ),
    Rollup(
        "resource_samples_1h",
        "resource_samples_1h",
        "resource_samples_5m",
        timedelta(hours=1),
        "bucket",
        _RESOURCES_HOURLY,
    ),
)

_ORIGIN: Final = datetime(2000, 1, 1, tzinfo=UTC)


Tier = Literal["raw", "5m", "1h"]


def tiers(
    since: datetime, until: datetime, now: datetime, retention: Retention
) -> list[tuple[datetime, datetime, Tier]]:
    """Where a history of ``[since, until)`` is read from: each sample of the last 24
    hours, 5-minute buckets before while they are kept, hourly buckets beyond. Bounds
    fall on bucket bounds, so no bucket overlaps the next segment."""
    raw_from = floor_to(now - timedelta(hours=24), timedelta(minutes=5))
    five_from = floor_to(now - (retention.five_minutes - timedelta(days=1)), timedelta(hours=1))
    segments: list[tuple[datetime, datetime, Tier]] = [
        (since, min(until, five_from), "1h"),
        (max(since, five_from), min(until, raw_from), "5m"),
        (max(since, raw_from), until, "raw"),
    ]
    return [(start, end, tier) for start, end, tier in segments if start < end]


def mark_late(cur: Any, source: str, earliest: datetime) -> None:
    """Make the next rounds recompute the rollups of ``source`` from ``earliest``.

    A writer calls it, in its transaction, with the earliest sample it stored; only a
    sample older than a rollup's watermark (minus LATE) changes anything, so the usual
    batch takes no lock here, and a backlog delivered after an outage still reaches
    the rollups.
    """
    names = [r.name for r in ROLLUPS if r.source == source]
    names += [r.name for r in ROLLUPS if r.source in names]
    cur.execute(
        "UPDATE rollup_watermarks SET done_until = %(at)s "
        "WHERE name = ANY(%(names)s) AND done_until - %(late)s > %(at)s",
        {"at": earliest, "names": names, "late": LATE},
    )


def floor_to(at: datetime, step: timedelta) -> datetime:
    return _ORIGIN + ((at - _ORIGIN) // step) * step


def roll_up(
    conn: psycopg.Connection[Any], rollup: Rollup, now: datetime, retention: Retention
) -> tuple[datetime, datetime]:
    """Recompute the rollup's buckets from its watermark (minus LATE) up to ``now``."""
    with conn.transaction():
        row = conn.execute(
            "SELECT done_until FROM rollup_watermarks WHERE name = %s FOR UPDATE",
            (rollup.name,),
        ).fetchone()
        source_keep = getattr(retention, BY_NAME[rollup.source].keep)
        oldest = now - source_keep
        since = max(row[0] - LATE, oldest) if row else oldest
        since = floor_to(since, rollup.bucket)
        until = now
        target = BY_NAME[rollup.target]
        starts = periods(since, until, target.period)
        if since < until:
            conn.execute("SET LOCAL lock_timeout = '5s'")
            # the buckets' partitions exist before the insert (a retention may have
            # been shortened, or maintenance may not have run for a while)
            have = existing(conn, target.table)
            if any(partition_name(target.table, s, target.period) not in have for s in starts):
                raise _MissingPartitions(target, starts)
            conn.execute(rollup.sql, {"since": since, "until": until})
        conn.execute(
            "INSERT INTO rollup_watermarks (name, done_until) VALUES (%s, %s) "
            "ON CONFLICT (name) DO UPDATE SET done_until = excluded.done_until",
            (rollup.name, floor_to(now, rollup.bucket)),
        )
    return since, until


class _MissingPartitions(Exception):
    def __init__(self, spec: Partitioned, starts: list[date]) -> None:
        super().__init__(spec.table)
        self.spec = spec
        self.starts = starts


def drop_expired(
    conn: psycopg.Connection[Any], spec: Partitioned, now: datetime, keep: timedelta
) -> list[str]:
    """Drop the partitions of ``spec`` whose every instant is older than ``now - keep``."""
    horizon = now - keep
    dropped = []
    for name in sorted(existing(conn, spec.table)):
        start = _start_of(name, spec)
        if start is None:
            continue
        end = next_period(start, spec.period)
        if datetime(end.year, end.month, end.day, tzinfo=UTC) <= horizon:
            with conn.transaction():
                conn.execute("SET LOCAL lock_timeout = '5s'")
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK,))
                conn.execute(f'DROP TABLE IF EXISTS "{name}"')
            dropped.append(name)
    return dropped


def _start_of(name: str, spec: Partitioned) -> date | None:
    suffix = name.removeprefix(f"{spec.table}_p")
    try:
        if spec.period == "day" and len(suffix) == 8:
            return datetime.strptime(suffix, "%Y%m%d").date()
        if spec.period == "month" and len(suffix) == 6:
            return datetime.strptime(suffix, "%Y%m").date()
    except ValueError:
        return None
    return None


@dataclass
class MaintenanceReport:
    ran: bool = True  # False: another replica held the lock
    created: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    rolled_up: dict[str, tuple[datetime, datetime]] = field(default_factory=dict)
    expired_components: int = 0
    pruned_alerts: int = 0
    # storage/retention.py: rows deleted per table, how long it took, its longest
    # transaction, and whether the budget ran out with old rows left
    deleted: dict[str, int] = field(default_factory=dict)
    deleting_s: float = 0.0
    longest_delete_s: float = 0.0
    deletes_left: bool = False


def maintain_partitions(
    conn: psycopg.Connection[Any], now: datetime, retention: Retention
) -> MaintenanceReport:
    """Create upcoming partitions, roll up, drop expired ones (conn: autocommit, lock held)."""
    report = MaintenanceReport()
    for spec in TABLES:
        keep: timedelta = getattr(retention, spec.keep)
        report.created += create_partitions(
            conn, spec, periods(now - keep, now + _AHEAD, spec.period)
        )
    for rollup in ROLLUPS:
        try:
            report.rolled_up[rollup.name] = roll_up(conn, rollup, now, retention)
        except _MissingPartitions as missing:
            report.created += create_partitions(conn, missing.spec, missing.starts)
            report.rolled_up[rollup.name] = roll_up(conn, rollup, now, retention)
    for spec in TABLES:
        report.dropped += drop_expired(conn, spec, now, getattr(retention, spec.keep))
    return report


def try_maintenance_lock(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (_MAINTENANCE_LOCK,)).fetchone()
    return bool(row and row[0])


def release_maintenance_lock(conn: psycopg.Connection[Any]) -> None:
    conn.execute("SELECT pg_advisory_unlock(%s)", (_MAINTENANCE_LOCK,))
