"""A service is known from its first report of any kind, end to end through the real
collector: a communication error (a log record) alone, resource metrics under a plain
``service.name`` alone, a plain log line naming ``connected_service.name`` alone; each is
listed (in its record's tenant only), with its errors or resources, and its connection
test answered from the address its reports named."""

from __future__ import annotations

import time
import uuid
from typing import Any

import grpc
import httpx
import psycopg_pool
import pytest
from opentelemetry._logs import LogRecord as ApiLogRecord
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource as SdkResource

from b2c_monitoring.auth import Role
from b2c_monitoring.stack.local import LocalStack
from tests.http_stub import StubServer
from tests.otlp_builders import kvs
from tests.otlp_metric_builders import gauge, metrics_request, point
from tests.polling import eventually
from tests.tokens import bearer, probe_metadata, token

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def api_url(stack: LocalStack) -> str:
    return f"http://127.0.0.1:{stack.layout.ports.api}"


def _listed(api: httpx.Client, secret: str, tenant: str, name: str) -> dict[str, Any] | None:
    response = api.get("/api/admin/services", params={"tenant": tenant}, headers=bearer(secret))
    items = response.json()["items"] if response.status_code == 200 else []
    return next((s for s in items if s["name"] == name), None)


def test_a_service_known_only_from_a_communication_error(
    stack: LocalStack, api: httpx.Client, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    name = f"pim-{uuid.uuid4().hex[:8]}"
    viewer = token(pool, Role.VIEWER, [tenant])
    operator = token(pool, Role.OPERATOR, [tenant])
    with StubServer() as target:
        record = LogRecord(
            severity_text="ERROR",
            attributes=kvs(
                {
                    "event.name": "connected_service.communication_error",
                    "connected_service.name": name,
                    "connected_service.type": "PIM",
                    "url.full": f"http://127.0.0.1:{target.port}/api/items?token=s3cret",
                    "http.response.status_code": 502,
                    "tenant.id": tenant,
                }
            ),
        )
        record.body.string_value = "PIM answered 502"

        record.time_unix_nano = time.time_ns()
        request = ExportLogsServiceRequest(
            resource_logs=[
                ResourceLogs(
                    resource=Resource(attributes=kvs({"service.name": "pim-connector"})),
                    scope_logs=[ScopeLogs(log_records=[record])],
                )
            ]
        )
        with grpc.insecure_channel(f"127.0.0.1:{stack.layout.ports.otlp_grpc}") as channel:
            logs_service_pb2_grpc.LogsServiceStub(channel).Export(
                request, timeout=10, metadata=probe_metadata(stack)
            )
        service = eventually(
            lambda: _listed(api, viewer, tenant, name), timeout=60, what="the service listed"
        )
        assert service["type"] == "PIM"
        assert service["status"] == "unknown"

        def errors() -> list[Any] | None:
            response = api.get(
                f"/api/admin/services/{name}/communication-errors",
                params={"tenant": tenant},
                headers=bearer(viewer),
            )
            assert response.status_code == 200, response.text
            items: list[Any] = response.json()["items"]
            return items or None

        [_error] = eventually(errors, timeout=60, what="its communication error")
        tested = api.post(
            f"/api/admin/services/{name}/test",
            params={"tenant": tenant},
            headers=bearer(operator),
        )
        assert tested.status_code == 200, tested.text
        assert tested.json()["status"] == "up", tested.json()
        assert target.requests >= 1


def test_a_service_known_only_from_resource_metrics_under_its_service_name(
    stack: LocalStack, api: httpx.Client, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    name = f"catalog-{uuid.uuid4().hex[:8]}"
    viewer = token(pool, Role.VIEWER, [tenant])
    operator = token(pool, Role.OPERATOR, [tenant])
    request = metrics_request(
        [gauge("process.cpu.utilization", point(0.5))],
        resource={"service.name": name, "tenant.id": tenant},
    )
    with grpc.insecure_channel(f"127.0.0.1:{stack.layout.ports.otlp_grpc}") as channel:
        metrics_service_pb2_grpc.MetricsServiceStub(channel).Export(
            request, timeout=10, metadata=probe_metadata(stack)
        )
    eventually(lambda: _listed(api, viewer, tenant, name), timeout=60, what="the service listed")
    response = api.get(
        f"/api/admin/services/{name}/resources", params={"tenant": tenant}, headers=bearer(viewer)
    )
    assert response.status_code == 200, response.text
    assert response.json()["resources"]["cpuPercent"] == pytest.approx(50.0)
    # no address in its reports: the test says what it needs
    tested = api.post(
        f"/api/admin/services/{name}/test", params={"tenant": tenant}, headers=bearer(operator)
    )
    assert tested.status_code == 409
    assert "url.full" in tested.json()["detail"]


def test_a_service_known_only_from_a_plain_log_line_is_listed_with_its_origin_in_its_tenant(
    stack: LocalStack, api: httpx.Client, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    name = f"crm-{uuid.uuid4().hex[:8]}"
    viewer = token(pool, Role.VIEWER, [tenant])
    other_tenant = f"{tenant}-other"
    outsider = token(pool, Role.VIEWER, [other_tenant])
    # the standard SDK: an application's ordinary log line, no job, no metric, no
    # communication-error event
    provider = LoggerProvider(resource=SdkResource.create({"service.name": "crm-connector"}))
    provider.add_log_record_processor(
        SimpleLogRecordProcessor(
            OTLPLogExporter(
                endpoint=f"127.0.0.1:{stack.layout.ports.otlp_grpc}",
                insecure=True,
                headers=probe_metadata(stack),
            )
        )
    )
    try:
        provider.get_logger("crm-connector").emit(
            ApiLogRecord(
                timestamp=time.time_ns(),
                body="synced 12 accounts",
                severity_text="INFO",
                severity_number=SeverityNumber.INFO,
                attributes={
                    "connected_service.name": name,
                    "url.full": "https://sync:s3cret@crm.example.com:8443/api/v2/accounts?key=abc",
                    "tenant.id": tenant,
                },
            )
        )
    finally:
        provider.shutdown()

    service = eventually(
        lambda: _listed(api, viewer, tenant, name), timeout=60, what="the service listed"
    )
    assert service["tenantId"] == tenant
    assert service["status"] == "unknown"
    # the origin only: no credentials, path or query
    assert service["endpoint"] == "https://crm.example.com:8443"
    assert _listed(api, outsider, other_tenant, name) is None
    everything = api.get("/api/admin/services", headers=bearer(outsider))
    assert everything.status_code == 200, everything.text
    assert name not in {s["name"] for s in everything.json()["items"]}
