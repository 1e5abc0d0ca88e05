"""What the pipeline does when a store is down: nothing is lost, nothing is faked."""

from __future__ import annotations

import re
import uuid

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from b2c_monitoring.contract import JobState
from b2c_monitoring.stack.local import LocalStack
from b2c_monitoring.storage.db import make_pool
from b2c_monitoring.storage.jobs import JobStore
from tests.otlp_builders import job_span, trace_request
from tests.polling import eventually
from tests.tokens import probe_metadata

pytestmark = pytest.mark.integration


def refused_batches(stack: LocalStack) -> float:
    text = httpx.get(
        f"http://127.0.0.1:{stack.layout.ports.processor_metrics}/metrics", timeout=5
    ).text
    match = re.search(
        r'^b2c_processor_refused_batches_total\{code="UNAVAILABLE",reason="store_unavailable",'
        r'signal="spans"\} (\S+)$',
        text,
        re.M,
    )
    return float(match.group(1)) if match else 0.0


def test_with_postgres_stopped_the_collector_keeps_the_batch_until_it_is_back(
    stack: LocalStack, tenant: str
) -> None:
    job_id = f"kept-{uuid.uuid4()}"
    refused_before = refused_batches(stack)
    stack.supervisor.stop(stack.postgres, print)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{stack.layout.ports.otlp_grpc}") as channel:
            trace_service_pb2_grpc.TraceServiceStub(channel).Export(
                trace_request(
                    [
                        job_span(
                            {
                                "scheduler.job.id": job_id,
                                "scheduler.job.type": "ERP_SYNC",
                                "scheduler.job.state": "succeeded",
                                "tenant.id": tenant,
                            }
                        )
                    ]
                ),
                timeout=10,
                metadata=probe_metadata(stack),
            )
        # the processor could not store it and said so (UNAVAILABLE), so the collector kept it
        eventually(
            lambda: True if refused_batches(stack) > refused_before else None,
            timeout=60,
            what="the processor refusing the batch while Postgres is down",
        )
    finally:
        stack.supervisor.start(stack.postgres, print)

    pool = make_pool(stack.postgres.url, max_size=1, name="resilience-test")
    pool.open(wait=True)
    try:
        store = JobStore(pool)
        [job] = eventually(
            lambda: store.get(job_id, [tenant]) or None,
            timeout=120,
            what="the kept batch delivered after Postgres is back",
        )
        assert job.status is JobState.SUCCEEDED
    finally:
        pool.close()
