"""The API's JSON: camelCase, shaped like the ADR's records, states spelled as in the contract."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    model_validator,
)
from pydantic.alias_generators import to_camel

from b2c_monitoring.api.params import Timestamp
from b2c_monitoring.auth import Role, TokenState
from b2c_monitoring.contract import MAX_JOB_TYPE_CHARS, JobState
from b2c_monitoring.processors.job_flags import JobFlag, JobWindows, TypeWindows
from b2c_monitoring.processors.jobs import Job, JobChange, Scalar
from b2c_monitoring.storage.logs import LogRecord
from b2c_monitoring.storage.tokens import TokenRecord


class ApiModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class JobTimelineEntry(ApiModel):
    status: JobState
    progress_percent: int
    at: datetime = Field(description="time of the report that made this change")
    error_message: str | None = None

    @classmethod
    def of(cls, change: JobChange) -> JobTimelineEntry:
        return cls(
            status=change.status,
            progress_percent=change.progress_percent,
            at=change.at,
            error_message=change.error_message,
        )


class SchedulerJob(ApiModel):
    """The ADR's ``SchedulerJob``. ``id`` is the job's ``scheduler.job.id``."""

    id: str = Field(description="scheduler.job.id; unique within its tenant")
    job_type: str | None = Field(description="ERP_SYNC, PIM_IMPORT, CRM_EXPORT or any other")
    tenant_id: str
    status: JobState
    progress_percent: int = Field(ge=0, le=100)
    created_at: datetime = Field(description="the earliest report")
    started_at: datetime | None = Field(description="the earliest running report")
    completed_at: datetime | None = Field(description="the terminal report")
    error_message: str | None
    metadata: dict[str, Scalar]
    attempt: int = Field(ge=1)
    retry_of: str | None = Field(description="the job id this run retries")
    service_name: str | None = Field(description="service.name of the reporting service")
    last_report_at: datetime
    flags: list[JobFlag] = Field(
        default_factory=list,
        description="stalled: running and silent for longer than its type's heartbeat window; "
        "overdue: pending for longer than its type's start window",
    )

    @classmethod
    def of(cls, job: Job, flags: Iterable[JobFlag] = ()) -> SchedulerJob:
        return cls(
            id=job.job_id,
            job_type=job.job_type,
            tenant_id=job.tenant_id,
            status=job.status,
            progress_percent=job.progress_percent,
            created_at=job.created_at,
            started_at=job.started_at,
            completed_at=job.completed_at,
            error_message=job.error_message,
            metadata=dict(job.metadata),
            attempt=job.attempt,
            retry_of=job.retry_of,
            service_name=job.service_name,
            last_report_at=job.last_report_at,
            flags=sorted(flags),
        )


class JobLogLine(ApiModel):
    """One log record of a job's execution log."""

    time: datetime = Field(description="the record's time (to the microsecond)")
    severity_text: str | None = Field(examples=["WARN"])
    severity_number: int | None = Field(
        description="OpenTelemetry SeverityNumber: 5 debug, 9 info, 13 warn, 17 error, 21 fatal"
    )
    body: str
    trace_id: str | None
    span_id: str | None
    service_name: str | None = Field(description="service.name of the emitting service")
    attributes: dict[str, JsonValue] = Field(
        description="the record's attributes, without tenant.id and the scheduler.job ones"
    )

    @classmethod
    def of(cls, record: LogRecord) -> JobLogLine:
        return cls(
            time=record.time,
            severity_text=record.severity_text,
            severity_number=record.severity_number,
            body=record.body,
            trace_id=record.trace_id,
            span_id=record.span_id,
            service_name=record.service_name,
            attributes=record.attributes,
        )


class JobLogPage(ApiModel):
    items: list[JobLogLine] = Field(description="in the order asked for, oldest first by default")
    next_cursor: str | None = Field(
        description="pass as ?cursor= to continue after the last item; null when this page is "
        "empty. The log of a running job grows: poll again with the last cursor you got"
    )


class SchedulerJobDetail(SchedulerJob):
    timeline: list[JobTimelineEntry] = Field(
        description="every change of status or progress, oldest first"
    )
    recent_logs: list[JobLogLine] | None = Field(
        default=None,
        description="its last log lines, oldest first; null when the log store cannot be read",
    )


class JobList(ApiModel):
    items: list[SchedulerJob] = Field(description="newest first (createdAt, tenantId, id)")
    next_cursor: str | None = Field(
        description="pass as ?cursor= for the next page; null on the last page"
    )


