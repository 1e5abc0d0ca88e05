"""The admin API application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from b2c_monitoring.api import problems
from b2c_monitoring.api.routes import jobs
from b2c_monitoring.settings import Settings
from b2c_monitoring.storage.db import make_pool
from b2c_monitoring.storage.jobs import JobStore
from b2c_monitoring.storage.tokens import TokenStore


def create_app(settings: Settings) -> FastAPI:
    pool = make_pool(settings.database_url, max_size=settings.database_pool_size, name="b2c-api")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool.open(wait=False)
        try:
            yield
        finally:
            pool.close()

    app = FastAPI(
        title="b2c-monitoring admin API",
        version="0.1.0",
        description=(
            "Scheduler jobs, connected services and health of B2Connect (ADR-024). "
            "Every endpoint needs a bearer token with a role (viewer, operator, admin) and a tenant "
            "scope; errors are RFC 9457 problem details."
        ),
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.jobs = JobStore(pool)
    app.state.tokens = TokenStore(pool)
    problems.install(app)
    app.include_router(jobs.router)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
