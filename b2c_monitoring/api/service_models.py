"""The API's JSON of connected services and health: the ADR's ``ConnectedService`` and
``ResourceMetrics`` in camelCase, statuses in lowercase (up/degraded/down/unknown,
healthy/degraded/unhealthy/unknown)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import Field

from b2c_monitoring.api.models import ApiModel
from b2c_monitoring.processors import resources as r
from b2c_monitoring.processors.health import Component, HealthChange, HealthStatus
from b2c_monitoring.processors.services import (
    DeclaredCheck,
    Service,
    ServiceStatus,
    ServiceType,
    StatusChange,
)
from b2c_monitoring.redaction import redact
from b2c_monitoring.storage import services as stored
from b2c_monitoring.storage.resources import ResourcePoint


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


class ResourceMetrics(ApiModel):
    """The ADR's ``ResourceMetrics``; null where the service never reported the figure."""

    cpu_percent: float | None = Field(description="latest CPU use, percent of the capacity")
    cpu_average: float | None = Field(description="average CPU percent over the window")
    cpu_peak: float | None = Field(description="highest CPU percent over the window")
    memory_used_bytes: int | None
    memory_total_bytes: int | None = Field(description="the memory limit")
    memory_percent: float | None
    memory_peak_bytes: int | None = Field(description="highest memory use over the window")
    connection_pool_active: int | None = Field(description="connections in use")
    connection_pool_total: int | None = Field(description="the pool's maximum, else used + idle")
    thread_count: int | None
    queue_depth: int | None
    timestamp: datetime | None = Field(description="time of the latest sample")
    window_seconds: int = Field(description="the window of the averages and peaks")

    @classmethod
    def of(cls, m: r.ResourceMetrics) -> ResourceMetrics:
        return cls(
            cpu_percent=m.cpu_percent,
            cpu_average=m.cpu_average,
            cpu_peak=m.cpu_peak,
            memory_used_bytes=m.memory_used_bytes,
            memory_total_bytes=m.memory_total_bytes,
            memory_percent=m.memory_percent,
            memory_peak_bytes=m.memory_peak_bytes,
            connection_pool_active=m.connection_pool_active,
            connection_pool_total=m.connection_pool_total,
            thread_count=m.thread_count,
            queue_depth=m.queue_depth,
            timestamp=m.timestamp,
            window_seconds=int(m.window.total_seconds()),
        )


class Uptime(ApiModel):
    """Percent of the window the service answered (up or degraded), of the time its status
    was known; null when it was never known in the window."""

    # spelled by hand: the camelCase generator would make these last24H, last7D, last30D
    last24h: float | None = Field(alias="last24h")
    last7d: float | None = Field(alias="last7d")
    last30d: float | None = Field(alias="last30d")


class CheckSpec(ApiModel):
    """A declared central connection check (``b2c_monitoring.checks.CheckSpec``)."""

    kind: Literal["http", "tcp", "postgres"]
    target: str = Field(
        min_length=1,
        max_length=2048,
        description="http: a URL; tcp: host:port; postgres: a libpq conninfo. Answers show "
        "it with secrets redacted.",
    )
    timeout_s: float = Field(default=5.0, gt=0, le=120)
    expect_status: int | None = Field(
        default=None, ge=100, le=599, description="http: the expected status (else 2xx or 3xx)"
    )
    degraded_after_s: float | None = Field(
        default=None, ge=0, le=3600, description="answering slower than this is degraded"
    )

    def declared(self) -> DeclaredCheck:
        return DeclaredCheck(
            kind=self.kind,
            target=self.target,
            timeout_s=self.timeout_s,
            expect_status=self.expect_status,
            degraded_after_s=self.degraded_after_s,
        )

    @classmethod
    def shown(cls, check: DeclaredCheck) -> CheckSpec:
        return cls(
            kind=check.kind,
            target=redact(check.target),
            timeout_s=check.timeout_s,
            expect_status=check.expect_status,
            degraded_after_s=check.degraded_after_s,
        )


