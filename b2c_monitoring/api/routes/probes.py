"""/api/probes: the control endpoints of job runners (probe tokens only).

A runner long-polls ``GET /api/probes/commands?service=...&wait=...`` for the commands
of its service, acts, and marks each with ``POST /api/probes/commands/{id}/done``.
A claimed command not marked within the lease (``B2C_JOB_COMMAND_LEASE_S``) is
handed out again, so a runner that dies mid-command loses nothing. A runner that
cannot carry a command out (the job runs in another instance of its service) declines
it with ``POST /api/probes/commands/{id}/decline``: the service's other instances get
it, and it fails when none takes it within ``B2C_JOB_COMMAND_DECLINE_WINDOW_S``.

A scheduler integration (Celery beat, APScheduler) registers the schedules it knows
with ``PUT /api/probes/job-schedules/{jobType}``, so a missed run alerts without anyone
declaring it twice; the same schedule again changes nothing (runs stay expected from
when it was first registered).

A token bound to services (``b2c admin tokens create --service``) claims, marks and
declines only their commands: 403 for any other service.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from b2c_monitoring.alerting.schedules import next_expected
from b2c_monitoring.api.alert_models import ScheduleIn, ScheduleOut
from b2c_monitoring.api.command_models import (
    CommandDecline,
    CommandOutcome,
    JobCommand,
    JobCommandList,
)
from b2c_monitoring.api.deps import (
    AlertConfigDep,
    CommandWaitersDep,
    JobCommandsDep,
    Now,
    Probe,
    SettingsDep,
    target_tenant,
)
from b2c_monitoring.api.problems import responses
from b2c_monitoring.api.routes.job_schedules import JobTypePath, schedule_of
from b2c_monitoring.auth import Principal
from b2c_monitoring.processors import job_commands as jc

router = APIRouter(prefix="/api/probes", tags=["probes"])

MAX_WAIT_S = 30.0


InstanceQuery = Annotated[
    str | None, Query(max_length=256, description="service.instance.id of the runner")
]


def _claimer(principal: Principal, instance: str | None) -> str:
    return f"{principal.name}/{instance}" if instance else principal.name


@router.get(
    "/commands",
    response_model=JobCommandList,
    response_model_by_alias=True,
    summary="Claim the open commands of a service, waiting up to `wait` seconds for one",
    description="Answers as soon as there is a command (oldest first) or when `wait` is "
    "over (an empty list). Each answered command is claimed by the caller: mark it done "
    "within the lease, or it is handed out again.",
    responses=responses(401, 403, 422),
)
async def claim_commands(
    request: Request,
    principal: Probe,
    commands: JobCommandsDep,
    waiters: CommandWaitersDep,
    settings: SettingsDep,
    service: Annotated[
        str, Query(min_length=1, max_length=256, description="service.name of the runner")
    ],
    wait: Annotated[float, Query(ge=0, le=MAX_WAIT_S, description="seconds")] = 0,
    instance: InstanceQuery = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> JobCommandList:
    principal.require_service(service)
    claimer = _claimer(principal, instance)
    lease = timedelta(seconds=settings.job_command_lease_s)
    decline_window = timedelta(seconds=settings.job_command_decline_window_s)

    async def look() -> list[jc.JobCommand]:
        # each look of a long poll claims at its own time: the lease runs from then
        return await run_in_threadpool(
            commands.claim,
            service,
            principal.tenants,
            claimer,
            datetime.now(UTC),
            lease=lease,
            decline_window=decline_window,
            limit=limit,
        )

    found = await waiters.wait(service, look, wait, request.is_disconnected)
    return JobCommandList(items=[JobCommand.of(c) for c in found])


@router.post(
    "/commands/{command_id}/done",
    response_model=JobCommand,
    response_model_by_alias=True,
    summary="Mark a claimed command done (ok) or failed (with the error)",
    description="Marking it again answers it as it is.",
    responses=responses(401, 403, 404, 409, 422),
)
def command_done(
    command_id: Annotated[str, Path(max_length=64)],
    outcome: CommandOutcome,
    principal: Probe,
    commands: JobCommandsDep,
    now: Now,
) -> JobCommand:
    command = commands.complete(
        command_id,
        principal.tenants,
        ok=outcome.ok,
        result=outcome.result(),
        now=now,
        services=principal.services,
    )
    return JobCommand.of(command)


@router.post(
    "/commands/{command_id}/decline",
    response_model=JobCommand,
    response_model_by_alias=True,
    summary="Hand a claimed command back: the job is not this runner's to act on",
    description="The service's other runners are woken and get it; this runner is not "
    "handed it again. Declining again answers it as it is; a command claimed by another "
    "runner, or done, answers 409.",
    responses=responses(401, 403, 404, 409, 422),
)
def command_decline(
    command_id: Annotated[str, Path(max_length=64)],
    body: CommandDecline,
    principal: Probe,
    commands: JobCommandsDep,
    now: Now,
    instance: InstanceQuery = None,
) -> JobCommand:
    command = commands.decline(
        command_id,
        principal.tenants,
        _claimer(principal, instance),
        body.reason,
        now,
        services=principal.services,
    )
    return JobCommand.of(command)


@router.put(
    "/job-schedules/{job_type}",
    response_model=ScheduleOut,
    response_model_by_alias=True,
    summary="Register the schedule a scheduler runs a job type on (its integration calls it)",
    description="As PUT /api/admin/job-schedules/{jobType}, for probe tokens; the same "
    "schedule again answers it unchanged, so a restarted scheduler does not move the time "
    "from which runs are expected.",
    responses=responses(401, 403, 404, 422),
)
def register_schedule(
    job_type: JobTypePath,
    body: ScheduleIn,
    principal: Probe,
    config: AlertConfigDep,
    now: Now,
) -> ScheduleOut:
    schedule = schedule_of(job_type, body, now)
    tenant = target_tenant(principal, body.tenant_id)
    for record in config.schedules([tenant]):
        same = record.schedule
        if (same.job_type, same.cron, same.timezone, same.grace) == (
            schedule.job_type,
            schedule.cron,
            schedule.timezone,
            schedule.grace,
        ):
            return ScheduleOut.of(record, next_expected(body.cron, body.timezone, now))
    record = config.put_schedule(tenant, schedule, principal, now)
    return ScheduleOut.of(record, next_expected(body.cron, body.timezone, now))
