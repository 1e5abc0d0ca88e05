"""A connected service's errors: the error log, communication errors, error patterns,
their export and a support bundle, read from Elasticsearch.

The service is resolved exactly as the other service routes do (id or name, within
the token's tenants; another tenant's service answers 404), and its records are then
read in the service's own tenant only: the same name in another tenant never
contributes a line, a pattern, a row or a job to anything here.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from itertools import chain
from typing import Annotated, Final, Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from pydantic import StringConstraints

from b2c_monitoring.api.deps import ErrorsDep, JobsDep, Now, ResourcesDep, ServiceDep, ServicesDep
from b2c_monitoring.api.error_models import (
    EXPORT_COLUMNS,
    CommunicationError,
    CommunicationErrorPage,
    ErrorPatternList,
    ServiceErrorLine,
    ServiceErrorPage,
    export_row,
)
from b2c_monitoring.api.params import Timestamp, time_range
from b2c_monitoring.api.problems import responses
from b2c_monitoring.api.service_views import (
    BUNDLE_MAX_ERRORS,
    BUNDLE_MAX_JOBS,
    error_page,
    error_patterns,
    error_query,
    safe_name,
    write_bundle,
)
from b2c_monitoring.processors.services import Service
from b2c_monitoring.severity import LogLevel
from b2c_monitoring.storage.communication_errors import ServiceError

router = APIRouter(prefix="/api/admin/services", tags=["services"])

MAX_EXPORT_ITEMS: Final = 1_000_000
DEFAULT_EXPORT_ITEMS: Final = 100_000
_CHUNK: Final = 64 * 1024

Since = Annotated[Timestamp | None, Query(description="records at or after (ISO 8601 with offset)")]
Until = Annotated[Timestamp | None, Query(description="records before (ISO 8601 with offset)")]
Text = Annotated[
    str | None,
    Query(min_length=1, max_length=200, description="words that all occur in the message"),
]
Fingerprint = Annotated[
    str | None,
    Query(
        min_length=64,
        max_length=64,
        pattern="^[0-9a-f]{64}$",
        description="only the errors of this pattern (fingerprint of /error-patterns)",
    ),
]
StatusCodes = Annotated[
    list[int] | None, Query(alias="statusCode", description="repeatable: http.response.status_code")
]
ErrorTypes = Annotated[
    list[Annotated[str, StringConstraints(min_length=1, max_length=256)]] | None,
    Query(alias="errorType", description="repeatable: error.type"),
]
JobId = Annotated[
    str | None,
    Query(alias="jobId", max_length=128, description="only errors of this job (scheduler.job.id)"),
]
OrderOpt = Annotated[
    Literal["asc", "desc"], Query(description="desc: newest first; asc: oldest first")
]
Limit = Annotated[int, Query(ge=1, le=1000)]
Cursor = Annotated[str | None, Query(max_length=1024, description="nextCursor of the last page")]

_BINARY: Final = {"schema": {"type": "string", "format": "binary"}}
# the JSON export is a document (what _json_export writes), not an opaque file
_JSON_EXPORT: Final = {
    "schema": {
        "type": "object",
        "required": ["service", "serviceId", "tenantId", "since", "until", "exportedAt", "items"],
        "properties": {
            **{k: {"type": "string"} for k in ("service", "serviceId", "tenantId")},
            **{k: {"type": "string", "format": "date-time"} for k in ("since", "until")},
            "exportedAt": {"type": "string", "format": "date-time"},
            "items": {"type": "array", "items": {"type": "object"}},
        },
    }
}


@router.get(
    "/{id}/errors",
    response_model=ServiceErrorPage,
    response_model_by_alias=True,
    summary="The service's error log: every error-level record, paginated, by time and text",
    description=(
        "Records naming the service (connected_service.name) or emitted by it (service.name) "
        "of at least `level` (default error), and all its communication errors whatever their "
        "level, in the service's tenant only. Pages follow each other by `cursor`. 503 when "
        "the log store cannot be reached."
    ),
    responses=responses(401, 403, 404, 409, 422, 503),
)
def list_errors(
    service: ServiceDep,
    errors: ErrorsDep,
    since: Since = None,
    until: Until = None,
    q: Text = None,
    level: Annotated[
        LogLevel | None, Query(description="at least this level; default error (>= 17)")
    ] = None,
    fingerprint: Fingerprint = None,
    job_id: JobId = None,
    order: OrderOpt = "desc",
    limit: Limit = 100,
    cursor: Cursor = None,
) -> ServiceErrorPage:
    query = error_query(
        service,
        since=since,
        until=until,
        text=q,
        level=level,
        fingerprint=fingerprint,
        job_id=job_id,
    )
    page = error_page(errors, query, cursor, order, limit)
    return ServiceErrorPage(
        items=[ServiceErrorLine.of(e) for e in page.items], next_cursor=page.next_cursor
    )


@router.get(
    "/{id}/communication-errors",
    response_model=CommunicationErrorPage,
    response_model_by_alias=True,
    summary="The service's communication errors: method, URL, status, error type, duration, "
    "request and response excerpts",
    description=(
        "Records with event.name connected_service.communication_error of the service, in its "
        "tenant only, newest first by default. 503 when the log store cannot be reached."
    ),
    responses=responses(401, 403, 404, 409, 422, 503),
)
def list_communication_errors(
    service: ServiceDep,
    errors: ErrorsDep,
    since: Since = None,
    until: Until = None,
    q: Text = None,
    fingerprint: Fingerprint = None,
    status_code: StatusCodes = None,
    error_type: ErrorTypes = None,
    job_id: JobId = None,
    order: OrderOpt = "desc",
    limit: Limit = 100,
    cursor: Cursor = None,
) -> CommunicationErrorPage:
    query = error_query(
        service,
        since=since,
        until=until,
        text=q,
        communication_only=True,
        fingerprint=fingerprint,
        status_codes=status_code,
        error_types=error_type,
        job_id=job_id,
    )
    page = error_page(errors, query, cursor, order, limit)
    return CommunicationErrorPage(
        items=[CommunicationError.of(e) for e in page.items], next_cursor=page.next_cursor
    )


@router.get(
    "/{id}/error-patterns",
    response_model=ErrorPatternList,
    response_model_by_alias=True,
    summary="The service's communication errors grouped into patterns: count, first and last "
    "seen, trend, an example, the jobs affected",
    description=(
        "A pattern is the error's message with ids, numbers, timestamps, URLs and e-mail "
        "addresses masked, computed by the collector at ingestion; the most frequent first. "
        "Default range: the last 24 hours. 503 when the log store cannot be reached."
    ),
    responses=responses(401, 403, 404, 409, 422, 503),
)
def list_error_patterns(
    service: ServiceDep,
    errors: ErrorsDep,
    now: Now,
    since: Annotated[Timestamp | None, Query(description="default until - 24 h")] = None,
    until: Annotated[Timestamp | None, Query(description="default now")] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="at most this many patterns")] = 20,
    jobs: Annotated[
        bool,
        Query(description="false: without the jobs each pattern hit (about half the cost)"),
    ] = True,
) -> ErrorPatternList:
    start, end = time_range(since, until, now)
    return error_patterns(errors, service, start, end, limit, with_jobs=jobs)


def _json_export(
    service: Service,
    start: datetime,
    end: datetime,
    rows: Iterable[ServiceError],
    exported_at: datetime,
) -> Iterator[bytes]:
    head = {
        "service": service.name,
        "serviceId": service.id,
        "tenantId": service.tenant_id,
        "since": start.isoformat(),
        "until": end.isoformat(),
        "exportedAt": exported_at.isoformat(),
    }
    yield json.dumps(head)[:-1].encode() + b', "items": ['
    for i, error in enumerate(rows):
        yield (b"," if i else b"") + b"\n" + json.dumps(export_row(error)).encode()
    yield b"\n]}\n"


def _csv_export(rows: Iterable[ServiceError]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=EXPORT_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for error in rows:
        writer.writerow({k: _csv_cell(v) for k, v in export_row(error).items()})
        if buffer.tell() >= _CHUNK:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


def _csv_cell(value: object) -> object:
    """A text that a spreadsheet would run as a formula is shown as text (OWASP's advice
    for CSV exports): the messages come from the monitored services."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


