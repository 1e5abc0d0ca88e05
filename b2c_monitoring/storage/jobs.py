"""Jobs in Postgres: applying a batch of reports, and reading jobs back.

``apply`` writes one export request's reports in one short transaction:

1. lock the stored rows of the batch's jobs (``FOR UPDATE``, in key order, so two
   replicas lock in the same order);
2. derive every job in Python (``processors/jobs.py``, pure);
3. insert the new jobs with one ``COPY``; update the changed ones by a ``COPY`` into
   a staging table and one statement from there;
4. add a timeline row for every distinct report of the batch, changed job or not
   (a report redelivered after a later one derives no change but belongs in the
   timeline): one ``COPY``, and when a row is already there (the unique key
   ``job_changes_report``, 0018, refuses the ``COPY``) the transaction again with the
   rows staged and inserted ``ON CONFLICT DO NOTHING``. Redelivery is rare, so the
   common path stays a plain ``COPY``.

A deadlock or serialization failure between replicas retries the whole transaction,
and so does a unique violation: a timeline row already stored (see 4), or a primary-key violation: another replica inserted one of the new jobs
meanwhile, and the next attempt finds it in step 1 and merges onto it.
"""

from __future__ import annotations

import weakref
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import product
from typing import Any, Final

import orjson
import psycopg
import psycopg_pool
from psycopg.errors import UniqueViolation
from psycopg.rows import dict_row
from psycopg.types.json import set_json_loads

from b2c_monitoring.contract import JobState
from b2c_monitoring.live_events import job_status_changed
from b2c_monitoring.processors.job_flags import JobFlag, JobWindows
from b2c_monitoring.processors.jobs import Job, JobChange, JobReport, derive_all, timeline_entry
from b2c_monitoring.storage.db import (
    JSONB_BYTES,
    copy_jsonb,
    copy_rows,
    retry_conflicts,
    translate_errors,
)
from b2c_monitoring.storage.hub_events import publish
from b2c_monitoring.storage.job_windows import WINDOWS_JOIN, flag_condition, flag_params

JobKey = tuple[str, str]

_COLUMNS: Final = (
    "tenant_id, job_id, job_type, status, progress_percent, created_at, started_at, "
    "completed_at, error_message, metadata, attempt, retry_of, service_name, "
    "last_report_at, updated_at, provenance"
)

_COPY_JOBS: Final = f"COPY jobs ({_COLUMNS}) FROM STDIN (FORMAT BINARY)"
_JOB_TYPES: Final = (
    "text", "text", "text", "text", "int2", "timestamptz", "timestamptz", "timestamptz",
    "text", JSONB_BYTES, "int4", "text", "text", "timestamptz", "timestamptz", JSONB_BYTES,
)  # fmt: skip

# Updates go through a staging table of the connection's own, filled with COPY like
# the inserts (an UPDATE over unnest()ed array parameters spent more time dumping the
# arrays in Python than Postgres spent updating). ON CONFLICT DO UPDATE finds each
# row by the primary key: a join from a temporary table without statistics could be
# planned as a scan of all jobs. Every staged row exists (its lock is held), so each
# one conflicts and is updated.
_STAGE: Final = "job_updates"
_CREATE_STAGE: Final = (
    f"CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGE} (LIKE jobs) ON COMMIT DELETE ROWS"
)
_COPY_STAGE: Final = f"COPY {_STAGE} ({_COLUMNS}) FROM STDIN (FORMAT BINARY)"
_UPDATED: Final = [c for c in _COLUMNS.split(", ") if c not in ("tenant_id", "job_id")]
_UPDATE: Final = (
    f"INSERT INTO jobs ({_COLUMNS}) SELECT {_COLUMNS} FROM {_STAGE} "
    "ON CONFLICT (tenant_id, job_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _UPDATED)
)

_LOCK: Final = f"""
SELECT {_COLUMNS} FROM jobs
WHERE (tenant_id, job_id) IN (SELECT * FROM unnest(%b::text[], %b::text[]))
ORDER BY tenant_id, job_id
FOR UPDATE
"""

