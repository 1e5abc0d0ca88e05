"""/api/admin/jobs: scheduler jobs of the caller's tenants."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from b2c_monitoring.api.deps import JobsDep, Viewer
from b2c_monitoring.api.models import JobTimelineEntry, SchedulerJob, SchedulerJobDetail
from b2c_monitoring.api.problems import responses
from b2c_monitoring.contract import JOB_ID_MAX_CHARS
from b2c_monitoring.errors import Conflict, NotFound

router = APIRouter(prefix="/api/admin/jobs", tags=["jobs"])


@router.get(
    "/{job_id}",
    response_model=SchedulerJobDetail,
    response_model_by_alias=True,
    summary="Job details with its timeline",
    responses=responses(401, 403, 404, 409, 422),
)
def get_job(
    job_id: Annotated[str, Path(max_length=JOB_ID_MAX_CHARS, description="scheduler.job.id")],
    principal: Viewer,
    jobs: JobsDep,
    tenant: Annotated[
        str | None,
        Query(description="the job's tenant, when the same id exists in several of yours"),
    ] = None,
) -> SchedulerJobDetail:
    found = jobs.get(job_id, principal.scope([tenant] if tenant else None))
    if not found:
        # a job of another tenant answers exactly like an absent one
        raise NotFound(f"no job {job_id!r} in your tenants")
    if len(found) > 1:
        tenants = ", ".join(j.tenant_id for j in found)
        raise Conflict(f"job id {job_id!r} exists in several tenants ({tenants}); add ?tenant=")
    job = found[0]
    timeline = [JobTimelineEntry.of(c) for c in jobs.timeline(job.tenant_id, job.job_id)]
    return SchedulerJobDetail(**SchedulerJob.of(job).model_dump(), timeline=timeline)
