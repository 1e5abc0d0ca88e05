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
import zipfile
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from itertools import chain
from typing import IO, Annotated, Any, Final, Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, StringConstraints

from b2c_monitoring.api.deps import ErrorsDep, JobsDep, ResourcesDep, ServicesDep, Viewer
from b2c_monitoring.api.error_models import (
    EXPORT_COLUMNS,
    CommunicationError,
    CommunicationErrorPage,
    ErrorPatternList,
    ServiceErrorLine,
    ServiceErrorPage,
    export_row,
)
from b2c_monitoring.api.models import JobTimelineEntry, SchedulerJob
from b2c_monitoring.api.params import Timestamp, time_range
from b2c_monitoring.api.problems import responses
from b2c_monitoring.api.routes.job_logs import decode_cursor, encode_cursor
from b2c_monitoring.api.routes.services import (
    ServiceRef,
    TenantOpt,
    find_service,
    get_latency,
    get_resource_history,
    get_resources,
    get_status,
)
from b2c_monitoring.auth import Principal
from b2c_monitoring.processors.services import Service
from b2c_monitoring.severity import LogLevel
from b2c_monitoring.storage.communication_errors import ErrorQuery, ErrorStore, ServiceError
from b2c_monitoring.storage.jobs import JobStore
from b2c_monitoring.storage.logs import LogPosition, Order
from b2c_monitoring.storage.resources import ResourceStore
from b2c_monitoring.storage.services import ServiceStore

router = APIRouter(prefix="/api/admin/services", tags=["services"])

MAX_EXPORT_ITEMS: Final = 1_000_000
DEFAULT_EXPORT_ITEMS: Final = 100_000
BUNDLE_MAX_ERRORS: Final = 100_000
BUNDLE_MAX_JOBS: Final = 200
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


def _query(
    service: Service,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    text: str | None = None,
    communication_only: bool = False,
    level: LogLevel | None = None,
    fingerprint: str | None = None,
    status_codes: list[int] | None = None,
    error_types: list[str] | None = None,
    job_id: str | None = None,
) -> ErrorQuery:
    return ErrorQuery(
        tenant_id=service.tenant_id,
        service_name=service.name,
        since=since,
        until=until,
        text=text,
        communication_only=communication_only,
        min_severity=(level or LogLevel.ERROR).min_severity,
        fingerprint=fingerprint,
        status_codes=status_codes or (),
        error_types=error_types or (),
        job_id=job_id,
    )


def _page(
    errors: ErrorStore, query: ErrorQuery, after: LogPosition | None, order: Order, limit: int
) -> tuple[list[ServiceError], str | None]:
    """A page of the errors ``query`` selects, and the cursor of the page after it."""
    page = errors.errors(query, after=after, limit=limit, order=order)
    last = page.last
    return page.items, encode_cursor(order, last) if last is not None else None


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
    id: ServiceRef,
    principal: Viewer,
    services: ServicesDep,
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
    tenant: TenantOpt = None,
) -> ServiceErrorPage:
    after = decode_cursor(cursor, order) if cursor is not None else None
    service = find_service(services, id, principal, tenant)
    query = _query(
        service,
        since=since,
        until=until,
        text=q,
        level=level,
        fingerprint=fingerprint,
        job_id=job_id,
    )
    items, next_cursor = _page(errors, query, after, order, limit)
    return ServiceErrorPage(items=[ServiceErrorLine.of(e) for e in items], next_cursor=next_cursor)


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
    id: ServiceRef,
    principal: Viewer,
    services: ServicesDep,
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
    tenant: TenantOpt = None,
) -> CommunicationErrorPage:
    after = decode_cursor(cursor, order) if cursor is not None else None
    service = find_service(services, id, principal, tenant)
    query = _query(
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
    items, next_cursor = _page(errors, query, after, order, limit)
    return CommunicationErrorPage(
        items=[CommunicationError.of(e) for e in items], next_cursor=next_cursor
    )


def _patterns(
    errors: ErrorStore,
    service: Service,
    start: datetime,
    end: datetime,
    limit: int,
    *,
    with_jobs: bool = True,
) -> ErrorPatternList:
    assert service.id is not None
    report = errors.patterns(
        _query(service), since=start, until=end, limit=limit, with_jobs=with_jobs
    )
    return ErrorPatternList.of(
        report, service_id=service.id, name=service.name, tenant_id=service.tenant_id
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
    id: ServiceRef,
    principal: Viewer,
    services: ServicesDep,
    errors: ErrorsDep,
    since: Annotated[Timestamp | None, Query(description="default until - 24 h")] = None,
    until: Annotated[Timestamp | None, Query(description="default now")] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="at most this many patterns")] = 20,
    jobs: Annotated[
        bool,
        Query(description="false: without the jobs each pattern hit (about half the cost)"),
    ] = True,
    tenant: TenantOpt = None,
) -> ErrorPatternList:
    start, end = time_range(since, until, datetime.now(UTC))
    service = find_service(services, id, principal, tenant)
    return _patterns(errors, service, start, end, limit, with_jobs=jobs)