_COPY_CHANGES: Final = (
    "COPY job_changes (tenant_id, job_id, status, progress_percent, at, error_message, "
    "recorded_at) FROM STDIN (FORMAT BINARY)"
)
_CHANGE_TYPES: Final = ("text", "text", "text", "int2", "timestamptz", "text", "timestamptz")
_CHANGE_COLUMNS: Final = (
    "tenant_id, job_id, status, progress_percent, at, error_message, recorded_at"
)
# the timeline's unique key (0018): a report already in the timeline
_REPORT_KEY: Final = "job_changes_report"
_CHANGE_STAGE: Final = "job_changes_stage"
_CREATE_CHANGE_STAGE: Final = (
    f"CREATE TEMPORARY TABLE IF NOT EXISTS {_CHANGE_STAGE} (tenant_id text, job_id text, "
    "status text, progress_percent smallint, at timestamptz, error_message text, "
    "recorded_at timestamptz) ON COMMIT DELETE ROWS"
)
_COPY_CHANGE_STAGE: Final = f"COPY {_CHANGE_STAGE} ({_CHANGE_COLUMNS}) FROM STDIN (FORMAT BINARY)"
_INSERT_CHANGES: Final = (
    f"INSERT INTO job_changes ({_CHANGE_COLUMNS}) SELECT {_CHANGE_COLUMNS} FROM {_CHANGE_STAGE} "
    "ON CONFLICT DO NOTHING"
)


@dataclass(frozen=True)
class AppliedBatch:
    jobs_written: int
    changes: list[JobChange]


_STATES: Final = {state.value: state for state in JobState}


def job_from_row(row: dict[str, Any]) -> Job:
    return Job(**{**row, "status": _STATES[row["status"]]})


def _job_from_tuple(row: tuple[Any, ...]) -> Job:
    """A job from a row of ``_COLUMNS`` (the order of ``Job``'s fields)."""
    tenant_id, job_id, job_type, status, *rest = row
    return Job(tenant_id, job_id, job_type, _STATES[status], *rest)


def _values(job: Job) -> tuple[Any, ...]:
    return (
        job.job_type,
        job.status.value,
        job.progress_percent,
        job.created_at,
        job.started_at,
        job.completed_at,
        job.error_message,
        copy_jsonb(job.metadata),
        job.attempt,
        job.retry_of,
        job.service_name,
        job.last_report_at,
        job.updated_at,
        copy_jsonb(job.provenance),
    )


def _row(job: Job) -> tuple[Any, ...]:
    return (job.tenant_id, job.job_id, *_values(job))


def group_reports(reports: Iterable[JobReport]) -> dict[JobKey, list[JobReport]]:
    grouped: dict[JobKey, list[JobReport]] = defaultdict(list)
    for report in reports:
        grouped[(report.tenant_id, report.job_id)].append(report)
    return dict(sorted(grouped.items()))


@dataclass(frozen=True)
class ListKey:
    """A job's place in the list: newest first, ``(created_at, tenant_id, job_id)`` descending."""

    created_at: datetime
    tenant_id: str
    job_id: str


@dataclass(frozen=True)
class JobQuery:
    """Filters of the job list; each given one narrows it."""

    tenants: Sequence[str] | None = None  # None: every tenant; empty: none
    statuses: Sequence[JobState] = ()
    job_type: str | None = None
    since: datetime | None = None  # created_at >= since
    until: datetime | None = None  # created_at < until
    flag: JobFlag | None = None
    text: str | None = None  # substring of the error message or the metadata
    after: ListKey | None = None  # the last job of the previous page
    limit: int = 50


@dataclass(frozen=True)
class JobPage:
    jobs: list[Job]
    next_after: ListKey | None  # None: this is the last page