_MAX_WINDOW_S = 30 * 86400


def _seconds(value: timedelta | None) -> int | None:
    return None if value is None else int(value.total_seconds())


def _opt_delta(seconds: int | None) -> timedelta | None:
    return None if seconds is None else timedelta(seconds=seconds)


class WindowsUpdate(ApiModel):
    """Both windows of a job type; null falls back to the default."""

    heartbeat_window_seconds: int | None = Field(
        default=None,
        ge=1,
        le=_MAX_WINDOW_S,
        description="a running job silent for longer is stalled",
    )
    start_window_seconds: int | None = Field(
        default=None,
        ge=1,
        le=_MAX_WINDOW_S,
        description="a pending job not started after this long is overdue",
    )

    def of_type(self, job_type: str) -> TypeWindows:
        return TypeWindows(
            job_type,
            _opt_delta(self.heartbeat_window_seconds),
            _opt_delta(self.start_window_seconds),
        )


class JobTypeWindows(WindowsUpdate):
    job_type: str = Field(max_length=MAX_JOB_TYPE_CHARS)

    @classmethod
    def of(cls, windows: TypeWindows) -> JobTypeWindows:
        return cls(
            job_type=windows.job_type,
            heartbeat_window_seconds=_seconds(windows.heartbeat),
            start_window_seconds=_seconds(windows.start),
        )


class DefaultWindows(ApiModel):
    heartbeat_window_seconds: int
    start_window_seconds: int

    @classmethod
    def of(cls, windows: JobWindows) -> DefaultWindows:
        return cls(
            heartbeat_window_seconds=int(windows.heartbeat.total_seconds()),
            start_window_seconds=int(windows.start.total_seconds()),
        )


class JobTypeList(ApiModel):
    defaults: DefaultWindows = Field(description="for job types without their own windows")
    items: list[JobTypeWindows] = Field(description="job types with windows of their own")


TenantId = Annotated[str, StringConstraints(min_length=1, max_length=64)]
ServiceName = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class TokenCreate(ApiModel):
    model_config = ConfigDict(  # merged with ApiModel's
        # _services_only_for_probes, said in the document: a probe token, or no services
        json_schema_extra={
            "anyOf": [
                {"properties": {"role": {"const": Role.PROBE.value}}},
                {"properties": {"services": {"type": "null"}}},
            ]
        },
    )

    name: str = Field(min_length=1, max_length=100, examples=["ci-reader"])
    role: Role = Field(
        description="viewer reads; operator also retries and cancels; admin also manages tokens"
    )
    # required even when null: a token for every tenant must be asked for, never a default
    tenants: list[TenantId] | None = Field(
        min_length=1,
        max_length=100,
        description="the tenants the token may see; null: every tenant (only for a token "
        "that itself sees every tenant)",
        examples=[["acme"]],
    )
    expires_at: Timestamp | None = Field(
        default=None,
        description="in the future; from this instant on the token is refused like a "
        "revoked one; null: it never expires",
    )
    services: list[ServiceName] | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="probe tokens only: the service.name values it may act for; null: any service",
        examples=[["erp-connector"]],
    )

    @model_validator(mode="after")
    def _services_only_for_probes(self) -> TokenCreate:
        if self.services is not None and self.role is not Role.PROBE:
            raise ValueError(
                f"services bind a probe token; a {self.role.value} token cannot have them"
            )
        return self


class TokenInfo(ApiModel):
    """An admin API token; never its secret, which is shown once at creation."""

    id: str
    name: str
    role: Role
    tenants: list[str] | None = Field(description="null: every tenant")
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None
    expires_at: datetime | None = Field(description="null: never expires")
    services: list[str] | None = Field(description="null: any service (probe tokens)")
    state: TokenState = Field(description="at the time of the answer")

    @classmethod
    def of(cls, token: TokenRecord, now: datetime) -> TokenInfo:
        return cls(
            id=token.id,
            name=token.name,
            role=token.role,
            tenants=list(token.tenants) if token.tenants is not None else None,
            created_at=token.created_at,
            revoked_at=token.revoked_at,
            last_used_at=token.last_used_at,
            expires_at=token.expires_at,
            services=list(token.services) if token.services is not None else None,
            state=token.state(now),
        )


class TokenCreated(TokenInfo):
    secret: str = Field(description="the bearer token; shown this once and stored only as a hash")


class TokenList(ApiModel):
    items: list[TokenInfo] = Field(description="oldest first")
