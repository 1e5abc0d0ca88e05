"""/api/admin/job-types: the windows after which a job of a type is stalled or overdue."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from b2c_monitoring.api.deps import Admin, DefaultWindowsDep, JobWindowsDep, Now, Viewer
from b2c_monitoring.api.models import DefaultWindows, JobTypeList, JobTypeWindows, WindowsUpdate
from b2c_monitoring.api.problems import responses
from b2c_monitoring.contract import MAX_JOB_TYPE_CHARS

router = APIRouter(prefix="/api/admin/job-types", tags=["job types"])


@router.get(
    "",
    response_model=JobTypeList,
    response_model_by_alias=True,
    summary="The default windows and the job types with windows of their own",
    responses=responses(401, 403),
)
def list_job_types(_: Viewer, store: JobWindowsDep, defaults: DefaultWindowsDep) -> JobTypeList:
    return JobTypeList(
        defaults=DefaultWindows.of(defaults),
        items=[JobTypeWindows.of(w) for w in store.all().values()],
    )


@router.put(
    "/{job_type}/windows",
    response_model=JobTypeWindows,
    response_model_by_alias=True,
    summary="Set the heartbeat and start windows of a job type (null: the default)",
    responses=responses(401, 403, 422),
)
def put_windows(
    job_type: Annotated[
        str, Path(min_length=1, max_length=MAX_JOB_TYPE_CHARS, description="scheduler.job.type")
    ],
    body: WindowsUpdate,
    principal: Admin,
    store: JobWindowsDep,
    now: Now,
) -> JobTypeWindows:
    return JobTypeWindows.of(store.put(body.of_type(job_type), actor=principal, now=now))
