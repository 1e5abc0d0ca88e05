"""/api/admin/jobs/{id}/logs: a job's execution log, read from Elasticsearch.

The job is looked up first in Postgres within the token's tenants, exactly as
``GET /api/admin/jobs/{id}`` does, and its log is then read in the job's own tenant
only: the same job id in another tenant never contributes a line.
"""

from __future__ import annotations

import logging
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import StringConstraints

from b2c_monitoring.api import cursors
from b2c_monitoring.api.deps import JobDep, LogsDep
from b2c_monitoring.api.models import JobLogLine, JobLogPage
from b2c_monitoring.api.params import Timestamp
from b2c_monitoring.api.problems import responses
from b2c_monitoring.severity import LogLevel

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/admin/jobs", tags=["jobs"])


@router.get(
    "/{job_id}/logs",
    response_model=JobLogPage,
    response_model_by_alias=True,
    summary="A job's execution log, a page at a time, filtered by level and text",
    description=(
        "Log records that carry the job's `scheduler.job.id`, in the job's tenant only. "
        "Pages follow each other by `cursor`; a page shorter than `limit` is the end of the "
        "log for now, and a running job's log grows: poll again with the last `nextCursor`. "
        "503 when the log store cannot be reached."
    ),
    responses=responses(401, 403, 404, 409, 422, 503),
)
def get_job_logs(
    job: JobDep,
    logs: LogsDep,
    level: Annotated[
        LogLevel | None,
        Query(
            description="at least this level: debug (SeverityNumber >= 5), info (>= 9), "
            "warn (>= 13), error (>= 17), fatal (>= 21)"
        ),
    ] = None,
    severity: Annotated[
        list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] | None,
        Query(
            description="repeatable: exactly these SeverityText values (any case), e.g. WARN",
        ),
    ] = None,
    q: Annotated[
        str | None,
        Query(min_length=1, max_length=200, description="words that all occur in the message"),
    ] = None,
    since: Annotated[
        Timestamp | None, Query(description="records at or after (ISO 8601 with offset)")
    ] = None,
    until: Annotated[
        Timestamp | None, Query(description="records before (ISO 8601 with offset)")
    ] = None,
    order: Annotated[
        Literal["asc", "desc"], Query(description="asc: oldest first; desc: newest first")
    ] = "asc",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[
        str | None, Query(max_length=1024, description="nextCursor of the previous page")
    ] = None,
) -> JobLogPage:
    after = cursors.log_position(cursor, order) if cursor is not None else None
    page = logs.job_logs(
        job.tenant_id,
        job.job_id,
        min_severity=level.min_severity if level is not None else None,
        severities=severity or (),
        text=q,
        since=since,
        until=until,
        after=after,
        limit=limit,
        order=order,
    )
    last = page.last
    return JobLogPage(
        items=[JobLogLine.of(r) for r in page.records],
        next_cursor=cursors.log_cursor(order, last) if last is not None else None,
    )
