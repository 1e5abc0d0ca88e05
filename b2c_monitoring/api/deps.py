"""FastAPI dependencies as ``Annotated`` aliases: the request's ``now``, settings,
stores, the caller and its tenants, and the records a path names (``ServiceDep``,
``JobDep``: resolved within the caller's tenants, or a 404 problem)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from b2c_monitoring.api.command_waiters import CommandWaiters
from b2c_monitoring.api.state import ApiState, state_of
from b2c_monitoring.auth import Principal, Role
from b2c_monitoring.contract import JOB_ID_MAX_CHARS
from b2c_monitoring.errors import Conflict, NotFound, Unauthenticated
from b2c_monitoring.processors.job_flags import JobWindows, WindowPolicy
from b2c_monitoring.processors.jobs import Job
from b2c_monitoring.processors.services import Service
from b2c_monitoring.settings import Settings
from b2c_monitoring.storage.alert_config import AlertConfigStore
from b2c_monitoring.storage.alerts import AlertStore
from b2c_monitoring.storage.audit import AuditStore
from b2c_monitoring.storage.communication_errors import ErrorStore
from b2c_monitoring.storage.health import HealthStore
from b2c_monitoring.storage.job_commands import JobCommandStore
from b2c_monitoring.storage.job_windows import JobWindowStore
from b2c_monitoring.storage.jobs import JobStore
from b2c_monitoring.storage.logs import LogStore
from b2c_monitoring.storage.metrics import MetricsPolicy
from b2c_monitoring.storage.notifications import NotificationStore
from b2c_monitoring.storage.resources import ResourceStore
from b2c_monitoring.storage.services import ServiceStore
from b2c_monitoring.storage.tokens import TokenStore

_bearer = HTTPBearer(auto_error=False, description="An admin API token (`b2c admin tokens create`)")

T = TypeVar("T")


async def _now() -> datetime:
    return datetime.now(UTC)


# the one reading of the clock per request: FastAPI caches a dependency within a
# request, so the token check, the route and whatever it calls see the same instant
Now = Annotated[datetime, Depends(_now)]


async def _state(request: Request) -> ApiState:
    return state_of(request.app)


StateDep = Annotated[ApiState, Depends(_state)]


def _part(get: Callable[[ApiState], T]) -> Any:
    """A dependency on one part of the app's ``ApiState``; async, as there is no I/O,
    so FastAPI need not hop to its threadpool."""

    async def part(state: StateDep) -> T:
        return get(state)

    return Depends(part)


SettingsDep = Annotated[Settings, _part(lambda s: s.settings)]
JobsDep = Annotated[JobStore, _part(lambda s: s.jobs)]
TokensDep = Annotated[TokenStore, _part(lambda s: s.tokens)]
LogsDep = Annotated[LogStore, _part(lambda s: s.logs)]
JobWindowsDep = Annotated[JobWindowStore, _part(lambda s: s.job_windows)]


async def default_windows(settings: SettingsDep) -> JobWindows:
    return JobWindows(
        heartbeat=timedelta(seconds=settings.job_heartbeat_window_s),
        start=timedelta(seconds=settings.job_start_window_s),
    )


DefaultWindowsDep = Annotated[JobWindows, Depends(default_windows)]


def get_window_policy(store: JobWindowsDep, default: DefaultWindowsDep) -> WindowPolicy:
    return store.policy(default)


WindowPolicyDep = Annotated[WindowPolicy, Depends(get_window_policy)]


def get_principal(
    tokens: TokensDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    now: Now,
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise Unauthenticated("send an admin API token as 'Authorization: Bearer <token>'")
    return tokens.authenticate(credentials.credentials, now)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def _role(role: Role) -> object:
    def check(principal: CurrentPrincipal) -> Principal:
        principal.require(role)
        return principal

    return Depends(check)


Viewer = Annotated[Principal, _role(Role.VIEWER)]
Operator = Annotated[Principal, _role(Role.OPERATOR)]
Admin = Annotated[Principal, _role(Role.ADMIN)]
# a job runner's token: only the probe-facing control endpoints (routes/probes.py)
Probe = Annotated[Principal, _role(Role.PROBE)]


# retry and cancel commands, the audit log (routes/job_commands.py, probes.py, audit.py)
JobCommandsDep = Annotated[JobCommandStore, _part(lambda s: s.job_commands)]
AuditDep = Annotated[AuditStore, _part(lambda s: s.audit)]
CommandWaitersDep = Annotated[CommandWaiters, _part(lambda s: s.command_waiters)]

# connected services, health and resources (routes/services.py, health.py)
ServicesDep = Annotated[ServiceStore, _part(lambda s: s.services)]
HealthDep = Annotated[HealthStore, _part(lambda s: s.health)]
ResourcesDep = Annotated[ResourceStore, _part(lambda s: s.resources)]
MetricsPolicyDep = Annotated[MetricsPolicy, _part(lambda s: s.metrics_policy)]

ServiceRef = Annotated[
    str,
    Path(
        min_length=1,
        max_length=128,
        description="the service's id (uuid) or its name (connected_service.name)",
    ),
]
ServiceTenant = Annotated[
    str | None,
    Query(description="the service's tenant, when the name exists in several of yours"),
]
JobIdPath = Annotated[str, Path(max_length=JOB_ID_MAX_CHARS, description="scheduler.job.id")]
JobTenant = Annotated[
    str | None, Query(description="the job's tenant, when the same id exists in several of yours")
]


def find_service(
    services: ServiceStore, ref: str, principal: Principal, tenant: str | None
) -> Service:
    """The one service ``ref`` (id or name) names in the caller's tenants (``tenant``
    narrows them)."""
    found = services.find(ref, principal.scope([tenant] if tenant else None))
    by_id = [s for s in found if s.id == ref]
    if by_id:
        return by_id[0]
    if not found:
        # a service of another tenant answers exactly like an absent one
        raise NotFound(f"no service {ref!r} in your tenants")
    if len(found) > 1:
        tenants = ", ".join(s.tenant_id for s in found)
        raise Conflict(f"service {ref!r} exists in several tenants ({tenants}); add ?tenant=")
    return found[0]


def find_job(jobs: JobStore, principal: Principal, job_id: str, tenant: str | None) -> Job:
    """The one job with this id in the caller's tenants (``tenant`` narrows them)."""
    found = jobs.get(job_id, principal.scope([tenant] if tenant else None))
    if not found:
        # a job of another tenant answers exactly like an absent one
        raise NotFound(f"no job {job_id!r} in your tenants")
    if len(found) > 1:
        tenants = ", ".join(j.tenant_id for j in found)
        raise Conflict(f"job id {job_id!r} exists in several tenants ({tenants}); add ?tenant=")
    return found[0]


