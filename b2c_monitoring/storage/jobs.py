"""Jobs in Postgres: applying a batch of reports, and reading jobs back.

``apply`` writes one export request's reports in one short transaction:

1. lock the stored rows of the batch's jobs (``FOR UPDATE``, in key order, so two
   replicas lock in the same order);
2. derive every job in Python (``processors/jobs.py``, pure);
3. insert the new jobs with ``ON CONFLICT DO NOTHING``; a job that another replica
   inserted meanwhile is not returned, so it is locked, re-derived and updated;
4. update the changed jobs and append their changes, with pipelined ``executemany``.

A deadlock or serialization failure between replicas retries the whole transaction.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import psycopg_pool
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from b2c_monitoring.contract import JobState
from b2c_monitoring.errors import StorageUnavailable
from b2c_monitoring.processors.jobs import Job, JobChange, JobReport, derive_all
from b2c_monitoring.storage.db import is_retryable_conflict, translate_errors

_ATTEMPTS: Final = 5

JobKey = tuple[str, str]

_COLUMNS: Final = (
    "tenant_id, job_id, job_type, status, progress_percent, created_at, started_at, "
    "completed_at, error_message, metadata, attempt, retry_of, service_name, "
    "last_report_at, updated_at, provenance"
)

# Whole batches in one statement each: one array per column, unnested server-side.
_ARRAYS: Final = (
    "%s::text[], %s::text[], %s::text[], %s::text[], %s::smallint[], %s::timestamptz[], "
    "%s::timestamptz[], %s::timestamptz[], %s::text[], %s::jsonb[], %s::int[], %s::text[], "
    "%s::text[], %s::timestamptz[], %s::timestamptz[], %s::jsonb[]"
)

_INSERT: Final = f"""
INSERT INTO jobs ({_COLUMNS})
SELECT * FROM unnest({_ARRAYS})
ON CONFLICT (tenant_id, job_id) DO NOTHING
RETURNING tenant_id, job_id
"""

_UPDATE: Final = f"""
UPDATE jobs AS j SET job_type = u.job_type, status = u.status,
    progress_percent = u.progress_percent, created_at = u.created_at,
    started_at = u.started_at, completed_at = u.completed_at, error_message = u.error_message,
    metadata = u.metadata, attempt = u.attempt, retry_of = u.retry_of,
    service_name = u.service_name, last_report_at = u.last_report_at,
    updated_at = u.updated_at, provenance = u.provenance
