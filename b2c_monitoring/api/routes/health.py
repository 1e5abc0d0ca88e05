"""/api/admin/health: component health of the caller's tenants, now and over time."""

from __future__ import annotations

from collections import Counter
from typing import Annotated

from fastapi import APIRouter, Query

from b2c_monitoring.api.deps import HealthDep, MetricsPolicyDep, Now, ServicesDep, Viewer
from b2c_monitoring.api.params import TenantFilter, Timestamp, time_range
from b2c_monitoring.api.problems import responses
from b2c_monitoring.api.service_models import (
    ComponentCounts,
    ComponentHealth,
    HealthChangeEntry,
    HealthComponents,
    HealthHistory,
    HealthSummary,
    ServiceCounts,
)
from b2c_monitoring.processors.health import HealthStatus, effective_status, overall
from b2c_monitoring.processors.services import ServiceStatus
from b2c_monitoring.storage.health import HealthQuery

router = APIRouter(prefix="/api/admin/health", tags=["health"])

ComponentFilter = Annotated[
    str | None, Query(min_length=1, max_length=128, description="one component, e.g. catalog")
]


@router.get(
    "/summary",
    response_model=HealthSummary,
    response_model_by_alias=True,
    summary="Overall system health: the worst component, and counts of components and services",
    responses=responses(401, 403, 422),
)
def summary(
    principal: Viewer,
    health: HealthDep,
    services: ServicesDep,
    policy: MetricsPolicyDep,
    now: Now,
    tenant: TenantFilter = None,
) -> HealthSummary:
    tenants = principal.scope(tenant)
    statuses = [
        effective_status(c, policy.stale_after, now)
        for c in health.components(HealthQuery(tenants))
    ]
    by_status = Counter(statuses)
    service_counts = services.counts(tenants)
    return HealthSummary(
        status=overall(statuses),
        checked_at=now,
        components=ComponentCounts(
            total=len(statuses), **{s.value: by_status.get(s, 0) for s in HealthStatus}
        ),
        services=ServiceCounts(
            total=sum(service_counts.values()),
            **{s.value: service_counts[s] for s in ServiceStatus},
        ),
    )


@router.get(
    "/components",
    response_model=HealthComponents,
    response_model_by_alias=True,
    summary="Per-component health status, with the overall status of those listed",
    responses=responses(401, 403, 422),
)
def components(
    principal: Viewer,
    health: HealthDep,
    policy: MetricsPolicyDep,
    now: Now,
    tenant: TenantFilter = None,
    component: ComponentFilter = None,
) -> HealthComponents:
    found = health.components(HealthQuery(principal.scope(tenant), component))
    items = [
        ComponentHealth.of(c, effective_status(c, policy.stale_after, now), policy.stale_after)
        for c in found
    ]
    return HealthComponents(status=overall(i.status for i in items), checked_at=now, items=items)


@router.get(
    "/history",
    response_model=HealthHistory,
    response_model_by_alias=True,
    summary="Changes of component health over time (default: the last 24 hours)",
    responses=responses(401, 403, 422),
)
def history(
    principal: Viewer,
    health: HealthDep,
    now: Now,
    tenant: TenantFilter = None,
    component: ComponentFilter = None,
    since: Annotated[
        Timestamp | None, Query(description="from (ISO 8601 with offset); default until - 24 h")
    ] = None,
    until: Annotated[Timestamp | None, Query(description="to; default now")] = None,
) -> HealthHistory:
    start, end = time_range(since, until, now)
    changes = health.history(HealthQuery(principal.scope(tenant), component), start, end)
    return HealthHistory(since=start, until=end, items=[HealthChangeEntry.of(c) for c in changes])