@router.get(
    "/{id}/errors/export",
    response_class=StreamingResponse,
    summary="Export the service's errors of a time range as JSON or CSV, for a support ticket",
    description=(
        "Every error of the service in `since`..`until` (default: the last 24 hours), oldest "
        "first, at most `limit`; streamed as an attachment. JSON: an object with the service, "
        "the range and `items`; CSV: one row per error with a header. Request and response "
        "bodies are excerpts; secrets were redacted before storage."
    ),
    responses={
        200: {
            "description": "the export, as an attachment",
            "content": {"application/json": _JSON_EXPORT, "text/csv": _BINARY},
        },
        **responses(401, 403, 404, 409, 422, 503),
    },
)
def export_errors(
    service: ServiceDep,
    errors: ErrorsDep,
    now: Now,
    format: Annotated[Literal["json", "csv"], Query(description="json or csv")] = "json",
    since: Annotated[Timestamp | None, Query(description="default until - 24 h")] = None,
    until: Annotated[Timestamp | None, Query(description="default now")] = None,
    communication_only: Annotated[
        bool, Query(alias="communicationOnly", description="only communication errors")
    ] = False,
    limit: Annotated[int, Query(ge=1, le=MAX_EXPORT_ITEMS)] = DEFAULT_EXPORT_ITEMS,
) -> StreamingResponse:
    start, end = time_range(since, until, now)
    query = error_query(service, since=start, until=end, communication_only=communication_only)
    scan = errors.scan(query, max_items=limit)
    # the first page before the response starts: a store that cannot be read is a 503
    # problem, not a broken download
    first = list(_take(scan, 1))
    rows = chain(first, scan)
    name = f"{safe_name(service.name)}-errors-{_stamp(start)}-{_stamp(end)}.{format}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if format == "csv":
        return StreamingResponse(_csv_export(rows), media_type="text/csv", headers=headers)
    return StreamingResponse(
        _json_export(service, start, end, rows, now), media_type="application/json", headers=headers
    )


