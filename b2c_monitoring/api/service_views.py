"""What the API says about one connected service: its status, latency, resources,
errors and error patterns, and the support bundle made of them.

The routes of ``routes/services.py`` and ``routes/service_errors.py`` answer with these
views, and the support bundle writes the same views into its zip, so the bundle says
what the routes say. The service is resolved already (``deps.ServiceDep``); every read
here is in the service's own tenant, and ``now`` is the request's.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import IO, Any, Final, Literal

from pydantic import BaseModel

from b2c_monitoring.api import cursors
from b2c_monitoring.api.error_models import ErrorPatternList, export_row
from b2c_monitoring.api.models import JobTimelineEntry, SchedulerJob
from b2c_monitoring.api.service_models import (
    ConnectedService,
    LatencyHistory,
    LatencyPoint,
    ResourceHistoryPoint,
    ResourceMetrics,
    ServiceResources,
    ServiceStatusDetail,
    StatusChangeEntry,
)
from b2c_monitoring.processors.resources import summarize
from b2c_monitoring.processors.services import UPTIME_WINDOWS, Service, uptimes
from b2c_monitoring.severity import LogLevel
from b2c_monitoring.storage.communication_errors import ErrorQuery, ErrorStore, ServiceError
from b2c_monitoring.storage.jobs import JobStore
from b2c_monitoring.storage.logs import Order
from b2c_monitoring.storage.partitions import tiers
from b2c_monitoring.storage.resources import ResourceStore
from b2c_monitoring.storage.services import ServiceStore

Resolution = Literal["auto", "raw", "5m", "1h"]

BUNDLE_MAX_ERRORS: Final = 100_000
BUNDLE_MAX_JOBS: Final = 200
# the window of the bundle's current resource figures, as GET .../resources by default
BUNDLE_RESOURCE_WINDOW: Final = timedelta(minutes=60)

_HISTORY: timedelta = max(UPTIME_WINDOWS.values())


def _id(service: Service) -> str:
    assert service.id is not None, "a stored service has an id"
    return service.id


# --------------------------------------------------------------------------------------
# status, latency, resources (Postgres)


def describe(
    services: ServiceStore,
    resources: ResourceStore,
    found: Sequence[Service],
    now: datetime,
) -> list[ConnectedService]:
    """The ADR's records: status, uptime from the status history, resource figures."""
    changes = services.changes([_id(s) for s in found], now - _HISTORY)
    windows = resources.windows([(s.tenant_id, s.name) for s in found])
    described = []
    for service in found:
        window = windows.get((service.tenant_id, service.name))
        described.append(
            ConnectedService.of(
                service,
                uptimes(changes[_id(service)], service.status, now),
                summarize(window, now) if window is not None else None,
            )
        )
    return described


def status(
    service: Service, services: ServiceStore, resources: ResourceStore, now: datetime
) -> ServiceStatusDetail:
    [described] = describe(services, resources, [service], now)
    changes = services.changes([_id(service)], now - _HISTORY)[_id(service)]
    return ServiceStatusDetail(
        **described.model_dump(),
        first_seen=service.first_seen,
        changes=[StatusChangeEntry.of(c) for c in reversed(changes)],
    )


def latency(
    service: Service,
    services: ServiceStore,
    start: datetime,
    end: datetime,
    resolution: Resolution,
    now: datetime,
) -> LatencyHistory:
    if resolution == "auto":
        points = services.latency_history(_id(service), start, end, now)
    else:
        points = services.latency(_id(service), start, end, resolution)
    return LatencyHistory(
        service_id=_id(service),
        name=service.name,
        since=start,
        until=end,
        resolution=resolution,
        points=[LatencyPoint.of(p) for p in points],
    )


def current_resources(
    service: Service, resources: ResourceStore, window: timedelta, now: datetime
) -> ServiceResources:
    key = (service.tenant_id, service.name)
    samples = resources.windows([key]).get(key)
    metrics = summarize(samples, now, window) if samples else None
    return ServiceResources(
        service_id=_id(service),
        name=service.name,
        tenant_id=service.tenant_id,
        resources=ResourceMetrics.of(metrics) if metrics is not None else None,
    )