# Resolved with the viewer's check first: a token below viewer (a probe's) learns
# nothing from a 404. A route that needs more declares its own role before these.
def _service(
    id: ServiceRef, principal: Viewer, services: ServicesDep, tenant: ServiceTenant = None
) -> Service:
    return find_service(services, id, principal, tenant)


def _job(job_id: JobIdPath, principal: Viewer, jobs: JobsDep, tenant: JobTenant = None) -> Job:
    return find_job(jobs, principal, job_id, tenant)


ServiceDep = Annotated[Service, Depends(_service)]
JobDep = Annotated[Job, Depends(_job)]

# a service's errors and error patterns (routes/service_errors.py)
ErrorsDep = Annotated[ErrorStore, _part(lambda s: s.errors)]

# alerts, their configuration and notifications (routes/alerts.py, alert_rules.py, ...)
AlertsDep = Annotated[AlertStore, _part(lambda s: s.alerts)]
AlertConfigDep = Annotated[AlertConfigStore, _part(lambda s: s.alert_config)]
NotificationsDep = Annotated[NotificationStore, _part(lambda s: s.notifications)]


def target_tenant(principal: Principal, requested: str | None) -> str:
    """The tenant a new object belongs to: the one asked for, within the token's scope,
    or the token's only tenant."""
    if requested is not None:
        if not principal.sees(requested):
            raise NotFound(f"no tenant {requested!r} in your tenants")
        return requested
    if principal.tenants is not None and len(principal.tenants) == 1:
        return principal.tenants[0]
    raise RequestValidationError(
        [
            {
                "type": "missing",
                "loc": ("body", "tenantId"),
                "msg": "your token sees several tenants: give tenantId",
                "input": None,
            }
        ]
    )
