"""Bad input refused at the API's edge: unstorable text, unbounded times, 405 with
``Allow``; on an API process of this module's own on the test stack."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import psycopg_pool
import pytest

from b2c_monitoring.auth import Role
from tests.tokens import bearer, token

pytestmark = pytest.mark.integration

NUL = "a\u0000b"

QUERIES = [
    ("/api/admin/alerts", {"service": NUL}),
    ("/api/admin/alert-rules", {"tenant": NUL}),
    ("/api/admin/audit", {"action": NUL}),
    ("/api/admin/health/components", {"component": NUL}),
    ("/api/admin/jobs", {"q": NUL}),
    ("/api/admin/jobs/j-1/commands", {"tenant": NUL}),
    ("/api/admin/job-schedules", {"tenant": NUL}),
    ("/api/admin/maintenance-windows", {"tenant": NUL}),
    ("/api/admin/notification-channels", {"tenant": NUL}),
    ("/api/admin/services", {"tenant": NUL}),
    ("/api/admin/services/s/errors/export", {"tenant": NUL}),
    ("/api/admin/services/s/latency", {"tenant": NUL}),
]


@pytest.fixture(scope="module")
def admin(pool: psycopg_pool.ConnectionPool) -> str:
    return token(pool, Role.ADMIN, ["t-edge"])


@pytest.mark.parametrize(("path", "params"), QUERIES)
def test_a_nul_in_a_query_or_path_is_a_422_problem(
    api: httpx.Client, admin: str, path: str, params: dict[str, str]
) -> None:
    response = api.get(path, params=params, headers=bearer(admin))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert "cannot be stored" in response.json()["detail"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/admin/jobs/a%00b"),
        ("POST", "/api/admin/jobs/a%00b/cancel"),
        ("GET", "/api/admin/services/a%00b/status"),
        ("GET", "/api/admin/alert-rules/a%00b"),
        ("DELETE", "/api/admin/tokens/a%00b"),
        ("DELETE", "/api/admin/job-schedules/A%00B"),
    ],
)
def test_a_nul_in_a_path_parameter_is_a_422_problem(
    api: httpx.Client, admin: str, method: str, path: str
) -> None:
    response = api.request(method, path, headers=bearer(admin))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"] == [
        {"location": "path", "message": response.json()["errors"][0]["message"]}
    ]
    assert "cannot be stored" in response.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [
        {"name": NUL, "role": "viewer", "tenants": ["t-edge"]},
        {"name": "ok", "role": "viewer", "tenants": ["t-\ud800"]},
    ],
)
def test_a_nul_or_lone_surrogate_in_a_json_body_is_a_422_problem(
    api: httpx.Client, admin: str, body: dict[str, object]
) -> None:
    import json

    response = api.post(
        "/api/admin/tokens",
        content=json.dumps(body).encode(),
        headers={**bearer(admin), "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["location"].startswith("body.")


@pytest.mark.parametrize("until", ["0.5", "1", "1900-01-01T00:00:00Z", "9999-01-01T00:00:00Z"])
def test_a_time_outside_what_the_stores_take_is_a_422(
    api: httpx.Client, admin: str, until: str
) -> None:
    # a service that exists, so the time is what the answer is about (the case:
    # it reached Elasticsearch, which refused it, and the API answered 500)
    declared = api.put("/api/admin/services/edge-erp", json={"type": "ERP"}, headers=bearer(admin))
    assert declared.status_code in (200, 201), declared.text
    response = api.get(
        "/api/admin/services/edge-erp/communication-errors",
        params={"until": until},
        headers=bearer(admin),
    )
    assert response.status_code == 422, response.text
    listed = api.get("/api/admin/jobs", params={"until": until}, headers=bearer(admin))
    assert listed.status_code == 422, listed.text


def test_a_405_names_every_method_of_the_path(api: httpx.Client, admin: str) -> None:
    response = api.delete("/api/admin/tokens", headers=bearer(admin))
    assert response.status_code == 405
    assert "POST" in response.headers["allow"]


def _soon() -> str:
    return (datetime.now(UTC) + timedelta(days=1)).isoformat()


# (route, a valid body, the time field): the same bounds as a time in a query
BODY_TIMES: list[tuple[str, Callable[[], dict[str, object]], str]] = [
    (
        "/api/admin/tokens",
        lambda: {"name": "edge", "role": "viewer", "tenants": ["t-edge"], "expiresAt": _soon()},
        "expiresAt",
    ),
    (
        "/api/admin/maintenance-windows",
        lambda: {"tenantId": "t-edge", "serviceName": "edge-erp", "endsAt": _soon()},
        "endsAt",
    ),
    (
        "/api/admin/maintenance-windows",
        lambda: {
            "tenantId": "t-edge",
            "serviceName": "edge-erp",
            "startsAt": datetime.now(UTC).isoformat(),
            "endsAt": _soon(),
        },
        "startsAt",
    ),
]


@pytest.mark.parametrize(("path", "valid", "field"), BODY_TIMES)
@pytest.mark.parametrize("bad", [0.5, "1", "1900-01-01T00:00:00Z", "9999-01-01T00:00:00Z"])
def test_a_time_in_a_json_body_outside_what_the_stores_take_is_a_422(
    api: httpx.Client,
    admin: str,
    path: str,
    valid: Callable[[], dict[str, object]],
    field: str,
    bad: object,
) -> None:
    declared = api.put("/api/admin/services/edge-erp", json={"type": "ERP"}, headers=bearer(admin))
    assert declared.status_code in (200, 201), declared.text
    accepted = api.post(path, json=valid(), headers=bearer(admin))
    assert accepted.status_code == 201, accepted.text
    response = api.post(path, json={**valid(), field: bad}, headers=bearer(admin))
    assert response.status_code == 422, response.text
    assert [e["location"] for e in response.json()["errors"]] == [f"body.{field}"]
