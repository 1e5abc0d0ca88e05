"""The processor's OTLP MetricsService, spoken to by a real gRPC client, storing in real Postgres."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import grpc
import psycopg_pool
import pytest
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc

from b2c_monitoring.processor.process import build_server
from b2c_monitoring.processors.health import HealthStatus
from b2c_monitoring.processors.services import ServiceStatus
from b2c_monitoring.receivers.metrics_handler import handle_metrics_export
from b2c_monitoring.receivers.traces import TraceOutcome
from b2c_monitoring.settings import load_settings
from b2c_monitoring.storage.db import make_pool
from b2c_monitoring.storage.health import HealthQuery, HealthStore
from b2c_monitoring.storage.maintenance import maintain
from b2c_monitoring.storage.metrics import MetricsStore, policy_from
from b2c_monitoring.storage.services import ServiceStore
from tests.otlp_metric_builders import gauge, metrics_request, point
from tests.test_otlp_receiver import AUTH, TOKEN, free_port

pytestmark = pytest.mark.integration

ERP = {"connected_service.name": "enventa-erp", "connected_service.type": "ERP", "tenant.id": "t1"}


def serve(database_url: str) -> tuple[grpc.Server, str, psycopg_pool.ConnectionPool]:
    listen = f"127.0.0.1:{free_port()}"
    settings = load_settings(
        database_url=database_url, processor_listen=listen, processor_token=TOKEN
    )
    pool = make_pool(database_url, max_size=2, name="metrics-receiver-test")
    pool.open(wait=False)
    store = MetricsStore(pool, policy_from(settings))
    server = build_server(
        settings,
        lambda data: TraceOutcome(),
        lambda data: handle_metrics_export(store, "default", data),
    )
    server.start()
    return server, listen, pool


@pytest.fixture
def receiver(
    fresh_db: str,
) -> Iterator[tuple[metrics_service_pb2_grpc.MetricsServiceStub, psycopg_pool.ConnectionPool]]:
    server, listen, pool = serve(fresh_db)
    maintain(pool, policy_from(load_settings()), datetime.now(UTC))
    channel = grpc.insecure_channel(listen)
    try:
        yield metrics_service_pb2_grpc.MetricsServiceStub(channel), pool
    finally:
        channel.close()
        server.stop(None)
        pool.close()


def test_bad_points_are_rejected_alone_and_the_rest_is_stored(
    receiver: tuple[metrics_service_pb2_grpc.MetricsServiceStub, psycopg_pool.ConnectionPool],
) -> None:
    stub, pool = receiver
    now = time.time_ns()
    request = metrics_request(
        [
            gauge("connected_service.up", point(1, ERP, at_ns=now)),
            gauge("connected_service.check.duration", point(0.2, ERP, at_ns=now)),
            gauge("connected_service.check.duration", point(-1.0, ERP, at_ns=now - 10**9)),
            gauge("connected_service.up", point(1, {**ERP, "connected_service.type": "Fax"})),
            gauge(
                "component.health.status",
                point(2, {"component.name": "catalog", "tenant.id": "t1"}, at_ns=now),
                point(5, {"component.name": "search", "tenant.id": "t1"}, at_ns=now),
            ),
            gauge("process.cpu.utilization", point(7.0), point(0.3)),
            gauge("http.server.active_requests", point(4)),
        ],
        resource={"service.name": "erp-connector", "tenant.id": "t1"},
    )
    response = stub.Export(request, metadata=AUTH)
    assert response.partial_success.rejected_data_points == 4
    message = response.partial_success.error_message
    assert "rejected 4 data point(s)" in message
    assert "3 out_of_range" in message
    assert "1 unknown_type" in message

    policy = policy_from(load_settings())
    [service] = ServiceStore(pool, policy.damping, policy.retention).find("enventa-erp", ["t1"])
    assert (service.status, service.last_latency_s) == (ServiceStatus.UP, 0.2)
    [component] = HealthStore(pool).components(HealthQuery(["t1"]))
    assert (component.name, component.status) == ("catalog", HealthStatus.HEALTHY)


def test_a_wrong_token_is_refused(
    receiver: tuple[metrics_service_pb2_grpc.MetricsServiceStub, psycopg_pool.ConnectionPool],
) -> None:
    stub, _ = receiver
    with pytest.raises(grpc.RpcError) as caught:
        stub.Export(metrics_request([]), metadata=(("authorization", "Bearer nope"),))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_batch_that_cannot_be_stored_is_answered_retryable_never_ok() -> None:
    server, listen, pool = serve("postgresql://b2c@127.0.0.1:1/nowhere")
    try:
        with grpc.insecure_channel(listen) as channel:
            stub = metrics_service_pb2_grpc.MetricsServiceStub(channel)
            with pytest.raises(grpc.RpcError) as caught:
                stub.Export(
                    metrics_request([gauge("connected_service.up", point(1, ERP))]),
                    metadata=AUTH,
                    timeout=30,
                )
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop(None)
        pool.close()


def test_bytes_that_are_not_otlp_are_a_permanent_error(fresh_db: str) -> None:
    server, listen, pool = serve(fresh_db)
    try:
        with grpc.insecure_channel(listen) as channel:
            export = channel.unary_unary(
                "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export", None, None
            )
            with pytest.raises(grpc.RpcError) as caught:
                export(b"\xff\xff\xff", metadata=AUTH, timeout=10)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        server.stop(None)
        pool.close()
