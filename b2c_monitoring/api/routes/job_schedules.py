"""/api/admin/job-schedules: when a job type should run, per tenant; a run that does not
start within the grace period raises a missed_run alert, and one arriving resolves it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from fastapi.exceptions import RequestValidationError

from b2c_monitoring.alerting.schedules import InvalidSchedule, Schedule, next_expected, validate
from b2c_monitoring.api.alert_models import ScheduleIn, ScheduleList, ScheduleOut
from b2c_monitoring.api.deps import AlertConfigDep, Now, Operator, Viewer, target_tenant
from b2c_monitoring.api.problems import responses
from b2c_monitoring.contract import MAX_JOB_TYPE_CHARS

router = APIRouter(prefix="/api/admin/job-schedules", tags=["alerts"])

JobTypePath = Annotated[str, Path(min_length=1, max_length=MAX_JOB_TYPE_CHARS)]


def schedule_of(job_type: str, body: ScheduleIn, now: datetime) -> Schedule:
    """The schedule ``body`` asks for, from ``now``; a cron or time zone that does not
    parse is a 422 on its body field, like any invalid field."""
    try:
        validate(body.cron, body.timezone)
    except InvalidSchedule as exc:
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("body", exc.field), "msg": exc.message, "input": None}]
        ) from exc
    return Schedule(job_type, body.cron, body.timezone, timedelta(seconds=body.grace_s), now)


@router.get(
    "",
    response_model=ScheduleList,
    response_model_by_alias=True,
    summary="Expected schedules of job types in your tenants",
    responses=responses(401, 403, 422),
)
def list_schedules(
    principal: Viewer,
    config: AlertConfigDep,
    now: Now,
    tenant: Annotated[list[str] | None, Query(description="repeatable, within your scope")] = None,
) -> ScheduleList:
    return ScheduleList(
        items=[
            ScheduleOut.of(r, next_expected(r.schedule.cron, r.schedule.timezone, now))
            for r in config.schedules(principal.scope(tenant))
        ]
    )


@router.put(
    "/{job_type}",
    response_model=ScheduleOut,
    response_model_by_alias=True,
    summary="Set the expected schedule of a job type (cron, IANA time zone, grace)",
    responses=responses(401, 403, 404, 422),
)
def put_schedule(
    job_type: JobTypePath, body: ScheduleIn, principal: Operator, config: AlertConfigDep, now: Now
) -> ScheduleOut:
    schedule = schedule_of(job_type, body, now)
    record = config.put_schedule(target_tenant(principal, body.tenant_id), schedule, principal, now)
    return ScheduleOut.of(record, next_expected(body.cron, body.timezone, now))


@router.delete(
    "/{job_type}",
    status_code=204,
    response_class=Response,
    summary="Stop expecting runs of a job type",
    responses=responses(401, 403, 404, 422),
)
def delete_schedule(
    job_type: JobTypePath,
    principal: Operator,
    config: AlertConfigDep,
    now: Now,
    tenant: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    config.delete_schedule(target_tenant(principal, tenant), job_type, principal, now)
    return Response(status_code=204)