class ConnectedService(ApiModel):
    """The ADR's ``ConnectedService``."""

    id: str = Field(description="the service's uuid; the name addresses it too")
    name: str = Field(description="connected_service.name")
    type: ServiceType
    tenant_id: str
    endpoint: str | None = Field(description="declared, else the reported server.address")
    status: ServiceStatus = Field(description="after flap damping; unknown: never checked")
    last_checked: datetime | None
    last_successful: datetime | None = Field(description="the latest check that answered")
    average_latency_ms: float | None = Field(description="over the latest answering checks")
    last_latency_ms: float | None
    last_error: str | None = Field(description="why the latest check failed")
    uptime_percent: float | None = Field(description="over the last 24 hours; see uptime")
    uptime: Uptime
    resources: ResourceMetrics | None = Field(description="null: no resource metrics reported")
    declared: bool = Field(description="declared through the API or configuration")
    check: CheckSpec | None = Field(description="the declared central connection check")

    @classmethod
    def of(
        cls,
        service: Service,
        uptime: dict[str, float | None],
        resources: r.ResourceMetrics | None,
    ) -> ConnectedService:
        assert service.id is not None
        return cls(
            id=service.id,
            name=service.name,
            type=service.service_type,
            tenant_id=service.tenant_id,
            endpoint=redact(service.endpoint) if service.endpoint else None,
            status=service.status,
            last_checked=service.last_checked,
            last_successful=service.last_successful,
            average_latency_ms=_ms(service.average_latency_s),
            last_latency_ms=_ms(service.last_latency_s),
            last_error=service.last_error,
            uptime_percent=uptime["last24h"],
            uptime=Uptime(**uptime),
            resources=ResourceMetrics.of(resources) if resources is not None else None,
            declared=service.declared,
            check=CheckSpec.shown(service.check) if service.check is not None else None,
        )


class ServiceList(ApiModel):
    items: list[ConnectedService] = Field(description="by tenant, then name")
    next_cursor: str | None = Field(
        description="pass as ?cursor= for the next page; null on the last page"
    )


class StatusChangeEntry(ApiModel):
    previous_status: ServiceStatus
    status: ServiceStatus
    at: datetime = Field(description="time of the check that made the change")
    reason: str | None

    @classmethod
    def of(cls, change: StatusChange) -> StatusChangeEntry:
        return cls(
            previous_status=change.previous,
            status=change.status,
            at=change.at,
            reason=change.reason,
        )


class ServiceStatusDetail(ConnectedService):
    first_seen: datetime
    changes: list[StatusChangeEntry] = Field(
        description="status changes of the last 30 days, newest first"
    )


class LatencyPoint(ApiModel):
    at: datetime = Field(description="the check's time, or the start of its bucket")
    resolution: Literal["raw", "5m", "1h"]
    bucket_seconds: int = Field(description="0 for a single check")
    checks: int = Field(description="checks with an up/down result")
    up_checks: int
    average_ms: float | None
    min_ms: float | None
    max_ms: float | None

    @classmethod
    def of(cls, p: stored.LatencyPoint) -> LatencyPoint:
        return cls(
            at=p.at,
            resolution=p.resolution,
            bucket_seconds=stored.RESOLUTION_SECONDS[p.resolution],
            checks=p.checks,
            up_checks=p.up_checks,
            average_ms=_ms(p.average_s),
            min_ms=_ms(p.min_s),
            max_ms=_ms(p.max_s),
        )


class LatencyHistory(ApiModel):
    service_id: str
    name: str
    since: datetime
    until: datetime
    resolution: Literal["auto", "raw", "5m", "1h"] = Field(
        description="auto: each check of the last 24 hours, 5-minute buckets before, hourly "
        "buckets beyond the 5-minute retention"
    )
    points: list[LatencyPoint] = Field(description="oldest first")


class ServiceResources(ApiModel):
    service_id: str
    name: str
    tenant_id: str
    resources: ResourceMetrics | None = Field(description="null: no resource metrics reported")


