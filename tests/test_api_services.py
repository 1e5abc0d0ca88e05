"""Connected services and health end to end: OTLP through the real collector and processor
into Postgres, read through the running API and the CLI, with real tokens."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg_pool
import pytest
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from b2c_monitoring.auth import Role
from b2c_monitoring.processors.health import HealthReport, HealthStatus
from b2c_monitoring.processors.resources import ResourceSample
from b2c_monitoring.processors.services import CheckReport, DampingPolicy, ServiceType
from b2c_monitoring.settings import load_settings
from b2c_monitoring.stack.local import LocalStack
from b2c_monitoring.storage.metrics import MetricsPolicy, MetricsStore, policy_from
from tests.api_process import cli
from tests.polling import eventually
from tests.tokens import bearer, token

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def api_url(stack: LocalStack) -> str:
    """The stack's own API process: this module tests it."""
    return f"http://127.0.0.1:{stack.layout.ports.api}"


def store(pool: psycopg_pool.ConnectionPool, **policy: Any) -> MetricsStore:
    """The store as the stack's processor has it (its settings are the defaults)."""
    base = policy_from(load_settings())
    return MetricsStore(pool, MetricsPolicy(**{**base.__dict__, **policy}))


# through the collector


class MetricSender:
    """An application instrumented with the plain OpenTelemetry SDK, as the contract says;
    each ``send`` is one collection, so one data point per gauge: one check."""

    def __init__(self, stack: LocalStack, tenant: str, service_name: str) -> None:
        self._reader = PeriodicExportingMetricReader(
            OTLPMetricExporter(
                endpoint=f"http://127.0.0.1:{stack.layout.ports.otlp_grpc}",
                insecure=True,
                headers={"authorization": f"Bearer {stack.probe_token}"},
            ),
            export_interval_millis=3_600_000,
        )
        self._provider = MeterProvider(
            resource=Resource.create({"service.name": service_name, "tenant.id": tenant}),
            metric_readers=[self._reader],
        )
        meter = self._provider.get_meter("b2c-test")
        self.up = meter.create_gauge("connected_service.up")
        self.duration = meter.create_gauge("connected_service.check.duration", unit="s")
        self.health = meter.create_gauge("component.health.status")
        self.cpu = meter.create_gauge("process.cpu.utilization")
        self.memory = meter.create_gauge("process.memory.usage", unit="By")

    def check(self, attrs: dict[str, str], up: bool, latency: float = 0.05) -> None:
        self.up.set(1 if up else 0, attrs)
        self.duration.set(latency, attrs)
        self.send()

    def send(self) -> None:
        assert self._provider.force_flush(10_000)

    def close(self) -> None:
        self._provider.shutdown()


def _service(api: httpx.Client, secret: str, name: str) -> dict[str, Any] | None:
    response = api.get(f"/api/admin/services/{name}/status", headers=bearer(secret))
    return response.json() if response.status_code == 200 else None


def _checks_seen(api: httpx.Client, secret: str, name: str, count: int) -> Callable[[], Any]:
    def probe() -> dict[str, Any] | None:
        response = api.get(
            f"/api/admin/services/{name}/latency",
            params={"resolution": "raw"},
            headers=bearer(secret),
        )
        if response.status_code != 200 or len(response.json()["points"]) < count:
            return None
        return _service(api, secret, name)

    return probe


