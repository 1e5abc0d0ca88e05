"""FastAPI dependencies as ``Annotated`` aliases: settings, stores, the caller."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from b2c_monitoring.api.command_waiters import CommandWaiters
from b2c_monitoring.auth import Principal, Role
from b2c_monitoring.errors import Unauthenticated
from b2c_monitoring.processors.job_flags import JobWindows, WindowPolicy
from b2c_monitoring.settings import Settings
from b2c_monitoring.storage.audit import AuditStore
from b2c_monitoring.storage.communication_errors import ErrorStore
from b2c_monitoring.storage.health import HealthStore
from b2c_monitoring.storage.job_commands import JobCommandStore
from b2c_monitoring.storage.job_windows import JobWindowStore
from b2c_monitoring.storage.jobs import JobStore
from b2c_monitoring.storage.logs import LogStore
from b2c_monitoring.storage.metrics import MetricsPolicy
from b2c_monitoring.storage.resources import ResourceStore
from b2c_monitoring.storage.services import ServiceStore
from b2c_monitoring.storage.tokens import TokenStore

_bearer = HTTPBearer(auto_error=False, description="An admin API token (`b2c admin tokens create`)")


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_jobs(request: Request) -> JobStore:
    store: JobStore = request.app.state.jobs
    return store


def get_tokens(request: Request) -> TokenStore:
    store: TokenStore = request.app.state.tokens
    return store


def get_logs(request: Request) -> LogStore:
    store: LogStore = request.app.state.logs
    return store


# async: no I/O, so FastAPI need not hop to its threadpool for it
async def get_job_windows(request: Request) -> JobWindowStore:
    store: JobWindowStore = request.app.state.job_windows
    return store


SettingsDep = Annotated[Settings, Depends(get_settings)]
JobsDep = Annotated[JobStore, Depends(get_jobs)]
TokensDep = Annotated[TokenStore, Depends(get_tokens)]
LogsDep = Annotated[LogStore, Depends(get_logs)]
JobWindowsDep = Annotated[JobWindowStore, Depends(get_job_windows)]


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


def get_job_commands(request: Request) -> JobCommandStore:
    store: JobCommandStore = request.app.state.job_commands
    return store


def get_audit(request: Request) -> AuditStore:
    store: AuditStore = request.app.state.audit
    return store


def get_command_waiters(request: Request) -> CommandWaiters:
    waiters: CommandWaiters = request.app.state.command_waiters
    return waiters


JobCommandsDep = Annotated[JobCommandStore, Depends(get_job_commands)]
AuditDep = Annotated[AuditStore, Depends(get_audit)]
CommandWaitersDep = Annotated[CommandWaiters, Depends(get_command_waiters)]


# connected services, health and resources (api/routes/services.py, health.py)


def get_services(request: Request) -> ServiceStore:
    store: ServiceStore = request.app.state.services
    return store


def get_health(request: Request) -> HealthStore:
    store: HealthStore = request.app.state.health
    return store


def get_resources(request: Request) -> ResourceStore:
    store: ResourceStore = request.app.state.resources
    return store


def get_metrics_policy(request: Request) -> MetricsPolicy:
    policy: MetricsPolicy = request.app.state.metrics_policy
    return policy


ServicesDep = Annotated[ServiceStore, Depends(get_services)]
HealthDep = Annotated[HealthStore, Depends(get_health)]
ResourcesDep = Annotated[ResourceStore, Depends(get_resources)]
MetricsPolicyDep = Annotated[MetricsPolicy, Depends(get_metrics_policy)]


# a service's errors and error patterns (api/routes/service_errors.py)


def get_errors(request: Request) -> ErrorStore:
    store: ErrorStore = request.app.state.errors
    return store


ErrorsDep = Annotated[ErrorStore, Depends(get_errors)]
