"""The API's request metrics: one series per route template, method and status."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI, HTTPException
from prometheus_client import REGISTRY

from b2c_monitoring.api.metrics import UNMATCHED_ROUTE, observe_request


def _count(route: str, method: str, status: str) -> float:
    value = REGISTRY.get_sample_value(
        "b2c_api_request_seconds_count", {"route": route, "method": method, "status": status}
    )
    return value or 0.0


def _app() -> FastAPI:
    app = FastAPI()
    app.middleware("http")(observe_request)

    @app.get("/t/items/{item_id}")
    def item(item_id: str) -> dict[str, str]:
        if item_id == "missing":
            raise HTTPException(404)
        if item_id == "bug":
            raise RuntimeError("a bug")
        return {"id": item_id}

    return app


def _get(*paths: str) -> list[int]:
    """Statuses of GETs through the app in process (the ASGI transport, no server)."""

    async def run() -> list[int]:
        transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return [(await client.get(p)).status_code for p in paths]

    return asyncio.run(run())


def test_requests_are_counted_by_route_template_not_path() -> None:
    before = _count("/t/items/{item_id}", "GET", "200")
    assert _get("/t/items/a", "/t/items/b") == [200, 200]
    assert _count("/t/items/{item_id}", "GET", "200") == before + 2
    assert (
        REGISTRY.get_sample_value(
            "b2c_api_request_seconds_count",
            {"route": "/t/items/a", "method": "GET", "status": "200"},
        )
        is None
    )


def test_errors_and_unknown_paths_are_counted_with_their_status() -> None:
    missing, bug = (
        _count("/t/items/{item_id}", "GET", "404"),
        _count("/t/items/{item_id}", "GET", "500"),
    )
    unmatched = _count(UNMATCHED_ROUTE, "GET", "404")
    assert _get("/t/items/missing", "/t/items/bug", "/t/nowhere/x") == [404, 500, 404]
    assert _count("/t/items/{item_id}", "GET", "404") == missing + 1
    assert _count("/t/items/{item_id}", "GET", "500") == bug + 1
    assert _count(UNMATCHED_ROUTE, "GET", "404") == unmatched + 1
