"""End to end through the real collector: probes and raw OTLP in, Postgres, the API,
Elasticsearch and Prometheus out."""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import httpx
import pytest
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from b2c_monitoring.contract import JobState
from b2c_monitoring.probes import Probes, ProbeSettings
from b2c_monitoring.stack.local import LocalStack
from b2c_monitoring.storage.db import make_pool
from b2c_monitoring.storage.jobs import JobStore
from tests.otlp_builders import job_span, trace_request
from tests.polling import eventually
from tests.tokens import probe_auth, probe_metadata

pytestmark = pytest.mark.integration


@pytest.fixture
def api(stack: LocalStack) -> Iterator[httpx.Client]:
    token = stack.credentials()["token"]
    with httpx.Client(
        base_url=f"http://127.0.0.1:{stack.layout.ports.api}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    ) as client:
        yield client


@pytest.fixture
def jobs(stack: LocalStack) -> Iterator[JobStore]:
    pool = make_pool(stack.postgres.url, max_size=2, name="pipeline-test")
    pool.open(wait=True)
    yield JobStore(pool)
    pool.close()


def probes_for(stack: LocalStack, tenant: str) -> Probes:
    return Probes(
        ProbeSettings(
            endpoint=f"http://127.0.0.1:{stack.layout.ports.otlp_grpc}",
            token=stack.probe_token,
            service_name="erp-connector",
            tenant_id=tenant,
        )
    )


def job_in_api(api: httpx.Client, job_id: str, state: str) -> Callable[[], dict[str, Any] | None]:
    def probe() -> dict[str, Any] | None:
        response = api.get(f"/api/admin/jobs/{job_id}")
        if response.status_code == 200 and response.json()["status"] == state:
            body: dict[str, Any] = response.json()
            return body
        return None

    return probe


def test_a_job_reported_with_the_probes_reaches_postgres_and_the_api(
    stack: LocalStack, api: httpx.Client, tenant: str
) -> None:
    probes = probes_for(stack, tenant)
    try:
        with probes.job_run("ERP_SYNC", tenant_id=tenant, metadata={"source": "enventa"}) as job:
            job.progress(40)
            job.progress(80, records_processed=1200)
        job_id = job.job_id
    finally:
        probes.shutdown()

    body = eventually(
        job_in_api(api, job_id, "succeeded"), what=f"job {job_id} succeeded in the API"
    )
    assert body["tenantId"] == tenant
    assert body["jobType"] == "ERP_SYNC"
    assert body["progressPercent"] == 100
    assert body["serviceName"] == "erp-connector"
    assert body["metadata"]["source"] == "enventa"
    assert body["metadata"]["records_processed"] == 1200
    assert body["createdAt"] <= body["startedAt"] <= body["completedAt"]
    assert [e["progressPercent"] for e in body["timeline"]] == [0, 40, 80, 100]


def test_a_failing_job_is_stored_failed_with_its_error(
    stack: LocalStack, api: httpx.Client, tenant: str
) -> None:
    probes = probes_for(stack, tenant)
    try:
        with probes.job_run("PIM_IMPORT", tenant_id=tenant) as job:
            job.progress(10)
            job.fail("PIM answered 503 Service Unavailable")
    finally:
        probes.shutdown()
    body = eventually(job_in_api(api, job.job_id, "failed"), what="the failed job")
    assert body["errorMessage"] == "PIM answered 503 Service Unavailable"
    assert body["progressPercent"] == 10


def _reports(job_id: str, tenant: str, base: int) -> list[Any]:
    attrs = {"scheduler.job.id": job_id, "scheduler.job.type": "CRM_EXPORT", "tenant.id": tenant}
    trace_id = os.urandom(16)
    return [
        job_span({**attrs, "scheduler.job.state": "pending"}, end_ns=base, trace_id=trace_id),
        job_span(
            {**attrs, "scheduler.job.state": "running", "scheduler.job.progress_percent": 10},
            end_ns=base + 10**9,
            trace_id=trace_id,
        ),
        job_span(
            {
                **attrs,
                "scheduler.job.state": "running",
                "scheduler.job.progress_percent": 70,
                "scheduler.job.metadata.rows": 700,
            },
            end_ns=base + 2 * 10**9,
            trace_id=trace_id,
        ),
        job_span(
            {**attrs, "scheduler.job.state": "failed"},
            end_ns=base + 3 * 10**9,
            error="CRM rejected 3 contacts",
            trace_id=trace_id,
        ),
        job_span(
            {**attrs, "scheduler.job.state": "running", "scheduler.job.progress_percent": 90},
            end_ns=base + 4 * 10**9,
            trace_id=trace_id,
        ),
    ]


def test_shuffled_and_duplicated_reports_end_in_the_same_row(
    stack: LocalStack, jobs: JobStore, tenant: str
) -> None:
    in_order, scrambled = f"ordered-{uuid.uuid4()}", f"scrambled-{uuid.uuid4()}"
    rng = random.Random(7)
    base = time.time_ns() - 60 * 10**9
    ordered_spans = _reports(in_order, tenant, base)
    scrambled_spans = _reports(scrambled, tenant, base) * 3
    rng.shuffle(scrambled_spans)
    with grpc.insecure_channel(f"127.0.0.1:{stack.layout.ports.otlp_grpc}") as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        for span in ordered_spans:
            stub.Export(trace_request([span]), timeout=10, metadata=probe_metadata(stack))
        for start in range(0, len(scrambled_spans), 4):
            stub.Export(
                trace_request(scrambled_spans[start : start + 4]),
                timeout=10,
                metadata=probe_metadata(stack),
            )

    def both() -> tuple[Any, Any] | None:
        a, b = jobs.get(in_order, [tenant]), jobs.get(scrambled, [tenant])
        if a and b and a[0].status is JobState.FAILED and b[0].status is JobState.FAILED:
            return a[0], b[0]
        return None

    a, b = eventually(both, what="both jobs failed")
    fields = (
        "status",
        "progress_percent",
        "created_at",
        "started_at",
        "completed_at",
        "error_message",
        "metadata",
        "job_type",
        "last_report_at",
    )
    assert {f: getattr(a, f) for f in fields} == {f: getattr(b, f) for f in fields}
    assert (a.status, a.progress_percent, a.error_message) == (
        JobState.FAILED,
        90,
        "CRM rejected 3 contacts",
    )


def test_a_hand_built_otlp_http_protobuf_report_is_a_job(
    stack: LocalStack, api: httpx.Client, tenant: str
) -> None:
    """Any SDK that follows the contract works: no probes library, plain OTLP/HTTP."""
    job_id = f"raw-{uuid.uuid4()}"
    request = trace_request(
        [
            job_span(
                {
                    "scheduler.job.id": job_id,
                    "scheduler.job.type": "ERP_SYNC",
                    "scheduler.job.state": "running",
                    "scheduler.job.progress_percent": 55,
                }
            )
        ],
        resource={"service.name": "dotnet-erp-provider", "tenant.id": tenant},
    )
    response = httpx.post(
        f"http://127.0.0.1:{stack.layout.ports.otlp_http}/v1/traces",
        content=request.SerializeToString(),
        headers={"Content-Type": "application/x-protobuf", **probe_auth(stack)},
        timeout=10,
    )
    assert response.status_code == 200
    body = eventually(job_in_api(api, job_id, "running"), what="the raw job")
    assert (body["tenantId"], body["progressPercent"], body["serviceName"]) == (
        tenant,
        55,
        "dotnet-erp-provider",
    )


def test_a_job_log_record_is_found_in_elasticsearch(stack: LocalStack, tenant: str) -> None:
    probes = probes_for(stack, tenant)
    marker = uuid.uuid4().hex
    try:
        with probes.job_run("ERP_SYNC", tenant_id=tenant) as job:
            job.logger.warning("enventa slow to answer, marker %s", marker)
    finally:
        probes.shutdown()
    es = stack.elasticsearch.admin_url

    def found() -> dict[str, Any] | None:
        response = httpx.post(
            f"{es}/b2c-logs*/_search",
            json={
                "query": {
                    "bool": {
                        "filter": [{"term": {"Attributes.scheduler.job.id": job.job_id}}],
                        "must": [{"match": {"Body": marker}}],
                    }
                }
            },
            timeout=10,
        )
        hits = (
            response.json().get("hits", {}).get("hits", []) if response.status_code == 200 else []
        )
        return hits[0]["_source"] if hits else None

    source = eventually(found, what="the job's log record in Elasticsearch")
    # the job's detail shows its last log lines
    token = stack.credentials()["token"]
    detail = httpx.get(
        f"http://127.0.0.1:{stack.layout.ports.api}/api/admin/jobs/{job.job_id}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    ).json()
    assert any(marker in line["body"] for line in detail["recentLogs"])
    assert source["SeverityText"] == "WARN"
    assert source["SeverityNumber"] == 13
    assert source["Resource.service.name"] == "erp-connector"
    assert source["Attributes.scheduler.job.id"] == job.job_id


def test_a_metric_reaches_prometheus(stack: LocalStack, tenant: str) -> None:
    component = f"catalog-{uuid.uuid4().hex[:8]}"
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(
            endpoint=f"http://127.0.0.1:{stack.layout.ports.otlp_grpc}",
            insecure=True,
            headers={"authorization": f"Bearer {stack.probe_token}"},
        ),
        export_interval_millis=500,
    )
    provider = MeterProvider(
        resource=Resource.create({"service.name": "catalog", "tenant.id": tenant}),
        metric_readers=[reader],
    )
    provider.get_meter("test").create_gauge("component.health.status").set(
        1, {"component.name": component}
    )
    provider.force_flush()
    prometheus = stack.prometheus.url

    def queried() -> list[Any] | None:
        response = httpx.get(
            f"{prometheus}/api/v1/query",
            params={"query": f'component_health_status{{component_name="{component}"}}'},
            timeout=10,
        )
        result = response.json()["data"]["result"]
        return result or None

    try:
        [sample] = eventually(queried, what="the gauge in Prometheus")
    finally:
        provider.shutdown()
    assert sample["value"][1] == "1"
    assert sample["metric"]["tenant_id"] == tenant


def test_the_processors_own_metrics_reach_prometheus(stack: LocalStack) -> None:
    """Prometheus scrapes the processor: spans received and stored, per signal."""

    def queried() -> float | None:
        response = httpx.get(
            f"{stack.prometheus.url}/api/v1/query",
            params={"query": 'b2c_processor_stored_items_total{signal="spans"}'},
            timeout=10,
        )
        result = response.json()["data"]["result"]
        return float(result[0]["value"][1]) if result and float(result[0]["value"][1]) > 0 else None

    assert eventually(queried, what="the processor's stored spans in Prometheus") > 0


def _rejected(stack: LocalStack, reason: str) -> float:
    """``b2c_processor_rejected_items{signal="spans",reason=...}`` of the stack's processor."""
    text = httpx.get(
        f"http://127.0.0.1:{stack.layout.ports.processor_metrics}/metrics", timeout=10
    ).text
    for line in text.splitlines():
        if line.startswith("b2c_processor_rejected_items_total{") and (
            'signal="spans"' in line and f'reason="{reason}"' in line
        ):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_bad_reports_through_the_collector_are_refused_by_reason_and_the_rest_is_stored(
    stack: LocalStack, jobs: JobStore, tenant: str
) -> None:
    """The issue's list of bad input, in one export through the real collector: each bad
    report is counted by its reason; the good ones of the same request are stored, one
    without a tenant in the default tenant (the contract's rule)."""
    good, untenanted = f"good-{uuid.uuid4()}", f"untenanted-{uuid.uuid4()}"

    def report(job_id: str, state: str = "running", **extra: object) -> dict[str, object]:
        return {
            "scheduler.job.id": job_id,
            "scheduler.job.state": state,
            "scheduler.job.type": "ERP_SYNC",
            "tenant.id": tenant,
            **extra,
        }

    malformed = job_span(report(f"no-end-{uuid.uuid4()}"))
    malformed.end_time_unix_nano = 0
    bad = {
        "missing_end_time": malformed,
        "unknown_state": job_span(report(f"exploded-{uuid.uuid4()}", "exploded")),
        "oversized_attribute": job_span(report("x" * 10_000)),
        "wrong_type": job_span(
            report(f"half-{uuid.uuid4()}", **{"scheduler.job.progress_percent": "half"})
        ),
        "missing_attribute": job_span(
            {
                "scheduler.job.id": f"no-type-{uuid.uuid4()}",
                "scheduler.job.state": "running",
                "tenant.id": tenant,
            }
        ),
    }
    before = {reason: _rejected(stack, reason) for reason in bad}
    without_tenant = report(untenanted)
    del without_tenant["tenant.id"]
    request = trace_request([job_span(report(good)), *bad.values(), job_span(without_tenant)])
    with grpc.insecure_channel(f"127.0.0.1:{stack.layout.ports.otlp_grpc}") as channel:
        trace_service_pb2_grpc.TraceServiceStub(channel).Export(
            request, timeout=10, metadata=probe_metadata(stack)
        )

    eventually(lambda: jobs.get(good, [tenant]) or None, timeout=60, what="the good report")
    [stored] = eventually(
        lambda: jobs.get(untenanted, ["default"]) or None, timeout=60, what="the untenanted one"
    )
    assert stored.status is JobState.RUNNING
    for reason in bad:
        eventually(
            lambda reason=reason: _rejected(stack, reason) > before[reason] or None,  # type: ignore[misc]
            timeout=30,
            what=f"a refusal counted as {reason}",
        )