class ResourceHistoryPoint(ApiModel):
    at: datetime
    resolution: Literal["raw", "5m", "1h"]
    samples: int
    cpu_average: float | None = Field(description="percent")
    cpu_peak: float | None = Field(description="percent")
    memory_average_bytes: int | None
    memory_peak_bytes: int | None
    memory_total_bytes: int | None
    thread_count: int | None = Field(description="the highest in the bucket")
    connection_pool_active: int | None = Field(description="the highest in the bucket")
    queue_depth: int | None = Field(description="the highest in the bucket")

    @classmethod
    def of(cls, p: ResourcePoint) -> ResourceHistoryPoint:
        def pct(v: float | None) -> float | None:
            return None if v is None else 100.0 * v

        def whole(v: float | None) -> int | None:
            return None if v is None else round(v)

        return cls(
            at=p.at,
            resolution=p.resolution,
            samples=p.samples,
            cpu_average=pct(p.cpu_average),
            cpu_peak=pct(p.cpu_peak),
            memory_average_bytes=whole(p.memory_average),
            memory_peak_bytes=whole(p.memory_peak),
            memory_total_bytes=whole(p.memory_limit),
            thread_count=whole(p.threads),
            connection_pool_active=whole(p.pool_used),
            queue_depth=whole(p.queue_depth),
        )


class ConnectionTestResult(ApiModel):
    """One central connection test, recorded in the service's history as a check."""

    service_id: str
    name: str
    status: Literal["up", "degraded", "down"] = Field(description="what this test found")
    latency_ms: float | None = Field(description="null when the target never answered")
    error: str | None
    checked_at: datetime
    service_status: ServiceStatus = Field(
        description="the service's status after this test (flap damping applies)"
    )


class ServiceDeclaration(ApiModel):
    """A declared service: its type, endpoint and central check."""

    type: ServiceType = ServiceType.OTHER
    endpoint: str | None = Field(default=None, max_length=2048)
    check: CheckSpec | None = None


# health


class ComponentHealth(ApiModel):
    name: str = Field(description="component.name")
    tenant_id: str
    status: HealthStatus = Field(description="unknown once silent for longer than staleAfter")
    reported_status: HealthStatus = Field(description="what the latest report said")
    description: str | None
    last_report_at: datetime
    stale_after_seconds: int
    service_name: str | None = Field(description="service.name of the reporting service")

    @classmethod
    def of(cls, c: Component, status: HealthStatus, stale_after: timedelta) -> ComponentHealth:
        return cls(
            name=c.name,
            tenant_id=c.tenant_id,
            status=status,
            reported_status=c.reported_status,
            description=c.description,
            last_report_at=c.last_report_at,
            stale_after_seconds=int(stale_after.total_seconds()),
            service_name=c.service_name,
        )


class HealthComponents(ApiModel):
    status: HealthStatus = Field(description="the worst of these components (unknown: degraded)")
    checked_at: datetime
    items: list[ComponentHealth] = Field(description="by tenant, then name")


class ComponentCounts(ApiModel):
    total: int
    healthy: int
    degraded: int
    unhealthy: int
    unknown: int


class ServiceCounts(ApiModel):
    total: int
    up: int
    degraded: int
    down: int
    unknown: int


class HealthSummary(ApiModel):
    status: HealthStatus = Field(
        description="the worst component; an unknown one counts as degraded; unknown when no "
        "component is known"
    )
    checked_at: datetime
    components: ComponentCounts
    services: ServiceCounts


class HealthChangeEntry(ApiModel):
    component: str
    tenant_id: str
    previous_status: HealthStatus
    status: HealthStatus
    at: datetime
    description: str | None

    @classmethod
    def of(cls, c: HealthChange) -> HealthChangeEntry:
        return cls(
            component=c.component,
            tenant_id=c.tenant_id,
            previous_status=c.previous,
            status=c.status,
            at=c.at,
            description=c.description,
        )


class HealthHistory(ApiModel):
    since: datetime
    until: datetime
    items: list[HealthChangeEntry] = Field(description="changes of status, oldest first")
