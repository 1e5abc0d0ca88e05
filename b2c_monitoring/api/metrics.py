"""The API's own metrics, scraped by Prometheus (job ``b2c-api``) from ``GET /metrics``.

``/metrics`` needs no token: the API listens on loopback in the local stack and the
figures carry no tenant data (routes are templates such as ``/api/admin/jobs/{job_id}``,
never concrete paths). A deployment that exposes the API beyond loopback keeps
``/metrics`` off its ingress and lets Prometheus scrape the pod directly.

The hub's connection gauge and the notification counter, which other processes count
too, are in ``b2c_monitoring/telemetry_metrics.py``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Final

from prometheus_client import Histogram
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match

# imported here so that the API's /metrics shows the hub gauge (0) before the hub exists
from b2c_monitoring.telemetry_metrics import HUB_CONNECTIONS, NOTIFICATIONS

__all__ = ["HUB_CONNECTIONS", "NOTIFICATIONS", "REQUEST_SECONDS", "observe_request"]

REQUEST_SECONDS: Final = Histogram(
    "b2c_api_request_seconds",
    "Time to answer one API request, per route template, method and status code.",
    ["route", "method", "status"],
    buckets=(0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

UNMATCHED_ROUTE: Final = "unmatched"
"""The route label of a request no route matched (404s of unknown paths): one series, not one per path."""


def route_template(request: Request) -> str:
    """The path template of the route that matches ``request``, e.g. ``/api/admin/jobs/{job_id}``."""
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match is Match.FULL:
            path = getattr(route, "path", None)
            if isinstance(path, str):
                return path
    return UNMATCHED_ROUTE


async def observe_request(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """HTTP middleware: time each request into :data:`REQUEST_SECONDS`.

    An exception that escapes the app counts as 500, the status the client sees.
    WebSocket connections do not pass through HTTP middleware; the hub counts them
    in ``telemetry_metrics.HUB_CONNECTIONS``.
    """
    started = time.perf_counter()
    status = 500
    try:
        response = await call_next(request)
        status = response.status_code
        return response
    finally:
        if request.url.path != "/metrics":
            REQUEST_SECONDS.labels(
                route=route_template(request), method=request.method, status=str(status)
            ).observe(time.perf_counter() - started)
