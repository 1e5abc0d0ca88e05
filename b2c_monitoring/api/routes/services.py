"""/api/admin/services: connected services of the caller's tenants.

A service is addressed by its id (uuid) or its name; a service of another tenant
answers 404 exactly like an absent one.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from b2c_monitoring.api import cursors, service_views
from b2c_monitoring.api.deps import (
    Admin,
    MetricsPolicyDep,
    Now,
    Operator,
    ResourcesDep,
    ServiceDep,
    ServicesDep,
    SettingsDep,
    Viewer,
)
from b2c_monitoring.api.params import TenantFilter, Timestamp, time_range
from b2c_monitoring.api.problems import responses
from b2c_monitoring.api.service_models import (
    ConnectedService,
    ConnectionTestResult,
    LatencyHistory,
    ResourceHistoryPoint,
    ServiceDeclaration,
    ServiceList,
    ServiceResources,
    ServiceStatusDetail,
)
from b2c_monitoring.api.service_views import Resolution
from b2c_monitoring.auth import Principal
from b2c_monitoring.checks import CheckSpec, run_check
from b2c_monitoring.errors import Conflict, Forbidden
from b2c_monitoring.processors.resources import HORIZON
from b2c_monitoring.processors.services import (
    CheckReport,
    CheckSource,
    DeclaredCheck,
    ServiceStatus,
    ServiceType,
)
from b2c_monitoring.storage.services import ServiceQuery

router = APIRouter(prefix="/api/admin/services", tags=["services"])


@router.get(
    "",
    response_model=ServiceList,
    response_model_by_alias=True,
    summary="List connected services with status, latency, uptime and resources",
    responses=responses(401, 403, 422),
)
def list_services(
    principal: Viewer,
    services: ServicesDep,
    resources: ResourcesDep,
    now: Now,
    tenant: TenantFilter = None,
    status: Annotated[
        list[ServiceStatus] | None, Query(description="repeatable: services in any of these")
    ] = None,
    service_type: Annotated[ServiceType | None, Query(alias="type")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[
        str | None, Query(max_length=1200, description="nextCursor of the previous page")
    ] = None,
) -> ServiceList:
    found = services.select(
        ServiceQuery(
            tenants=principal.scope(tenant),
            statuses=status or (),
            service_type=service_type,
            after=cursors.service_key(cursor) if cursor is not None else None,
            limit=limit + 1,
        )
    )
    page, more = found[:limit], len(found) > limit
    return ServiceList(
        items=service_views.describe(services, resources, page, now),
        next_cursor=cursors.service_cursor(page[-1].tenant_id, page[-1].name) if more else None,
    )


@router.get(
    "/{id}/status",
    response_model=ServiceStatusDetail,
    response_model_by_alias=True,
    summary="Current availability status, uptime and the recent status changes",
    responses=responses(401, 403, 404, 409, 422),
)
def get_status(
    service: ServiceDep, services: ServicesDep, resources: ResourcesDep, now: Now
) -> ServiceStatusDetail:
    return service_views.status(service, services, resources, now)


@router.get(
    "/{id}/latency",
    response_model=LatencyHistory,
    response_model_by_alias=True,
    summary="Historical latency: each check, or 5-minute or hourly buckets",
    responses=responses(401, 403, 404, 409, 422),
)
def get_latency(
    service: ServiceDep,
    services: ServicesDep,
    now: Now,
    since: Annotated[
        Timestamp | None, Query(description="from (ISO 8601 with offset); default until - 24 h")
    ] = None,
    until: Annotated[Timestamp | None, Query(description="to; default now")] = None,
    resolution: Annotated[
        Resolution,
        Query(
            description="auto: each check of the last 24 hours, rollups before; raw (kept at "
            "least 24 hours), 5m or 1h: that resolution only"
        ),
    ] = "auto",
) -> LatencyHistory:
    start, end = time_range(since, until, now)
    return service_views.latency(service, services, start, end, resolution, now)


@router.get(
    "/{id}/resources",
    response_model=ServiceResources,
    response_model_by_alias=True,
    summary="Current resource metrics, with average and peak over a window",
    responses=responses(401, 403, 404, 409, 422),
)
def get_resources(
    service: ServiceDep,
    resources: ResourcesDep,
    now: Now,
    window_minutes: Annotated[
        int,
        Query(
            alias="windowMinutes",
            ge=1,
            le=int(HORIZON.total_seconds() // 60),
            description="the window of cpuAverage, cpuPeak and memoryPeakBytes (to 5 minutes)",
        ),
    ] = 60,
) -> ServiceResources:
    window = timedelta(minutes=window_minutes)
    return service_views.current_resources(service, resources, window, now)


@router.get(
    "/{id}/resources/history",
    response_model=list[ResourceHistoryPoint],
    response_model_by_alias=True,
    summary="Resource history: each sample, or 5-minute or hourly buckets",
    responses=responses(401, 403, 404, 409, 422),
)
def get_resource_history(
    service: ServiceDep,
    services: ServicesDep,
    resources: ResourcesDep,
    now: Now,
    since: Annotated[Timestamp | None, Query(description="default until - 24 h")] = None,
    until: Annotated[Timestamp | None, Query(description="default now")] = None,
    resolution: Resolution = "auto",
) -> list[ResourceHistoryPoint]:
    start, end = time_range(since, until, now)
    return service_views.resource_history(service, services, resources, start, end, resolution, now)


def check_from_reports(endpoint: str | None) -> DeclaredCheck | None:
    """The check a discovered service's reports allow: HTTP at the origin its ``url.full``
    named, TCP at the ``server.address:server.port`` it named; ``None`` without a port."""
    if not endpoint:
        return None
    if endpoint.startswith(("http://", "https://")):
        return DeclaredCheck(kind="http", target=endpoint)
    host, _, port = endpoint.rpartition(":")
    if host and port.isdigit():
        return DeclaredCheck(kind="tcp", target=endpoint)
    return None


@router.post(
    "/{id}/test",
    response_model=ConnectionTestResult,
    response_model_by_alias=True,
    summary="Run the service's connection check now, from the monitoring service",
    description="The declared check, else one from what the service's reports said (HTTP at "
    "the origin of `url.full`, TCP at `server.address:server.port`); 409 when there is "
    "neither. The result is recorded in the service's history as one check (flap damping "
    "applies to its status), and the test in the audit log (`service.test`). Needs the "
    "operator role.",
    responses=responses(401, 403, 404, 409, 422),
)
def run_connection_test(
    principal: Operator,
    service: ServiceDep,
    services: ServicesDep,
    policy: MetricsPolicyDep,
    now: Now,
) -> ConnectionTestResult:
    # a declared service says itself what to check: its reports' address stands in only
    # for a service known from its reports alone
    declared = service.check or (None if service.declared else check_from_reports(service.endpoint))
    if declared is None:
        why = (
            "is declared without a check"
            if service.declared
            else "has no declared check, and its reports named no address to test (url.full, "
            "or server.address with server.port)"
        )
        raise Conflict(
            f"service {service.name!r} {why}: declare a check with "
            f"PUT /api/admin/services/{service.name}"
        )
    spec = CheckSpec(
        kind=declared.kind,  # type: ignore[arg-type]
        target=declared.target,
        timeout_s=declared.timeout_s,
        expect_status=declared.expect_status,
        # the threshold the service's status is derived with, so both say the same
        degraded_after_s=service.threshold(policy.damping),
    )
    # slow I/O outside any transaction; the result is stored after
    result = run_check(spec)
    # stamped with the request's time, when the check began
    checked_at = now
    services.record(
        [
            CheckReport(
                tenant_id=service.tenant_id,
                service_name=service.name,
                at=checked_at,
                up=result.up,
                latency_s=result.latency_s,
                error=result.error,
                source=CheckSource.TEST,
            )
        ],
        checked_at,
        actor=principal,
    )
    [after] = services.find(service.id or service.name, [service.tenant_id])
    assert service.id is not None
    return ConnectionTestResult(
        service_id=service.id,
        name=service.name,
        status=result.status,
        latency_ms=None if result.latency_s is None else round(result.latency_s * 1000, 3),
        error=result.error,
        checked_at=checked_at,
        service_status=after.status,
    )


@router.put(
    "/{name}",
    response_model=ConnectedService,
    response_model_by_alias=True,
    status_code=200,
    summary="Declare a service (type, endpoint, central check); 201 when it is new",
    description="An existing service (reported by probes) keeps its status and history and "
    "gains the declaration. Needs the admin role.",
    responses={
        201: {"model": ConnectedService, "description": "declared a new service"},
        **responses(401, 403, 409, 422),
    },
)
def declare_service(
    name: Annotated[str, Path(min_length=1, max_length=128, description="connected_service.name")],
    body: ServiceDeclaration,
    principal: Admin,
    services: ServicesDep,
    resources: ResourcesDep,
    settings: SettingsDep,
    response: Response,
    now: Now,
    tenant: Annotated[
        str | None,
        Query(description="the tenant to declare it in; default: your token's only tenant"),
    ] = None,
) -> ConnectedService:
    target_tenant = _tenant_to_write(principal, tenant, settings.default_tenant)
    service, created = services.declare(
        target_tenant,
        name,
        body.type,
        body.endpoint,
        body.check.declared() if body.check is not None else None,
        now,
        actor=principal,
    )
    if created:
        response.status_code = 201
    [described] = service_views.describe(services, resources, [service], now)
    return described


def _tenant_to_write(principal: Principal, tenant: str | None, default: str) -> str:
    if tenant is not None:
        if not principal.sees(tenant):
            raise Forbidden(f"your token cannot write to tenant {tenant!r}")
        return tenant
    if principal.tenants is None:
        return default
    if len(principal.tenants) == 1:
        return principal.tenants[0]
    raise Conflict(f"your token has several tenants ({', '.join(principal.tenants)}); add ?tenant=")