# Above this many (tenant, status) pairs, one scan with ANY() beats merging many scans.
_MAX_BRANCHES: Final = 64
_ORDER: Final = "j.created_at DESC, j.tenant_id DESC, j.job_id DESC"
_J_COLUMNS: Final = ", ".join(f"j.{c}" for c in _COLUMNS.split(", "))
# exactly the expression of the index jobs_search_trgm (0004), or the index is not used
_SEARCH_TEXT: Final = "(coalesce(j.error_message, '') || ' ' || j.metadata::text)"


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def list_sql(
    query: JobQuery, windows: JobWindows, now: datetime
) -> tuple[str, dict[str, Any]] | None:
    """The statement of one page of the list, or None when nothing can match.

    Each (tenant, status) pair of the query is one range scan of an index in list
    order (0001, 0004), cut at ``limit + 1`` and merged, so a page reads about
    ``limit`` rows per pair at any depth. The keyset condition is spelled twice: the
    plain ``created_at <=`` bounds the index scan, the row comparison drops the rows
    of that same instant already served.
    """
    statuses: set[JobState] | None = set(query.statuses) or None
    if query.flag is not None:
        statuses = {query.flag.status} & (statuses or {query.flag.status})
    tenants = sorted(set(query.tenants)) if query.tenants is not None else None
    if statuses == set() or tenants == []:
        return None

    params: dict[str, Any] = {"limit": query.limit + 1}
    where: list[str] = []
    if query.since is not None:
        where.append("j.created_at >= %(since)s")
        params["since"] = query.since
    if query.until is not None:
        where.append("j.created_at < %(until)s")
        params["until"] = query.until
    if query.job_type is not None:
        where.append("j.job_type = %(job_type)s")
        params["job_type"] = query.job_type
    if query.text:
        where.append(f"{_SEARCH_TEXT} ILIKE %(pattern)s")
        params["pattern"] = _like_pattern(query.text)
    if query.after is not None:
        where.append(
            "j.created_at <= %(after_at)s AND (j.created_at, j.tenant_id, j.job_id) "
            "< (%(after_at)s, %(after_tenant)s, %(after_job)s)"
        )
        params.update(
            after_at=query.after.created_at,
            after_tenant=query.after.tenant_id,
            after_job=query.after.job_id,
        )
    join = ""
    if query.flag is not None:
        join = WINDOWS_JOIN
        params.update(flag_params(windows, now))
        where.append(flag_condition(query.flag))

    status_list = sorted(statuses) if statuses is not None else None
    tenant_axis: list[str | None] = [*tenants] if tenants else [None]
    status_axis: list[JobState | None] = [*status_list] if status_list else [None]
    branches = list(product(tenant_axis, status_axis))
    if len(branches) > 1 and len(branches) <= _MAX_BRANCHES:
        params["b_tenants"] = [t for t, _ in branches]
        params["b_statuses"] = [s.value if s is not None else None for _, s in branches]
        inner = [
            *(["j.tenant_id = b.tenant_id"] if tenants is not None else []),
            *(["j.status = b.status"] if status_list is not None else []),
            *where,
        ]
        sql = (
            f"SELECT {_J_COLUMNS} FROM unnest(%(b_tenants)s::text[], %(b_statuses)s::text[]) "
            f"AS b(tenant_id, status) CROSS JOIN LATERAL (SELECT {_J_COLUMNS} FROM jobs j {join} "
            f"WHERE {' AND '.join(inner)} ORDER BY {_ORDER} LIMIT %(limit)s) AS j "
            f"ORDER BY {_ORDER} LIMIT %(limit)s"
        )
        return sql, params

    # one value as `=`, not `= ANY`: only an equality lets the planner read an index
    # that leads with the column in list order
    if tenants is not None:
        where.append(
            "j.tenant_id = %(tenant)s" if len(tenants) == 1 else "j.tenant_id = ANY(%(tenants)s)"
        )
        params.update(tenant=tenants[0], tenants=tenants)
    if status_list is not None:
        where.append(
            "j.status = %(status)s" if len(status_list) == 1 else "j.status = ANY(%(statuses)s)"
        )
        params.update(status=status_list[0].value, statuses=[s.value for s in status_list])
    sql = (
        f"SELECT {_J_COLUMNS} FROM jobs j {join} "
        f"{'WHERE ' + ' AND '.join(where) if where else ''} ORDER BY {_ORDER} LIMIT %(limit)s"
    )
    return sql, params


