"""The API's JSON: camelCase, shaped like the ADR's records, states spelled as in the contract."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from b2c_monitoring.contract import JobState
from b2c_monitoring.processors.jobs import Job, JobChange, Scalar


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

    @classmethod
    def of(cls, job: Job) -> SchedulerJob:
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
        )


class SchedulerJobDetail(SchedulerJob):
    timeline: list[JobTimelineEntry] = Field(
        description="every change of status or progress, oldest first"
    )