def _json_export(
    service: Service, start: datetime, end: datetime, rows: Iterable[ServiceError]
) -> Iterator[bytes]:
    head = {
        "service": service.name,
        "serviceId": service.id,
        "tenantId": service.tenant_id,
        "since": start.isoformat(),
        "until": end.isoformat(),
        "exportedAt": datetime.now(UTC).isoformat(),
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


def _safe(name: str) -> str:
    """An ASCII file name: headers are Latin-1, and a name is no path."""
    return "".join(ch if (ch.isascii() and ch.isalnum()) or ch in "-_." else "_" for ch in name)


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
    id: ServiceRef,
    principal: Viewer,
    services: ServicesDep,
    errors: ErrorsDep,
    format: Annotated[Literal["json", "csv"], Query(description="json or csv")] = "json",
    since: Annotated[Timestamp | None, Query(description="default until - 24 h")] = None,
    until: Annotated[Timestamp | None, Query(description="default now")] = None,
    communication_only: Annotated[
        bool, Query(alias="communicationOnly", description="only communication errors")
    ] = False,
    limit: Annotated[int, Query(ge=1, le=MAX_EXPORT_ITEMS)] = DEFAULT_EXPORT_ITEMS,
    tenant: TenantOpt = None,
) -> StreamingResponse:
    start, end = time_range(since, until, datetime.now(UTC))
    service = find_service(services, id, principal, tenant)
    query = _query(service, since=start, until=end, communication_only=communication_only)
    scan = errors.scan(query, max_items=limit)
    # the first page before the response starts: a store that cannot be read is a 503
    # problem, not a broken download
    first = list(_take(scan, 1))
    rows = chain(first, scan)
    name = f"{_safe(service.name)}-errors-{_stamp(start)}-{_stamp(end)}.{format}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if format == "csv":
        return StreamingResponse(_csv_export(rows), media_type="text/csv", headers=headers)
    return StreamingResponse(
        _json_export(service, start, end, rows), media_type="application/json", headers=headers
    )


def _take(items: Iterator[ServiceError], n: int) -> Iterator[ServiceError]:
    for _ in range(n):
        item = next(items, None)
        if item is None:
            return
        yield item


def _dump(data: BaseModel | dict[str, Any]) -> bytes:
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json", by_alias=True)
    return json.dumps(data, indent=2, ensure_ascii=False).encode()