class JobStore:
    def __init__(self, pool: psycopg_pool.ConnectionPool) -> None:
        self._pool = pool
        # the pool's connections that have their staging table (a session's own)
        self._staged: weakref.WeakSet[psycopg.Connection[Any]] = weakref.WeakSet()

    def apply(self, reports: Sequence[JobReport], now: datetime) -> AppliedBatch:
        """Derive and store the reports of one batch; all or nothing."""
        if not reports:
            return AppliedBatch(0, [])
        grouped = group_reports(reports)
        # one row per distinct report; dict: the batch's order, duplicates dropped
        timeline = list(dict.fromkeys(timeline_entry(r) for r in reports))
        redelivered = False

        def once() -> AppliedBatch:
            nonlocal redelivered
            try:
                return self._apply_once(grouped, timeline, now, redelivered)
            except UniqueViolation as exc:
                if exc.diag.constraint_name == _REPORT_KEY:
                    redelivered = True
                raise

        return retry_conflicts(once, also=(UniqueViolation,))

    def _apply_once(
        self,
        grouped: dict[JobKey, list[JobReport]],
        timeline: list[JobChange],
        now: datetime,
        redelivered: bool,
    ) -> AppliedBatch:
        with self._pool.connection() as conn:
            if conn not in self._staged:
                # in a transaction of its own: one rolled back would take the tables along
                conn.execute(_CREATE_STAGE)
                conn.execute(_CREATE_CHANGE_STAGE)
                conn.commit()
                self._staged.add(conn)
            return self._apply_in(conn, grouped, timeline, now, redelivered)

    def _apply_in(
        self,
        conn: psycopg.Connection[Any],
        grouped: dict[JobKey, list[JobReport]],
        timeline: list[JobChange],
        now: datetime,
        redelivered: bool,
    ) -> AppliedBatch:
        changes: list[JobChange] = []
        inserts: list[Job] = []
        updates: list[Job] = []
        with conn.transaction(), conn.cursor() as cur:
            stored = self._lock(cur, list(grouped))
            for key, batch in grouped.items():
                before = stored.get(key)
                after, job_changes = derive_all(before, batch, now)
                if after is None or after is before:
                    continue
                (updates if before is not None else inserts).append(after)
                changes.extend(job_changes)

            if inserts:
                copy_rows(cur, _COPY_JOBS, _JOB_TYPES, map(_row, inserts))
            if updates:
                copy_rows(cur, _COPY_STAGE, _JOB_TYPES, map(_row, updates))
                cur.execute(_UPDATE)
            rows = (
                (c.tenant_id, c.job_id, c.status.value, c.progress_percent, c.at,
                 c.error_message, now)
                for c in timeline
            )  # fmt: skip
            if redelivered:
                copy_rows(cur, _COPY_CHANGE_STAGE, _CHANGE_TYPES, rows)
                cur.execute(_INSERT_CHANGES)
            else:
                copy_rows(cur, _COPY_CHANGES, _CHANGE_TYPES, rows)
            # the hub tells what moved a job; a redelivered report moves nothing
            if changes:
                job_types = {(j.tenant_id, j.job_id): j.job_type for j in (*inserts, *updates)}
                publish(conn, job_status_changed(changes, job_types))
            return AppliedBatch(jobs_written=len(inserts) + len(updates), changes=changes)

    @staticmethod
    def _lock(cur: psycopg.Cursor[tuple[Any, ...]], keys: list[JobKey]) -> dict[JobKey, Job]:
        # two documents a stored job: orjson parses them in a tenth of json.loads' time
        set_json_loads(orjson.loads, cur)
        cur.execute(_LOCK, ([k[0] for k in keys], [k[1] for k in keys]))
        return {(row[0], row[1]): _job_from_tuple(row) for row in cur.fetchall()}

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

    def list(self, query: JobQuery, windows: JobWindows, now: datetime) -> JobPage:
        """One page of jobs, newest first; ``windows``: the defaults for the flag filter."""
        statement = list_sql(query, windows, now)
        if statement is None:
            return JobPage([], None)
        sql, params = statement
        with (
            translate_errors(),
            self._pool.connection() as conn,
            conn.cursor(row_factory=dict_row) as cur,
        ):
            cur.execute(sql, params)
            jobs = [job_from_row(row) for row in cur.fetchall()]
        if len(jobs) <= query.limit:
            return JobPage(jobs, None)
        jobs = jobs[: query.limit]
        last = jobs[-1]
        return JobPage(jobs, ListKey(last.created_at, last.tenant_id, last.job_id))