def test_a_service_whose_checks_fail_turns_down_after_the_threshold_and_back_up(
    stack: LocalStack, api: httpx.Client, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    secret = token(pool, Role.VIEWER, [tenant])
    attrs = {
        "connected_service.name": "enventa-erp",
        "connected_service.type": "ERP",
        "server.address": "erp.example",
    }
    sender = MetricSender(stack, tenant, "erp-connector")
    damping = DampingPolicy()  # the stack's processor runs with the defaults
    seen: list[str] = []
    try:
        for number, up in enumerate(
            [True] + [False] * damping.down_after + [True] * damping.up_after, start=1
        ):
            sender.check(attrs, up)
            body = eventually(
                _checks_seen(api, secret, "enventa-erp", number), what=f"check {number}"
            )
            seen.append(body["status"])
    finally:
        sender.close()
    n = damping.down_after
    assert seen == ["up"] * n + ["down"] * damping.up_after + ["up"]
    assert body["type"] == "ERP"
    assert body["endpoint"] == "erp.example"
    assert body["lastSuccessful"] == body["lastChecked"]
    assert [(c["previousStatus"], c["status"]) for c in body["changes"]] == [
        ("down", "up"),
        ("up", "down"),
        ("unknown", "up"),
    ]
    assert body["averageLatencyMs"] == pytest.approx(50.0)
    assert 0 < body["uptimePercent"] < 100


def test_component_health_and_resources_reported_through_the_collector(
    stack: LocalStack, api: httpx.Client, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    secret = token(pool, Role.VIEWER, [tenant])
    sender = MetricSender(stack, tenant, "crm-db")
    try:
        sender.health.set(1, {"component.name": "catalog", "component.health.description": "slow"})
        sender.up.set(1, {"connected_service.name": "crm-db", "connected_service.type": "Database"})
        sender.cpu.set(0.25)
        sender.memory.set(512 * 1024 * 1024)
        sender.send()

        def component() -> dict[str, Any] | None:
            response = api.get(
                "/api/admin/health/components",
                params={"component": "catalog"},
                headers=bearer(secret),
            )
            items = response.json()["items"] if response.status_code == 200 else []
            return response.json() if items else None

        body = eventually(component, what="the component in the API")
        assert body["status"] == "degraded"
        [catalog] = body["items"]
        assert (catalog["status"], catalog["description"], catalog["tenantId"]) == (
            "degraded",
            "slow",
            tenant,
        )

        def resources() -> dict[str, Any] | None:
            response = api.get("/api/admin/services/crm-db/resources", headers=bearer(secret))
            return response.json()["resources"] if response.status_code == 200 else None

        figures = eventually(resources, what="crm-db's resources")
    finally:
        sender.close()
    assert figures["cpuPercent"] == pytest.approx(25.0)
    assert figures["memoryUsedBytes"] == 512 * 1024 * 1024


# health


def test_a_silent_component_turns_unknown_and_the_overall_status_is_the_worst(
    api: httpx.Client, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    now = datetime.now(UTC)
    stale = policy_from(load_settings()).stale_after
    store(pool).apply(
        [],
        [
            HealthReport(tenant, "catalog", HealthStatus.HEALTHY, now),
            HealthReport(
                tenant, "search", HealthStatus.HEALTHY, now - stale - timedelta(minutes=1)
            ),
        ],
        [],
        now,
    )
    secret = token(pool, Role.VIEWER, [tenant])
    body = api.get("/api/admin/health/components", headers=bearer(secret)).json()
    assert {c["name"]: c["status"] for c in body["items"]} == {
        "catalog": "healthy",
        "search": "unknown",
    }
    assert body["status"] == "degraded"  # an unknown component counts as degraded

    store(pool).apply([], [HealthReport(tenant, "orders", HealthStatus.UNHEALTHY, now)], [], now)
    summary = api.get("/api/admin/health/summary", headers=bearer(secret)).json()
    assert summary["status"] == "unhealthy"
    assert summary["components"] == {
        "total": 3,
        "healthy": 1,
        "degraded": 0,
        "unhealthy": 1,
        "unknown": 1,
    }

    history = api.get(
        "/api/admin/health/history", params={"component": "search"}, headers=bearer(secret)
    ).json()
    assert [(c["previousStatus"], c["status"]) for c in history["items"]] == [
        ("unknown", "healthy"),
        ("healthy", "unknown"),
    ]
    since = datetime.fromisoformat(history["since"])
    assert datetime.fromisoformat(history["until"]) - since == timedelta(hours=24)


# central connection tests


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/slow":
            time.sleep(0.6)
        self.send_response(200 if self.path != "/broken" else 500)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def http_target() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_connection_test_of_a_live_a_slow_and_a_dead_endpoint(
    api: httpx.Client, pool: psycopg_pool.ConnectionPool, tenant: str, http_target: str
) -> None:
    admin = token(pool, Role.ADMIN, [tenant])
    operator = token(pool, Role.OPERATOR, [tenant])
    targets = {
        "live-erp": f"{http_target}/ok",
        "slow-pim": f"{http_target}/slow",
        "dead-crm": f"http://127.0.0.1:{_dead_port()}/health",
    }
    for name, target in targets.items():
        response = api.put(
            f"/api/admin/services/{name}",
            json={
                "type": "ERP",
                "endpoint": target,
                "check": {"kind": "http", "target": target, "timeoutS": 3, "degradedAfterS": 0.3},
            },
            headers=bearer(admin),
        )
        assert response.status_code == 201, response.text
        assert response.json()["status"] == "unknown"

    results = {
        name: api.post(f"/api/admin/services/{name}/test", headers=bearer(operator)).json()
        for name in targets
    }
    live, slow, dead = results["live-erp"], results["slow-pim"], results["dead-crm"]
    assert (live["status"], live["error"], live["serviceStatus"]) == ("up", None, "up")
    assert 0 < live["latencyMs"] < 300
    assert (slow["status"], slow["serviceStatus"]) == ("degraded", "degraded")
    assert slow["latencyMs"] >= 600
    assert (dead["status"], dead["latencyMs"], dead["serviceStatus"]) == ("down", None, "down")
    assert dead["error"]

    # recorded in the history: the check and the status change
    viewer = token(pool, Role.VIEWER, [tenant])
    status = api.get("/api/admin/services/slow-pim/status", headers=bearer(viewer)).json()
    assert [c["status"] for c in status["changes"]] == ["degraded"]
    latency = api.get(
        f"/api/admin/services/{status['id']}/latency",
        params={"resolution": "raw"},
        headers=bearer(viewer),
    ).json()
    [point] = latency["points"]
    assert point["averageMs"] == pytest.approx(slow["latencyMs"], rel=0.01)
    # a declared service without a check cannot be tested; re-declaring keeps the history
    again = api.put("/api/admin/services/slow-pim", json={"type": "PIM"}, headers=bearer(admin))
    assert again.status_code == 200
    assert (again.json()["status"], again.json()["type"]) == ("degraded", "PIM")
    refused = api.post("/api/admin/services/slow-pim/test", headers=bearer(operator))
    assert refused.status_code == 409


def test_the_check_target_is_shown_without_its_secrets(
    api: httpx.Client, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    admin = token(pool, Role.ADMIN, [tenant])
    body = api.put(
        "/api/admin/services/crm-db",
        json={
            "type": "Database",
            "check": {"kind": "postgres", "target": "postgresql://crm:s3cret@db.local/crm"},
        },
        headers=bearer(admin),
    ).json()
    assert "s3cret" not in json.dumps(body)
    assert body["check"]["kind"] == "postgres"

    # the declaration is an audited admin action, and its audit entry keeps no secret
    audit = api.get("/api/admin/audit", params={"action": "service.declare"}, headers=bearer(admin))
    assert audit.status_code == 200, audit.text
    [entry] = [e for e in audit.json()["items"] if e["tenantId"] == tenant]
    assert (entry["target"], entry["details"]["check"], entry["details"]["created"]) == (
        "crm-db",
        "postgres",
        True,
    )
    assert "s3cret" not in audit.text


# list, filters, uptime, resources


def test_the_list_has_status_latency_uptime_and_resources_and_filters(
    api: httpx.Client, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    now = datetime.now(UTC)
    strict = store(pool, damping=DampingPolicy(down_after=1, up_after=1))
    start = now - timedelta(hours=10)
    strict.apply(
        [
            CheckReport(tenant, "enventa-erp", start, True, 0.2, ServiceType.ERP),
            CheckReport(tenant, "enventa-erp", now - timedelta(hours=5), False),
            CheckReport(tenant, "enventa-erp", now - timedelta(hours=4), True, 0.4),
            CheckReport(tenant, "pim", now - timedelta(minutes=1), False, None, ServiceType.PIM),
        ],
        [],
        [ResourceSample(tenant, "enventa-erp", now, cpu_ratio=0.5, memory_used=1, memory_limit=4)],
        now,
    )
    secret = token(pool, Role.VIEWER, [tenant])
    body = api.get("/api/admin/services", headers=bearer(secret)).json()
    erp, pim = body["items"]
    assert (erp["name"], erp["status"], pim["name"], pim["status"]) == (
        "enventa-erp",
        "up",
        "pim",
        "down",
    )
    # 10 h known, 1 h down
    assert erp["uptimePercent"] == pytest.approx(90.0, abs=0.01)
    assert erp["uptime"]["last30d"] == pytest.approx(90.0, abs=0.01)
    assert erp["averageLatencyMs"] == pytest.approx(300.0)
    assert erp["resources"]["cpuPercent"] == pytest.approx(50.0)
    assert erp["resources"]["memoryPercent"] == pytest.approx(25.0)
    assert pim["resources"] is None
    assert pim["uptimePercent"] == 0.0

    only_down = api.get(
        "/api/admin/services", params={"status": "down"}, headers=bearer(secret)
    ).json()
    assert [s["name"] for s in only_down["items"]] == ["pim"]
    by_type = api.get("/api/admin/services", params={"type": "ERP"}, headers=bearer(secret)).json()
    assert [s["name"] for s in by_type["items"]] == ["enventa-erp"]
    by_id = api.get(f"/api/admin/services/{erp['id']}/status", headers=bearer(secret))
    assert by_id.json()["name"] == "enventa-erp"


def test_the_list_pages_by_cursor_in_tenant_and_name_order(
    api: httpx.Client, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    now = datetime.now(UTC)
    names = [f"svc-{i:02d}" for i in range(7)]
    store(pool).apply(
        [CheckReport(tenant, n, now, True, 0.1) for n in reversed(names)], [], [], now
    )
    secret = token(pool, Role.VIEWER, [tenant])
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = api.get("/api/admin/services", params=params, headers=bearer(secret))
        assert page.status_code == 200, page.text
        seen += [s["name"] for s in page.json()["items"]]
        pages += 1
        cursor = page.json()["nextCursor"]
        if cursor is None:
            break
    assert (seen, pages) == (names, 3)
    bad = api.get("/api/admin/services", params={"cursor": "W10"}, headers=bearer(secret))
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["location"] == "query.cursor"


# auth and tenants


def test_tenant_isolation_and_roles(
    api: httpx.Client, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    now = datetime.now(UTC)
    store(pool).apply([CheckReport(tenant, "secret-erp", now, True, 0.1)], [], [], now)
    mine = token(pool, Role.VIEWER, [tenant])
    [service] = api.get("/api/admin/services", headers=bearer(mine)).json()["items"]

    outsider = token(pool, Role.ADMIN, [tenant + "-other"])
    assert api.get("/api/admin/services", headers=bearer(outsider)).json()["items"] == []
    for ref in ("secret-erp", service["id"]):
        for path in ("status", "latency", "resources"):
            hidden = api.get(f"/api/admin/services/{ref}/{path}", headers=bearer(outsider))
            assert hidden.status_code == 404, path
            assert hidden.headers["content-type"] == "application/problem+json"
        assert (
            api.post(f"/api/admin/services/{ref}/test", headers=bearer(outsider)).status_code == 404
        )
    absent = api.get("/api/admin/services/never-existed/status", headers=bearer(outsider))
    assert absent.json()["type"] == hidden.json()["type"]
    health = api.get("/api/admin/health/summary", headers=bearer(outsider)).json()
    assert health["services"]["total"] == 0

    assert api.get("/api/admin/services").status_code == 401
    assert api.get("/api/admin/health/summary", headers=bearer("b2c_nope")).status_code == 401
    assert api.post("/api/admin/services/secret-erp/test", headers=bearer(mine)).status_code == 403
    declare = api.put("/api/admin/services/x", json={}, headers=bearer(mine))
    assert declare.status_code == 403
    operator = token(pool, Role.OPERATOR, [tenant])
    assert api.put("/api/admin/services/x", json={}, headers=bearer(operator)).status_code == 403
    admin = token(pool, Role.ADMIN, [tenant])
    elsewhere = api.put(
        "/api/admin/services/x", params={"tenant": "not-mine"}, json={}, headers=bearer(admin)
    )
    assert elsewhere.status_code == 403


def test_the_openapi_document_describes_services_and_health(api: httpx.Client) -> None:
    doc = api.get("/openapi.json").json()
    paths = doc["paths"]
    for path, method in [
        ("/api/admin/services", "get"),
        ("/api/admin/services/{id}/status", "get"),
        ("/api/admin/services/{id}/latency", "get"),
        ("/api/admin/services/{id}/resources", "get"),
        ("/api/admin/services/{id}/test", "post"),
        ("/api/admin/services/{name}", "put"),
        ("/api/admin/health/summary", "get"),
        ("/api/admin/health/components", "get"),
        ("/api/admin/health/history", "get"),
    ]:
        operation = paths[path][method]
        assert {"200", "401", "403"} <= set(operation["responses"]), path
        problem = operation["responses"]["401"]["content"]["application/problem+json"]
        assert problem["schema"]["$ref"].endswith("/Problem")
    service = doc["components"]["schemas"]["ConnectedService"]["properties"]
    assert {
        "id",
        "name",
        "type",
        "endpoint",
        "status",
        "lastChecked",
        "lastSuccessful",
        "averageLatencyMs",
        "uptimePercent",
        "resources",
    } <= set(service)
    resources = doc["components"]["schemas"]["ResourceMetrics"]["properties"]
    assert {
        "cpuPercent",
        "cpuAverage",
        "cpuPeak",
        "memoryUsedBytes",
        "memoryTotalBytes",
        "memoryPercent",
        "memoryPeakBytes",
        "connectionPoolActive",
        "connectionPoolTotal",
        "threadCount",
        "queueDepth",
        "timestamp",
    } <= set(resources)


# the CLI


def test_b2c_monitor_prints_tables_and_json_exactly_as_the_api(
    api_url: str,
    api: httpx.Client,
    pool: psycopg_pool.ConnectionPool,
    tenant: str,
    http_target: str,
) -> None:
    now = datetime.now(UTC)
    store(pool).apply(
        [CheckReport(tenant, "crm-db", now, True, 0.02, ServiceType.DATABASE)],
        [HealthReport(tenant, "catalog", HealthStatus.HEALTHY, now, "all good")],
        [ResourceSample(tenant, "crm-db", now, cpu_ratio=0.1, threads=12)],
        now,
    )
    secret = token(pool, Role.OPERATOR, [tenant])
    admin = token(pool, Role.ADMIN, [tenant])
    api.put(
        "/api/admin/services/enventa-erp",
        json={"type": "ERP", "check": {"kind": "http", "target": f"{http_target}/ok"}},
        headers=bearer(admin),
    ).raise_for_status()

    def same(args: list[str], path: str, params: dict[str, str] | None = None) -> None:
        result = cli(api_url, secret, *args, "--json")
        assert result.returncode == 0, result.stderr
        expected = api.get(path, params=params, headers=bearer(secret)).json()
        got = json.loads(result.stdout)
        for volatile in ("checkedAt",):
            got.pop(volatile, None)
            expected.pop(volatile, None)
        assert got == expected

    same(["monitor", "services"], "/api/admin/services")
    same(["monitor", "services", "--resources", "crm-db"], "/api/admin/services/crm-db/resources")
    same(["monitor", "health"], "/api/admin/health/components")
    same(
        ["monitor", "health", "--component", "catalog"],
        "/api/admin/health/components",
        {"component": "catalog"},
    )

    history = cli(api_url, secret, "monitor", "health", "--history", "24h", "--json")
    assert history.returncode == 0, history.stderr
    assert [c["status"] for c in json.loads(history.stdout)["items"]] == ["healthy"]

    tested = cli(api_url, secret, "monitor", "services", "--test", "enventa-erp", "--json")
    assert tested.returncode == 0, tested.stderr
    assert json.loads(tested.stdout)["status"] == "up"

    table = cli(api_url, secret, "monitor", "services")
    assert table.returncode == 0, table.stderr
    assert "crm-db" in table.stdout
    assert "enventa-erp" in table.stdout
    health_table = cli(api_url, secret, "monitor", "health")
    assert "overall: healthy" in health_table.stdout
    assert "all good" in health_table.stdout
    resources = cli(api_url, secret, "monitor", "services", "--resources", "crm-db")
    assert "10.0 %" in resources.stdout

    missing = cli(api_url, secret, "monitor", "services", "--test", "no-such-service")
    assert missing.returncode == 1
    assert "no service 'no-such-service'" in missing.stderr
    bad = cli(api_url, secret, "monitor", "health", "--history", "yesterday")
    assert bad.returncode != 0
