"""/api/admin/jobs/{id}/cancel, /retry, /commands: operators ask a job's service to act.

A request becomes a command row with its audit row, in one transaction; the job's
runner claims it over ``/api/probes/commands`` (routes/probes.py). The answer is
202: the command is accepted, and the job's own reports say when it took effect.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter

from b2c_monitoring.api.command_models import JobCommand, JobCommandList
from b2c_monitoring.api.deps import AuditDep, JobCommandsDep, JobDep, Now, Operator
from b2c_monitoring.api.problems import responses
from b2c_monitoring.auth import Principal
from b2c_monitoring.errors import Conflict
from b2c_monitoring.processors.job_commands import CommandKind, can_cancel, can_retry, new_command
from b2c_monitoring.processors.jobs import Job
from b2c_monitoring.storage.audit import AuditEntry, AuditStore
from b2c_monitoring.storage.job_commands import JobCommandStore, audit_action

router = APIRouter(prefix="/api/admin/jobs", tags=["jobs"])


def _request(
    kind: CommandKind,
    job: Job,
    principal: Principal,
    commands: JobCommandStore,
    audit: AuditStore,
    now: datetime,
) -> JobCommand:
    reason = can_cancel(job) if kind is CommandKind.CANCEL else can_retry(job)
    if reason is not None:
        # a refused request is a request too: the log says who tried
        audit.record(
            AuditEntry.by(
                principal,
                audit_action(kind),
                job.job_id,
                at=now,
                tenant_id=job.tenant_id,
                details={"outcome": "refused", "reason": reason},
            )
        )
        raise Conflict(reason)
    command = new_command(
        kind,
        job,
        command_id=str(uuid.uuid4()),
        requested_by=principal.name,
        requested_by_token=principal.token_id,
        now=now,
        new_job_id=str(uuid.uuid4()) if kind is CommandKind.RETRY else None,
    )
    stored, _ = commands.request(command)
    return JobCommand.of(stored)


@router.post(
    "/{job_id}/cancel",
    status_code=202,
    response_model=JobCommand,
    response_model_by_alias=True,
    summary="Cancel a pending or running job: its service's job runner stops it",
    description="Answers the command. Asking again while it is live answers the same command. "
    "The job turns cancelled when its runner reports it so (within seconds).",
    responses=responses(401, 403, 404, 409, 422),
)
def cancel_job(
    principal: Operator, job: JobDep, commands: JobCommandsDep, audit: AuditDep, now: Now
) -> JobCommand:
    return _request(CommandKind.CANCEL, job, principal, commands, audit, now)


@router.post(
    "/{job_id}/retry",
    status_code=202,
    response_model=JobCommand,
    response_model_by_alias=True,
    summary="Retry a failed or cancelled job: its service's job runner runs it again",
    description="The new run has the id in retry.newJobId, scheduler.job.retry_of = this job "
    "and attempt + 1, with this run's parameters. Asking again answers the same command.",
    responses=responses(401, 403, 404, 409, 422),
)
def retry_job(
    principal: Operator, job: JobDep, commands: JobCommandsDep, audit: AuditDep, now: Now
) -> JobCommand:
    return _request(CommandKind.RETRY, job, principal, commands, audit, now)


@router.get(
    "/{job_id}/commands",
    response_model=JobCommandList,
    response_model_by_alias=True,
    summary="The retry and cancel commands of a job, newest first",
    responses=responses(401, 403, 404, 409, 422),
)
def job_commands(job: JobDep, commands: JobCommandsDep, now: Now) -> JobCommandList:
    return JobCommandList(
        items=[JobCommand.of(c) for c in commands.for_job(job.tenant_id, job.job_id, now)]
    )