def write_bundle(
    out: IO[bytes],
    *,
    service: Service,
    principal: Principal,
    services: ServiceStore,
    resources: ResourceStore,
    errors: ErrorStore,
    jobs: JobStore,
    start: datetime,
    end: datetime,
) -> dict[str, Any]:
    """The support bundle of ``service`` over ``start``..``end`` as a zip into ``out``;
    returns its manifest. Everything is read in the service's tenant only."""
    assert service.id is not None
    tenant = service.tenant_id
    files: list[str] = []
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as bundle:

        def put(name: str, content: bytes) -> None:
            bundle.writestr(name, content)
            files.append(name)

        # the services routes themselves, so the bundle says what they say
        sid = service.id
        status = get_status(
            id=sid, principal=principal, services=services, resources=resources, tenant=tenant
        )
        put("status.json", _dump(status))
        latency = get_latency(
            id=sid,
            principal=principal,
            services=services,
            since=start,
            until=end,
            resolution="auto",
            tenant=tenant,
        )
        put("latency.json", _dump(latency))
        current = get_resources(
            id=sid,
            principal=principal,
            services=services,
            resources=resources,
            window_minutes=60,
            tenant=tenant,
        )
        history = get_resource_history(
            id=sid,
            principal=principal,
            services=services,
            resources=resources,
            since=start,
            until=end,
            resolution="auto",
            tenant=tenant,
        )
        put(
            "resources.json",
            _dump(
                {
                    "current": current.model_dump(mode="json", by_alias=True),
                    "history": [p.model_dump(mode="json", by_alias=True) for p in history],
                }
            ),
        )
        put("error-patterns.json", _dump(_patterns(errors, service, start, end, 100)))

        job_ids: dict[str, None] = {}
        count = 0
        with bundle.open("errors.jsonl", "w") as lines:
            query = _query(service, since=start, until=end)
            for error in errors.scan(query, max_items=BUNDLE_MAX_ERRORS):
                lines.write(json.dumps(export_row(error), ensure_ascii=False).encode() + b"\n")
                count += 1
                if error.job_id is not None and len(job_ids) < BUNDLE_MAX_JOBS:
                    job_ids[error.job_id] = None
        files.append("errors.jsonl")

        found_jobs = 0
        for job_id in job_ids:
            for job in jobs.get(job_id, [tenant]):
                timeline = [JobTimelineEntry.of(c) for c in jobs.timeline(tenant, job.job_id)]
                name = f"jobs/{_safe(job.job_id)}.json"
                if name in files:  # two ids that differ only in unsafe characters
                    name = f"jobs/{_safe(job.job_id)}-{found_jobs}.json"
                put(
                    name,
                    _dump(
                        {
                            **SchedulerJob.of(job).model_dump(mode="json", by_alias=True),
                            "timeline": [
                                t.model_dump(mode="json", by_alias=True) for t in timeline
                            ],
                        }
                    ),
                )
                found_jobs += 1

        manifest = {
            "kind": "b2c-monitoring support bundle",
            "service": service.name,
            "serviceId": service.id,
            "tenantId": tenant,
            "since": start.isoformat(),
            "until": end.isoformat(),
            "generatedAt": datetime.now(UTC).isoformat(),
            "errors": count,
            "errorsTruncated": count >= BUNDLE_MAX_ERRORS,
            "jobs": found_jobs,
            "jobsTruncated": len(job_ids) >= BUNDLE_MAX_JOBS,
            "files": ["manifest.json", *files],
        }
        bundle.writestr("manifest.json", _dump(manifest))
    return manifest


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
    id: ServiceRef,
    principal: Viewer,
    services: ServicesDep,
    resources: ResourcesDep,
    errors: ErrorsDep,
    jobs: JobsDep,
    since: Annotated[Timestamp | None, Query(description="default until - 24 h")] = None,
    until: Annotated[Timestamp | None, Query(description="default now")] = None,
    tenant: TenantOpt = None,
) -> StreamingResponse:
    start, end = time_range(since, until, datetime.now(UTC))
    service = find_service(services, id, principal, tenant)
    # built before the response starts, so a failing store is a problem document; on
    # disk past a few MiB, so a large bundle does not sit in memory
    spool = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115
    try:
        write_bundle(
            spool,
            service=service,
            principal=principal,
            services=services,
            resources=resources,
            errors=errors,
            jobs=jobs,
            start=start,
            end=end,
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

    name = f"{_safe(service.name)}-support-{_stamp(start)}-{_stamp(end)}.zip"
    return StreamingResponse(
        chunks(),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
