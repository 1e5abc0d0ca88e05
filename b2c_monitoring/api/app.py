"""The admin API application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from b2c_monitoring import readiness
from b2c_monitoring.api import problems, state
from b2c_monitoring.api.command_waiters import CommandWaiters
from b2c_monitoring.api.metrics import observe_request
from b2c_monitoring.api.routes import (
    alert_rules,
    alerts,
    audit,
    console,
    health,
    job_commands,
    job_logs,
    job_schedules,
    job_types,
    jobs,
    maintenance_windows,
    me,
    notification_channels,
    probes,
    service_errors,
    services,
    tokens,
)
from b2c_monitoring.api.routes import hub as hub_routes
from b2c_monitoring.api.storable_text import StorableTextGuard
from b2c_monitoring.hub.backplane import Backplane
from b2c_monitoring.settings import Settings
from b2c_monitoring.storage.alert_config import AlertConfigStore
from b2c_monitoring.storage.alerts import AlertStore
from b2c_monitoring.storage.audit import AuditStore
from b2c_monitoring.storage.communication_errors import ErrorStore
from b2c_monitoring.storage.db import make_pool
from b2c_monitoring.storage.health import HealthStore
from b2c_monitoring.storage.job_commands import JobCommandStore
from b2c_monitoring.storage.job_windows import JobWindowStore
from b2c_monitoring.storage.jobs import JobStore
from b2c_monitoring.storage.logs import LogStore, make_client
from b2c_monitoring.storage.metrics import policy_from
from b2c_monitoring.storage.notifications import NotificationStore
from b2c_monitoring.storage.resources import ResourceStore
from b2c_monitoring.storage.services import ServiceStore
from b2c_monitoring.storage.tokens import TokenStore

# a checkout's own build (npm run build in console/); the stack sets B2C_CONSOLE_DIR
CHECKOUT_CONSOLE = Path(__file__).resolve().parents[2] / "console" / "dist"


def create_app(settings: Settings) -> FastAPI:
    pool = make_pool(settings.database_url, max_size=settings.database_pool_size, name="b2c-api")
    es = make_client(settings.elasticsearch_url)
    command_waiters = CommandWaiters(settings.database_url)
    hub = Backplane(settings.database_url)
    logs_index = f"{settings.logs_index}*"

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool.open(wait=False)
        command_waiters.start()
        hub.start()
        try:
            yield
        finally:
            await hub.stop()
            await command_waiters.stop()
            pool.close()
            es.close()

    app = FastAPI(
        title="b2c-monitoring admin API",
        version="0.1.0",
        description=(
            "Scheduler jobs, connected services and health of B2Connect (ADR-024). "
            "Every endpoint needs a bearer token with a role (viewer, operator, admin; probe for "
            "the /api/probes endpoints of job runners only) and a tenant scope; errors are "
            "RFC 9457 problem details. No string of a request (path, query, JSON keys and "
            "values) may hold U+0000 or a lone surrogate: such a request is a 422. Times are "
            "ISO 8601 with an offset, between 2000 and 2200."
        ),
        lifespan=lifespan,
    )
    metrics_policy = policy_from(settings)
    state.install(
        app,
        state.ApiState(
            settings=settings,
            console_dir=settings.console_dir or CHECKOUT_CONSOLE,
            metrics_policy=metrics_policy,
            jobs=JobStore(pool),
            tokens=TokenStore(pool),
            services=ServiceStore(pool, metrics_policy.damping, metrics_policy.retention),
            health=HealthStore(pool),
            resources=ResourceStore(pool),
            job_windows=JobWindowStore(pool),
            job_commands=JobCommandStore(
                pool, expiry=timedelta(seconds=settings.job_command_expiry_s)
            ),
            audit=AuditStore(pool),
            alerts=AlertStore(pool),
            alert_config=AlertConfigStore(pool),
            notifications=NotificationStore(pool),
            # every time-based index of the logs: b2c-logs, b2c-logs-2026.11.28, ...
            logs=LogStore(es, logs_index, default_tenant=settings.default_tenant),
            errors=ErrorStore(es, logs_index, default_tenant=settings.default_tenant),
            command_waiters=command_waiters,
            # the real-time hub /hubs/job-status (api/routes/hub.py)
            hub=hub,
            hub_pool=pool,
        ),
    )
    problems.install(app)
    # before observe_request, which is added after it and so runs outside it: refusals count
    app.add_middleware(StorableTextGuard)
    app.middleware("http")(observe_request)
    app.include_router(jobs.router)
    app.include_router(services.router)
    app.include_router(service_errors.router)
    app.include_router(health.router)
    app.include_router(job_types.router)
    app.include_router(job_logs.router)
    app.include_router(tokens.router)
    app.include_router(me.router)
    app.include_router(job_commands.router)
    app.include_router(audit.router)
    app.include_router(probes.router)
    app.include_router(hub_routes.router)
    # alerting: alerts, rules, channels, maintenance windows, job schedules
    for alerting_router in (
        alerts,
        alert_rules,
        notification_channels,
        maintenance_windows,
        job_schedules,
    ):
        app.include_router(alerting_router.router)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        """Live: the process answers (docs/development.md, "Liveness and readiness")."""
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    def readyz() -> JSONResponse:
        """Ready: Postgres answers (required); Elasticsearch (logs, errors) is reported."""
        checks = [
            readiness.postgres_pool(pool),
            readiness.elasticsearch(es, f"{settings.logs_index}*", required=False),
        ]
        status = 200 if readiness.is_ready(checks) else 503
        return JSONResponse(readiness.body(checks), status_code=status)

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    app.include_router(console.router)
    return app