def resource_history(
    service: Service,
    services: ServiceStore,
    resources: ResourceStore,
    start: datetime,
    end: datetime,
    resolution: Resolution,
    now: datetime,
) -> list[ResourceHistoryPoint]:
    segments = (
        tiers(start, end, now, services.retention)
        if resolution == "auto"
        else [(start, end, resolution)]
    )
    return [
        ResourceHistoryPoint.of(p)
        for seg_start, seg_end, tier in segments
        for p in resources.history(service.tenant_id, service.name, seg_start, seg_end, tier)
    ]


# --------------------------------------------------------------------------------------
# errors and error patterns (Elasticsearch)


def error_query(
    service: Service,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    text: str | None = None,
    communication_only: bool = False,
    level: LogLevel | None = None,
    fingerprint: str | None = None,
    status_codes: Sequence[int] | None = None,
    error_types: Sequence[str] | None = None,
    job_id: str | None = None,
) -> ErrorQuery:
    """The errors of ``service`` in its tenant: by default those of error level and up."""
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


@dataclass(frozen=True)
class ErrorPageView:
    items: list[ServiceError]
    next_cursor: str | None


def error_page(
    errors: ErrorStore, query: ErrorQuery, cursor: str | None, order: Order, limit: int
) -> ErrorPageView:
    """A page of the errors ``query`` selects after ``cursor``, and the next cursor."""
    after = cursors.log_position(cursor, order) if cursor is not None else None
    page = errors.errors(query, after=after, limit=limit, order=order)
    last = page.last
    return ErrorPageView(page.items, cursors.log_cursor(order, last) if last is not None else None)


def error_patterns(
    errors: ErrorStore,
    service: Service,
    start: datetime,
    end: datetime,
    limit: int,
    *,
    with_jobs: bool = True,
) -> ErrorPatternList:
    report = errors.patterns(
        error_query(service), since=start, until=end, limit=limit, with_jobs=with_jobs
    )
    return ErrorPatternList.of(
        report, service_id=_id(service), name=service.name, tenant_id=service.tenant_id
    )


# --------------------------------------------------------------------------------------
# the support bundle


def safe_name(name: str) -> str:
    """An ASCII file name: headers are Latin-1, and a name is no path."""
    return "".join(ch if (ch.isascii() and ch.isalnum()) or ch in "-_." else "_" for ch in name)


def _dump(data: BaseModel | dict[str, Any]) -> bytes:
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json", by_alias=True)
    return json.dumps(data, indent=2, ensure_ascii=False).encode()


def write_bundle(
    out: IO[bytes],
    *,
    service: Service,
    services: ServiceStore,
    resources: ResourceStore,
    errors: ErrorStore,
    jobs: JobStore,
    start: datetime,
    end: datetime,
    now: datetime,
) -> dict[str, Any]:
    """The support bundle of ``service`` over ``start``..``end`` as a zip into ``out``;
    returns its manifest. Everything is read in the service's tenant only."""
    tenant = service.tenant_id
    files: list[str] = []
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as bundle:

        def put(name: str, content: bytes) -> None:
            bundle.writestr(name, content)
            files.append(name)

        put("status.json", _dump(status(service, services, resources, now)))
        put("latency.json", _dump(latency(service, services, start, end, "auto", now)))
        current = current_resources(service, resources, BUNDLE_RESOURCE_WINDOW, now)
        history = resource_history(service, services, resources, start, end, "auto", now)
        put(
            "resources.json",
            _dump(
                {
                    "current": current.model_dump(mode="json", by_alias=True),
                    "history": [p.model_dump(mode="json", by_alias=True) for p in history],
                }
            ),
        )
        put("error-patterns.json", _dump(error_patterns(errors, service, start, end, 100)))

        job_ids: dict[str, None] = {}
        count = 0
        with bundle.open("errors.jsonl", "w") as lines:
            query = error_query(service, since=start, until=end)
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
                name = f"jobs/{safe_name(job.job_id)}.json"
                if name in files:  # two ids that differ only in unsafe characters
                    name = f"jobs/{safe_name(job.job_id)}-{found_jobs}.json"
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
            "generatedAt": now.isoformat(),
            "errors": count,
            "errorsTruncated": count >= BUNDLE_MAX_ERRORS,
            "jobs": found_jobs,
            "jobsTruncated": len(job_ids) >= BUNDLE_MAX_JOBS,
            "files": ["manifest.json", *files],
        }
        bundle.writestr("manifest.json", _dump(manifest))
    return manifest
