"""The API's JSON of retry and cancel commands and of the audit log (camelCase)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, JsonValue, model_validator

from b2c_monitoring.api.models import ApiModel
from b2c_monitoring.contract import JOB_ID_MAX_CHARS
from b2c_monitoring.processors import job_commands as jc
from b2c_monitoring.processors.jobs import Scalar
from b2c_monitoring.storage.audit import AuditRecord


class RetryRun(ApiModel):
    """The run a retry starts."""

    job_type: str = Field(description="the handler the runner runs")
    new_job_id: str = Field(description="scheduler.job.id of the new run, fixed at the request")
    attempt: int = Field(ge=2, description="the failed run's attempt + 1")
    params: dict[str, Scalar] = Field(
        description="the failed run's parameters (its metadata params.<name>)"
    )


class JobCommand(ApiModel):
    """A request to the job's service to act on the job; its runner claims it, acts, and
    marks it done or failed."""

    id: str
    kind: jc.CommandKind
    tenant_id: str
    job_id: str
    service_name: str = Field(description="service.name of the job: whose runner acts")
    state: jc.CommandState = Field(
        description="pending: waiting for a runner; claimed: a runner acts on it (claimable "
        "again when not marked within its lease); done; failed: see result.error; expired: "
        "no runner claimed it within B2C_JOB_COMMAND_EXPIRY_S (see result.error)"
    )
    requested_by: str = Field(description="the name of the token that asked")
    requested_at: datetime
    claimed_by: str | None
    claimed_at: datetime | None
    claims: int = Field(description="how often a runner claimed it")
    done_at: datetime | None
    result: dict[str, Scalar] | None = Field(
        description="done: e.g. newJobId of a retry; failed: error"
    )
    retry: RetryRun | None = Field(description="a retry: the run it starts")
    declined_by: list[str] = Field(
        description="the runners that declined it (the job was not theirs); it is not "
        "handed to them again"
    )

    @classmethod
    def of(cls, command: jc.JobCommand) -> JobCommand:
        retry = command.retry
        return cls(
            id=command.id,
            kind=command.kind,
            tenant_id=command.tenant_id,
            job_id=command.job_id,
            service_name=command.service_name,
            state=command.state,
            requested_by=command.requested_by,
            requested_at=command.requested_at,
            claimed_by=command.claimed_by,
            claimed_at=command.claimed_at,
            claims=command.claims,
            done_at=command.done_at,
            result=dict(command.result) if command.result is not None else None,
            declined_by=list(command.declined_by),
            retry=RetryRun(
                job_type=retry.job_type,
                new_job_id=retry.new_job_id,
                attempt=retry.attempt,
                params=dict(retry.params),
            )
            if retry is not None
            else None,
        )


class JobCommandList(ApiModel):
    items: list[JobCommand]


class CommandOutcome(ApiModel):
    """What the runner did: ``ok`` (with ``newJobId`` for a retry) or an ``error``."""

    ok: bool
    new_job_id: Annotated[str, Field(min_length=1, max_length=JOB_ID_MAX_CHARS)] | None = None
    error: Annotated[str, Field(min_length=1, max_length=1000)] | None = None

    @model_validator(mode="after")
    def _error_when_failed(self) -> CommandOutcome:
        if not self.ok and self.error is None:
            raise ValueError("a failed outcome needs an error")
        return self

    def result(self) -> dict[str, Scalar]:
        if not self.ok:
            assert self.error is not None
            return {"error": self.error}
        return {"newJobId": self.new_job_id} if self.new_job_id is not None else {}


class CommandDecline(ApiModel):
    """Why the runner cannot carry the command out (it stays for the service's others)."""

    reason: Annotated[str, Field(min_length=1, max_length=1000)]


class AuditEntry(ApiModel):
    seq: int = Field(description="the log's order; newest is highest")
    at: datetime
    actor_name: str = Field(description="the name of the token that acted")
    actor_token_id: str | None
    action: str = Field(examples=["job.cancel", "job.retry"])
    tenant_id: str | None
    target: str = Field(description="what was acted on, e.g. the job id")
    details: dict[str, JsonValue] = Field(
        description="e.g. commandId and outcome (requested, repeated, refused with its reason)"
    )

    @classmethod
    def of(cls, record: AuditRecord) -> AuditEntry:
        entry = record.entry
        return cls(
            seq=record.seq,
            at=entry.at,
            actor_name=entry.actor_name,
            actor_token_id=entry.actor_token_id,
            action=entry.action,
            tenant_id=entry.tenant_id,
            target=entry.target,
            details=dict(entry.details),
        )


class AuditPage(ApiModel):
    items: list[AuditEntry] = Field(description="newest first")
    next_cursor: str | None = Field(
        description="pass as ?cursor= for the next (older) page; null on the last page"
    )
