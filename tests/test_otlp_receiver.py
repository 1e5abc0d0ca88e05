"""The processor's OTLP gRPC service, spoken to by a real gRPC client, storing in real Postgres."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import grpc
import psycopg_pool
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from b2c_monitoring.contract import JobState
from b2c_monitoring.processor.process import build_server
from b2c_monitoring.processor.workers import WorkerPool
from b2c_monitoring.receivers.traces import handle_trace_export
from b2c_monitoring.settings import load_settings
from b2c_monitoring.storage.db import make_pool
from b2c_monitoring.storage.jobs import JobStore
from tests.otlp_builders import job_span, trace_request

pytestmark = pytest.mark.integration

TOKEN = "test-processor-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(database_url: str) -> tuple[grpc.Server, str, psycopg_pool.ConnectionPool]:
    listen = f"127.0.0.1:{free_port()}"
    settings = load_settings(
        database_url=database_url, processor_listen=listen, processor_token=TOKEN
    )
    pool = make_pool(database_url, max_size=2, name="receiver-test")
    pool.open(wait=False)
    store = JobStore(pool)
    server = build_server(settings, lambda data: handle_trace_export(store, "default", data))
    server.start()
    return server, listen, pool


@pytest.fixture
def receiver(fresh_db: str) -> Iterator[tuple[trace_service_pb2_grpc.TraceServiceStub, JobStore]]:
    server, listen, pool = serve(fresh_db)
    channel = grpc.insecure_channel(listen)
    try:
        yield trace_service_pb2_grpc.TraceServiceStub(channel), JobStore(pool)
    finally:
        channel.close()
        server.stop(None)
        pool.close()


AUTH = (("authorization", f"Bearer {TOKEN}"),)


def job(job_id: str, state: str, **extra: object) -> dict[str, object]:
    return {
        "scheduler.job.id": job_id,
        "scheduler.job.state": state,
        "scheduler.job.type": "ERP_SYNC",
        "tenant.id": "t1",
        **extra,
    }


def test_bad_reports_are_rejected_alone_and_the_rest_is_stored(
    receiver: tuple[trace_service_pb2_grpc.TraceServiceStub, JobStore],
) -> None:
    stub, store = receiver
    spans = [
        job_span(job("good-1", "running", **{"scheduler.job.progress_percent": 30})),
        job_span(job("bad-state", "exploded")),
        job_span(job("bad-progress", "running", **{"scheduler.job.progress_percent": 250})),
        job_span(job("x" * 10_000, "running")),
        job_span({"scheduler.job.id": "no-type", "scheduler.job.state": "running"}),
        job_span(job("bad-type", "running", **{"scheduler.job.progress_percent": "half"})),
        job_span(job("bad-nan", "running", **{"scheduler.job.metadata.ratio": float("nan")})),
        job_span({"http.route": "/orders"}),  # an ordinary trace span: not job state
        job_span(job("good-2", "failed"), error="ERP answered 503"),
    ]
    response = stub.Export(trace_request(spans), metadata=AUTH)
    assert response.partial_success.rejected_spans == 6
    message = response.partial_success.error_message
    for reason in (
        "unknown_state",
        "out_of_range",
        "oversized_attribute",
        "missing_attribute",
        "wrong_type",
    ):
        assert reason in message
    [good1] = store.get("good-1", ["t1"])
    [good2] = store.get("good-2", ["t1"])
    assert (good1.status, good1.progress_percent) == (JobState.RUNNING, 30)
    assert (good2.status, good2.error_message) == (JobState.FAILED, "ERP answered 503")
    assert store.get("bad-state", None) == []


def test_a_wrong_token_is_refused(
    receiver: tuple[trace_service_pb2_grpc.TraceServiceStub, JobStore],
) -> None:
    stub, store = receiver
    with pytest.raises(grpc.RpcError) as caught:
        stub.Export(
            trace_request([job_span(job("j", "running"))]),
            metadata=(("authorization", "Bearer nope"),),
        )
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert store.get("j", None) == []


def test_a_batch_that_cannot_be_stored_is_answered_retryable_never_ok() -> None:
    server, listen, pool = serve("postgresql://b2c@127.0.0.1:1/nowhere")
    try:
        with grpc.insecure_channel(listen) as channel:
            stub = trace_service_pb2_grpc.TraceServiceStub(channel)
            with pytest.raises(grpc.RpcError) as caught:
                stub.Export(
                    trace_request([job_span(job("j", "running"))]), metadata=AUTH, timeout=30
                )
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop(None)
        pool.close()


def test_secrets_in_error_messages_are_redacted_before_storage(
    receiver: tuple[trace_service_pb2_grpc.TraceServiceStub, JobStore],
) -> None:
    stub, store = receiver
    stub.Export(
        trace_request(
            [
                job_span(
                    job("leak", "failed"),
                    error="GET https://sync:hunter2@erp.local/api?token=abc123 failed",
                )
            ]
        ),
        metadata=AUTH,
    )
    [leak] = store.get("leak", ["t1"])
    assert leak.error_message is not None
    assert "hunter2" not in leak.error_message
    assert "abc123" not in leak.error_message
    assert "erp.local" in leak.error_message


def test_bytes_that_are_not_an_otlp_request_are_refused_as_permanent(fresh_db: str) -> None:
    server, listen, pool = serve(fresh_db)
    try:
        with grpc.insecure_channel(listen) as channel:
            export = channel.unary_unary(
                "/opentelemetry.proto.collector.trace.v1.TraceService/Export", None, None
            )
            with pytest.raises(grpc.RpcError) as caught:
                export(b"\xff\xff\xff not protobuf", metadata=AUTH, timeout=10)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        server.stop(None)
        pool.close()


def test_worker_processes_derive_and_store_like_the_front_would(fresh_db: str) -> None:
    settings = load_settings(database_url=fresh_db)
    workers = WorkerPool(settings, 2)
    try:
        workers.warm()
        outcomes = [
            workers(trace_request([job_span(job(f"w-{i}", "running"))]).SerializeToString())
            for i in range(4)
        ]
    finally:
        workers.close()
    assert [(o.stored, o.not_stored) for o in outcomes] == [(1, None)] * 4
    # the front counts the changes by status from these
    assert [o.changes for o in outcomes] == [{"running": 1}] * 4
    pool = make_pool(fresh_db, max_size=1, name="check")
    pool.open(wait=True)
    try:
        assert all(JobStore(pool).get(f"w-{i}", ["t1"]) for i in range(4))
    finally:
        pool.close()