def _take(items: Iterator[ServiceError], n: int) -> Iterator[ServiceError]:
    for _ in range(n):
        item = next(items, None)
        if item is None:
            return
        yield item


@router.get(
    "/{id}/support-bundle",
    response_class=StreamingResponse,
    summary="A support bundle: status, latency, resources, error patterns, errors and the "
    "timelines of the jobs they hit, in one zip",
    description=(
        "A zip of `manifest.json`, `status.json`, `latency.json`, `resources.json`, "
        "`error-patterns.json`, `errors.jsonl` (one error per line, at most "
        f"{BUNDLE_MAX_ERRORS:,}) and `jobs/<id>.json` (each job the errors hit, at most "
        f"{BUNDLE_MAX_JOBS}, with its timeline), over `since`..`until` (default: the last 24 "
        "hours), of the service's tenant only."
    ),
    responses={
        200: {
            "description": "the bundle, as an attachment",
            "content": {"application/zip": _BINARY},
        },
        **responses(401, 403, 404, 409, 422, 503),
    },
)
def support_bundle(
    service: ServiceDep,
    services: ServicesDep,
    resources: ResourcesDep,
    errors: ErrorsDep,
    jobs: JobsDep,
    now: Now,
    since: Annotated[Timestamp | None, Query(description="default until - 24 h")] = None,
    until: Annotated[Timestamp | None, Query(description="default now")] = None,
) -> StreamingResponse:
    start, end = time_range(since, until, now)
    # built before the response starts, so a failing store is a problem document; on
    # disk past a few MiB, so a large bundle does not sit in memory
    spool = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115
    try:
        write_bundle(
            spool,
            service=service,
            services=services,
            resources=resources,
            errors=errors,
            jobs=jobs,
            start=start,
            end=end,
            now=now,
        )
    except BaseException:
        spool.close()
        raise
    spool.seek(0)

    def chunks() -> Iterator[bytes]:
        try:
            while chunk := spool.read(_CHUNK):
                yield chunk
        finally:
            spool.close()

    name = f"{safe_name(service.name)}-support-{_stamp(start)}-{_stamp(end)}.zip"
    return StreamingResponse(
        chunks(),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