FROM unnest({_ARRAYS}) AS u({_COLUMNS})
WHERE j.tenant_id = u.tenant_id AND j.job_id = u.job_id
"""

_LOCK: Final = f"""
SELECT {_COLUMNS} FROM jobs
WHERE (tenant_id, job_id) IN (SELECT * FROM unnest(%s::text[], %s::text[]))
ORDER BY tenant_id, job_id
FOR UPDATE
"""

_COPY_CHANGES: Final = """
COPY job_changes (tenant_id, job_id, status, progress_percent, at, error_message, recorded_at)
FROM STDIN
"""


@dataclass(frozen=True)
class AppliedBatch:
    jobs_written: int
    changes: list[JobChange]


def job_from_row(row: dict[str, Any]) -> Job:
    return Job(
        tenant_id=row["tenant_id"],
        job_id=row["job_id"],
        job_type=row["job_type"],
        status=JobState(row["status"]),
        progress_percent=row["progress_percent"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        completed_at=row["completed_at"],
        error_message=row["error_message"],
        metadata=row["metadata"],
        attempt=row["attempt"],
        retry_of=row["retry_of"],
        service_name=row["service_name"],
        last_report_at=row["last_report_at"],
        updated_at=row["updated_at"],
        provenance=row["provenance"],
    )


def _values(job: Job) -> tuple[Any, ...]:
    return (
        job.job_type,
        job.status.value,
        job.progress_percent,
        job.created_at,
        job.started_at,
        job.completed_at,
        job.error_message,
        Jsonb(dict(job.metadata)),
        job.attempt,
        job.retry_of,
        job.service_name,
        job.last_report_at,
        job.updated_at,
        Jsonb(dict(job.provenance)),
    )


def _columns(jobs: Sequence[Job]) -> list[list[Any]]:
    """Rows of jobs as one list per column (for the unnest statements)."""
    return [
        list(column)
        for column in zip(*((j.tenant_id, j.job_id, *_values(j)) for j in jobs), strict=True)
    ]


def group_reports(reports: Iterable[JobReport]) -> dict[JobKey, list[JobReport]]:
    grouped: dict[JobKey, list[JobReport]] = defaultdict(list)
    for report in reports:
        grouped[(report.tenant_id, report.job_id)].append(report)
    return dict(sorted(grouped.items()))


class JobStore:
    def __init__(self, pool: psycopg_pool.ConnectionPool) -> None:
        self._pool = pool

    def apply(self, reports: Sequence[JobReport], now: datetime) -> AppliedBatch:
        """Derive and store the reports of one batch; all or nothing."""
        if not reports:
            return AppliedBatch(0, [])
        grouped = group_reports(reports)
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                with translate_errors():
                    return self._apply_once(grouped, now)
            except StorageUnavailable as exc:
                if attempt == _ATTEMPTS or not is_retryable_conflict(exc):
                    raise
        raise AssertionError("unreachable")

    def _apply_once(self, grouped: dict[JobKey, list[JobReport]], now: datetime) -> AppliedBatch:
        changes: list[JobChange] = []
        with (
            self._pool.connection() as conn,
            conn.transaction(),
            conn.cursor(row_factory=dict_row) as cur,
        ):
            stored = self._lock(cur, list(grouped))
            inserts: list[Job] = []
            updates: list[Job] = []
            for key, batch in grouped.items():
                before = stored.get(key)
                after, job_changes = derive_all(before, batch, now)
                if after is None or after is before:
                    continue
                (updates if before is not None else inserts).append(after)
                changes.extend(job_changes)

            if inserts:
                cur.execute(_INSERT, _columns(inserts))
                inserted = {(row["tenant_id"], row["job_id"]) for row in cur.fetchall()}
                raced = [j for j in inserts if (j.tenant_id, j.job_id) not in inserted]
                if raced:
                    # another replica inserted these first: merge onto its rows instead
                    raced_keys = {(j.tenant_id, j.job_id) for j in raced}
                    changes = [c for c in changes if (c.tenant_id, c.job_id) not in raced_keys]
                    now_stored = self._lock(cur, sorted(raced_keys))
                    for key in sorted(raced_keys):
                        after, job_changes = derive_all(now_stored[key], grouped[key], now)
                        if after is not None and after is not now_stored[key]:
                            updates.append(after)
                            changes.extend(job_changes)

            if updates:
                cur.execute(_UPDATE, _columns(updates))
            if changes:
                with cur.copy(_COPY_CHANGES) as copy:
                    for c in changes:
                        copy.write_row(
                            (
                                c.tenant_id,
                                c.job_id,
                                c.status.value,
                                c.progress_percent,
                                c.at,
                                c.error_message,
                                now,
                            )
                        )
            return AppliedBatch(jobs_written=len(inserts) + len(updates), changes=changes)

    @staticmethod
    def _lock(cur: Any, keys: list[JobKey]) -> dict[JobKey, Job]:
        cur.execute(_LOCK, ([k[0] for k in keys], [k[1] for k in keys]))
        return {(row["tenant_id"], row["job_id"]): job_from_row(row) for row in cur.fetchall()}

    # reads

    def get(self, job_id: str, tenants: Sequence[str] | None) -> list[Job]:
        """The jobs with this id in the given tenants (``None``: all tenants)."""
        with (
            translate_errors(),
            self._pool.connection() as conn,
            conn.cursor(row_factory=dict_row) as cur,
        ):
            if tenants is None:
                cur.execute(
                    f"SELECT {_COLUMNS} FROM jobs WHERE job_id = %s ORDER BY tenant_id", (job_id,)
                )
            else:
                cur.execute(
                    f"SELECT {_COLUMNS} FROM jobs WHERE job_id = %s AND tenant_id = ANY(%s) ORDER BY tenant_id",
                    (job_id, list(tenants)),
                )
            return [job_from_row(row) for row in cur.fetchall()]

    def timeline(self, tenant_id: str, job_id: str) -> list[JobChange]:
        with (
            translate_errors(),
            self._pool.connection() as conn,
            conn.cursor(row_factory=dict_row) as cur,
        ):
            cur.execute(
                "SELECT tenant_id, job_id, status, progress_percent, at, error_message FROM job_changes "
                "WHERE tenant_id = %s AND job_id = %s ORDER BY at, seq",
                (tenant_id, job_id),
            )
            return [
                JobChange(
                    tenant_id=row["tenant_id"],
                    job_id=row["job_id"],
                    status=JobState(row["status"]),
                    progress_percent=row["progress_percent"],
                    at=row["at"],
                    error_message=row["error_message"],
                )
                for row in cur.fetchall()
            ]
