"""The JSON of a service's errors, communication errors and error patterns (camelCase)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field, JsonValue

from b2c_monitoring.api.models import ApiModel
from b2c_monitoring.storage.communication_errors import (
    ErrorPattern,
    PatternReport,
    ServiceError,
    Trend,
    TrendPoint,
)

# request and response bodies are excerpts: a support ticket needs the start of them
MAX_EXCERPT_CHARS = 2048


def excerpt(text: str | None, limit: int = MAX_EXCERPT_CHARS) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


class ServiceErrorLine(ApiModel):
    """One error-level record of a service (or one of its communication errors)."""

    time: datetime = Field(description="the record's time (to the microsecond)")
    severity_text: str | None = Field(examples=["ERROR"])
    severity_number: int | None = Field(description="OpenTelemetry SeverityNumber (17 error)")
    body: str
    service_name: str | None = Field(description="service.name of the emitting service")
    job_id: str | None = Field(description="scheduler.job.id of the job it happened in")
    communication_error: bool = Field(
        description="event.name is connected_service.communication_error"
    )
    pattern: str | None = Field(description="the message with ids, numbers, times, URLs masked")
    fingerprint: str | None = Field(description="the pattern's key (see /error-patterns)")
    trace_id: str | None
    span_id: str | None
    attributes: dict[str, JsonValue] = Field(
        description="the record's attributes, without tenant.id and the scheduler.job ones"
    )

    @classmethod
    def of(cls, error: ServiceError) -> ServiceErrorLine:
        r = error.record
        return cls(
            time=r.time,
            severity_text=r.severity_text,
            severity_number=r.severity_number,
            body=r.body,
            service_name=r.service_name,
            job_id=error.job_id,
            communication_error=error.is_communication_error,
            pattern=error.pattern,
            fingerprint=error.fingerprint,
            trace_id=r.trace_id,
            span_id=r.span_id,
            attributes=r.attributes,
        )


class ServiceErrorPage(ApiModel):
    items: list[ServiceErrorLine] = Field(description="newest first by default")
    next_cursor: str | None = Field(
        description="pass as ?cursor= to continue after the last item; null when this page is empty"
    )


class CommunicationError(ApiModel):
    """A failed call to a connected service (telemetry contract: communication errors)."""

    time: datetime
    method: str | None = Field(description="http.request.method", examples=["GET"])
    url: str | None = Field(description="url.full, secrets redacted")
    status_code: int | None = Field(description="http.response.status_code", examples=[503])
    server_address: str | None = Field(description="server.address")
    error_type: str | None = Field(description="error.type", examples=["httpx.ConnectTimeout"])
    message: str = Field(description="exception.message, else the record's body")
    duration_ms: float | None = Field(description="communication.duration, in milliseconds")
    request_excerpt: str | None = Field(
        description=f"communication.request.body, at most {MAX_EXCERPT_CHARS} characters"
    )
    response_excerpt: str | None = Field(
        description=f"communication.response.body, at most {MAX_EXCERPT_CHARS} characters"
    )
    job_id: str | None = Field(description="scheduler.job.id of the job it happened in")
    service_name: str | None = Field(description="service.name of the caller")
    pattern: str | None
    fingerprint: str | None
    trace_id: str | None
    span_id: str | None

    @classmethod
    def of(cls, error: ServiceError) -> CommunicationError:
        return cls(
            time=error.record.time,
            method=error.method,
            url=error.url,
            status_code=error.status_code,
            server_address=error.server_address,
            error_type=error.error_type,
            message=error.message,
            duration_ms=None if error.duration_s is None else round(error.duration_s * 1000, 3),
            request_excerpt=excerpt(error.request_body),
            response_excerpt=excerpt(error.response_body),
            job_id=error.job_id,
            service_name=error.record.service_name,
            pattern=error.pattern,
            fingerprint=error.fingerprint,
            trace_id=error.record.trace_id,
            span_id=error.record.span_id,
        )


class CommunicationErrorPage(ApiModel):
    items: list[CommunicationError] = Field(description="newest first by default")
    next_cursor: str | None = Field(description="pass as ?cursor= to continue; null when empty")


class TrendBucket(ApiModel):
    at: datetime = Field(description="the bucket's start")
    count: int

    @classmethod
    def of(cls, point: TrendPoint) -> TrendBucket:
        return cls(at=point.at, count=point.count)


class ErrorPatternEntry(ApiModel):
    fingerprint: str = Field(description="SHA-256 of the pattern; ?fingerprint= on the error lists")
    pattern: str = Field(examples=["GET <url> returned <n>"])
    count: int
    first_seen: datetime = Field(description="in the range asked for")
    last_seen: datetime
    trend: Trend = Field(
        description="new: none in the range's first half; rising / falling: the second half "
        "has at least 1.5 times / at most 2/3 of the first half's count; else steady"
    )
    histogram: list[TrendBucket] = Field(description="count per interval over the range")
    example: CommunicationError | None = Field(description="its latest occurrence")
    jobs: list[str] = Field(
        description="ids of the jobs it hit, the most hit first (at most 20); empty with jobs=false"
    )
    jobs_affected: int | None = Field(
        description="how many jobs it hit (approximate above 3,000); null with jobs=false"
    )

    @classmethod
    def of(cls, p: ErrorPattern) -> ErrorPatternEntry:
        return cls(
            fingerprint=p.fingerprint,
            pattern=p.pattern,
            count=p.count,
            first_seen=p.first_seen,
            last_seen=p.last_seen,
            trend=p.trend,
            histogram=[TrendBucket.of(b) for b in p.histogram],
            example=CommunicationError.of(p.example) if p.example is not None else None,
            jobs=p.jobs,
            jobs_affected=p.jobs_affected,
        )


class ErrorPatternList(ApiModel):
    service_id: str
    name: str
    tenant_id: str
    since: datetime
    until: datetime
    interval: str = Field(description="the histogram's bucket width", examples=["1h"])
    total: int = Field(description="communication errors in the range")
    without_pattern: int = Field(
        description="of those, stored without a fingerprint (before patterns were computed)"
    )
    pattern_count: int = Field(description="distinct patterns in the range")
    items: list[ErrorPatternEntry] = Field(description="the most frequent first")

    @classmethod
    def of(
        cls, report: PatternReport, *, service_id: str, name: str, tenant_id: str
    ) -> ErrorPatternList:
        return cls(
            service_id=service_id,
            name=name,
            tenant_id=tenant_id,
            since=report.since,
            until=report.until,
            interval=report.interval,
            total=report.total,
            without_pattern=report.without_pattern,
            pattern_count=report.pattern_count,
            items=[ErrorPatternEntry.of(p) for p in report.patterns],
        )


EXPORT_COLUMNS = (
    "time",
    "severityText",
    "communicationError",
    "serviceName",
    "jobId",
    "method",
    "url",
    "statusCode",
    "serverAddress",
    "errorType",
    "message",
    "durationMs",
    "pattern",
    "fingerprint",
    "requestExcerpt",
    "responseExcerpt",
    "traceId",
    "spanId",
)


def export_row(error: ServiceError) -> dict[str, Any]:
    """One error of an export (JSON item or CSV row): the columns above, in order."""
    r = error.record
    return {
        "time": r.time.isoformat(),
        "severityText": r.severity_text,
        "communicationError": error.is_communication_error,
        "serviceName": r.service_name,
        "jobId": error.job_id,
        "method": error.method,
        "url": error.url,
        "statusCode": error.status_code,
        "serverAddress": error.server_address,
        "errorType": error.error_type,
        "message": error.message,
        "durationMs": None if error.duration_s is None else round(error.duration_s * 1000, 3),
        "pattern": error.pattern,
        "fingerprint": error.fingerprint,
        "requestExcerpt": excerpt(error.request_body),
        "responseExcerpt": excerpt(error.response_body),
        "traceId": r.trace_id,
        "spanId": r.span_id,
    }
