"""/api/admin/jobs: scheduler jobs of the caller's tenants."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Final

from fastapi import APIRouter, Query

from b2c_monitoring.api import cursors
from b2c_monitoring.api.deps import JobDep, JobsDep, LogsDep, Now, Viewer, WindowPolicyDep
from b2c_monitoring.api.models import (
    JobList,
    JobLogLine,
    JobTimelineEntry,
    SchedulerJob,
    SchedulerJobDetail,
)
from b2c_monitoring.api.params import TenantFilter, Timestamp
from b2c_monitoring.api.problems import responses
from b2c_monitoring.contract import MAX_JOB_TYPE_CHARS, JobState
from b2c_monitoring.errors import StorageError
from b2c_monitoring.processors.job_flags import JobFlag, WindowPolicy, job_flags
from b2c_monitoring.processors.jobs import Job
from b2c_monitoring.storage.jobs import JobQuery
from b2c_monitoring.storage.logs import LogStore

log = logging.getLogger(__name__)

RECENT_LOG_LINES: Final = 20
# The detail view is served from Postgres; a slow log store must not hold it up for long.
_RECENT_LOGS_TIMEOUT_S: Final = 3.0

router = APIRouter(prefix="/api/admin/jobs", tags=["jobs"])


def recent_logs(logs: LogStore, job: Job, n: int = RECENT_LOG_LINES) -> list[JobLogLine] | None:
    """The last ``n`` lines of ``job``'s log, oldest first, for the job's detail view.

    None when the log store cannot be read: the job itself still comes from Postgres,
    and an unreachable Elasticsearch should not make it a 503.
    """
    try:
        records = logs.recent_job_logs(job.tenant_id, job.job_id, n, timeout=_RECENT_LOGS_TIMEOUT_S)
    except StorageError as exc:
        log.warning("recent logs of job %s/%s unavailable: %s", job.tenant_id, job.job_id, exc)
        return None
    return [JobLogLine.of(r) for r in records]


def _with_flags(job: Job, policy: WindowPolicy, now: datetime) -> SchedulerJob:
    return SchedulerJob.of(job, job_flags(job, policy.for_type(job.job_type), now))


@router.get(
    "",
    response_model=JobList,
    response_model_by_alias=True,
    summary="List jobs of your tenants, newest first, filtered, a page at a time",
    responses=responses(401, 403, 422),
)
def list_jobs(
    principal: Viewer,
    jobs: JobsDep,
    policy: WindowPolicyDep,
    now: Now,
    status: Annotated[
        list[JobState] | None, Query(description="repeatable: jobs in any of these states")
    ] = None,
    job_type: Annotated[
        str | None, Query(alias="jobType", max_length=MAX_JOB_TYPE_CHARS, examples=["ERP_SYNC"])
    ] = None,
    tenant: TenantFilter = None,
    since: Annotated[
        Timestamp | None, Query(description="createdAt at or after (ISO 8601 with offset)")
    ] = None,
    until: Annotated[
        Timestamp | None, Query(description="createdAt before (ISO 8601 with offset)")
    ] = None,
    flag: Annotated[JobFlag | None, Query(description="only stalled or only overdue jobs")] = None,
    q: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            description="text within the error message or the metadata (case-insensitive)",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[
        str | None, Query(max_length=1024, description="nextCursor of the previous page")
    ] = None,
) -> JobList:
    query = JobQuery(
        # requested tenants outside the token's scope drop out: a filter never widens it
        tenants=principal.scope(tenant),
        statuses=status or (),
        job_type=job_type,
        since=since,
        until=until,
        flag=flag,
        text=q,
        after=cursors.job_key(cursor) if cursor is not None else None,
        limit=limit,
    )
    page = jobs.list(query, policy.default, now)
    return JobList(
        items=[_with_flags(job, policy, now) for job in page.jobs],
        next_cursor=cursors.job_cursor(page.next_after) if page.next_after is not None else None,
    )


@router.get(
    "/{job_id}",
    response_model=SchedulerJobDetail,
    response_model_by_alias=True,
    summary="Job details with its timeline",
    responses=responses(401, 403, 404, 409, 422),
)
def get_job(
    job: JobDep, jobs: JobsDep, logs: LogsDep, policy: WindowPolicyDep, now: Now
) -> SchedulerJobDetail:
    timeline = [JobTimelineEntry.of(c) for c in jobs.timeline(job.tenant_id, job.job_id)]
    summary = _with_flags(job, policy, now)
    return SchedulerJobDetail(
        **summary.model_dump(), timeline=timeline, recent_logs=recent_logs(logs, job)
    )
