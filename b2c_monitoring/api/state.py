"""What an API process holds for its requests: settings, stores and the live parts.

One typed object on ``app.state.api``, built once by ``create_app``; routes reach its
parts through the ``Annotated`` dependencies of ``deps.py``, never by string look-ups
on ``app.state`` (which are ``Any`` to the type checker).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from psycopg_pool import ConnectionPool
from starlette.applications import Starlette

from b2c_monitoring.api.command_waiters import CommandWaiters
from b2c_monitoring.hub.backplane import Backplane
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


@dataclass(frozen=True)
class ApiState:
    settings: Settings
    console_dir: Path
    metrics_policy: MetricsPolicy
    # Postgres
    jobs: JobStore
    tokens: TokenStore
    services: ServiceStore
    health: HealthStore
    resources: ResourceStore
    job_windows: JobWindowStore
    job_commands: JobCommandStore
    audit: AuditStore
    alerts: AlertStore
    alert_config: AlertConfigStore
    notifications: NotificationStore
    # Elasticsearch
    logs: LogStore
    errors: ErrorStore
    # live: command long polls and the real-time hub (its replays read hub_pool)
    command_waiters: CommandWaiters
    hub: Backplane
    hub_pool: ConnectionPool


def install(app: Starlette, state: ApiState) -> None:
    app.state.api = state


def state_of(app: Starlette) -> ApiState:
    state = app.state.api
    assert isinstance(state, ApiState), "create_app puts an ApiState on app.state.api"
    return state
