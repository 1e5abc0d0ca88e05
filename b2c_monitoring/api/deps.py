"""FastAPI dependencies as ``Annotated`` aliases: settings, stores, the caller and its
tenants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from b2c_monitoring.api.command_waiters import CommandWaiters
from b2c_monitoring.auth import Principal, Role
from b2c_monitoring.errors import NotFound, Unauthenticated
from b2c_monitoring.processors.job_flags import JobWindows, WindowPolicy
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


def _app_state(name: str) -> Any:
    """A dependency on what the app's lifespan put in ``app.state.<name>`` (a store, the
    settings); async, as there is no I/O, so FastAPI need not hop to its threadpool."""

    async def get(request: Request) -> Any:
        return getattr(request.app.state, name)

    return Depends(get)


SettingsDep = Annotated[Settings, _app_state("settings")]
JobsDep = Annotated[JobStore, _app_state("jobs")]
TokensDep = Annotated[TokenStore, _app_state("tokens")]
LogsDep = Annotated[LogStore, _app_state("logs")]
JobWindowsDep = Annotated[JobWindowStore, _app_state("job_windows")]


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
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise Unauthenticated("send an admin API token as 'Authorization: Bearer <token>'")
    return tokens.authenticate(credentials.credentials, datetime.now(UTC))


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
JobCommandsDep = Annotated[JobCommandStore, _app_state("job_commands")]
AuditDep = Annotated[AuditStore, _app_state("audit")]
CommandWaitersDep = Annotated[CommandWaiters, _app_state("command_waiters")]

# connected services, health and resources (routes/services.py, health.py)
ServicesDep = Annotated[ServiceStore, _app_state("services")]
HealthDep = Annotated[HealthStore, _app_state("health")]
ResourcesDep = Annotated[ResourceStore, _app_state("resources")]
MetricsPolicyDep = Annotated[MetricsPolicy, _app_state("metrics_policy")]

# a service's errors and error patterns (routes/service_errors.py)
ErrorsDep = Annotated[ErrorStore, _app_state("errors")]

# alerts, their configuration and notifications (routes/alerts.py, alert_rules.py, ...)
AlertsDep = Annotated[AlertStore, _app_state("alerts")]
AlertConfigDep = Annotated[AlertConfigStore, _app_state("alert_config")]
NotificationsDep = Annotated[NotificationStore, _app_state("notifications")]


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
