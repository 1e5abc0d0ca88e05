"""Authenticated ingestion, end to end: OTLP requests into the real collector (its
b2c_ingest_auth extension and b2c_tenant_guard processor), stored or not in the real
Postgres (jobs, component health) and Elasticsearch (logs). docs/ingestion-auth.md."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import httpx
import psycopg_pool
import pytest
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans

from b2c_monitoring.auth import Role
from b2c_monitoring.probes import Probes, ProbeSettings
from b2c_monitoring.stack.base import Ports, StackLayout
from b2c_monitoring.stack.collector import Collector
from b2c_monitoring.stack.local import LocalStack
from b2c_monitoring.stack.supervisor import Supervisor
from b2c_monitoring.storage.tokens import TokenStore
from tests.free_ports import free_ports
from tests.otlp_builders import job_span, kvs, trace_request
from tests.otlp_metric_builders import gauge, metrics_request, point
from tests.polling import eventually
from tests.tokens import probe_auth, token

pytestmark = pytest.mark.integration

JS_CLIENT = Path(__file__).with_name("otel_js_client")
_GRPC_PATHS = {
    "traces": "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    "metrics": "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    "logs": "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
}


@pytest.fixture(scope="module")
def pool(stack: LocalStack) -> Any:
    made = psycopg_pool.ConnectionPool(stack.postgres.url, min_size=1, max_size=2, open=True)
    yield made
    made.close()


# --------------------------------------------------------------------------------------
# sending and finding


@dataclass(frozen=True)
class Answer:
    """What the collector answered: an HTTP status, or a gRPC code (OK or the error's)."""

    http: int | None = None
    grpc_code: grpc.StatusCode | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.http == 200 or self.grpc_code == grpc.StatusCode.OK


def send(
    stack: LocalStack, signal: str, message: Message, authorization: str | None, via: str
) -> Answer:
    """One OTLP request of ``signal`` over ``via`` ("http" or "grpc") with that
    Authorization header value (None: none)."""
    ports = stack.layout.ports
    if via == "http":
        headers = {"Content-Type": "application/x-protobuf"}
        if authorization is not None:
            headers["Authorization"] = authorization
        response = httpx.post(
            f"http://127.0.0.1:{ports.otlp_http}/v1/{signal}",
            content=message.SerializeToString(),
            headers=headers,
            timeout=10,
        )
        return Answer(http=response.status_code, detail=response.text)
    metadata = (("authorization", authorization),) if authorization is not None else None
    with grpc.insecure_channel(f"127.0.0.1:{ports.otlp_grpc}") as channel:
        export = channel.unary_unary(_GRPC_PATHS[signal], None, None)
        try:
            export(message.SerializeToString(), timeout=10, metadata=metadata)
        except grpc.RpcError as exc:
            return Answer(grpc_code=exc.code(), detail=exc.details() or "")
    return Answer(grpc_code=grpc.StatusCode.OK)


def spans_request(
    job_ids_by_resource: list[tuple[dict[str, Any], list[dict[str, Any]]]],
) -> Message:
    """A trace request: per resource, the attributes of its job-state spans."""
    request = trace_request([])
    del request.resource_spans[:]
    for resource, reports in job_ids_by_resource:
        request.resource_spans.append(
            ResourceSpans(
                resource=Resource(attributes=kvs(resource)),
                scope_spans=[ScopeSpans(spans=[job_span(r) for r in reports])],
            )
        )
    return request


def job(job_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "scheduler.job.id": job_id,
        "scheduler.job.type": "ERP_SYNC",
        "scheduler.job.state": "running",
        **extra,
    }


def health(resources: list[tuple[dict[str, Any], str]]) -> Message:
    """A metrics request: per resource, one component reporting healthy."""
    request = metrics_request([])
    del request.resource_metrics[:]
    for resource, component in resources:
        one = metrics_request(
            [gauge("component.health.status", point(2, {"component.name": component}))],
            resource,
        )
        request.resource_metrics.extend(one.resource_metrics)
    return request


def logs(resources: list[tuple[dict[str, Any], list[str]]]) -> Message:
    """A logs request: per resource, records with these bodies."""
    now = time.time_ns()
    return ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=Resource(attributes=kvs(resource)),
                scope_logs=[
                    ScopeLogs(
                        log_records=[
                            LogRecord(
                                time_unix_nano=now,
                                severity_number=9,  # type: ignore[arg-type]
                                severity_text="INFO",
                                body=AnyValue(string_value=body),
                            )
                            for body in bodies
                        ]
                    )
                ],
            )
            for resource, bodies in resources
        ]
    )


def job_tenants(pool: psycopg_pool.ConnectionPool, job_id: str) -> list[str]:
    with pool.connection() as conn:
        rows = conn.execute("SELECT tenant_id FROM jobs WHERE job_id = %s", (job_id,)).fetchall()
    return sorted(r[0] for r in rows)


def component_tenants(pool: psycopg_pool.ConnectionPool, name: str) -> list[str]:
    with pool.connection() as conn:
        rows = conn.execute("SELECT tenant_id FROM components WHERE name = %s", (name,)).fetchall()
    return sorted(r[0] for r in rows)


def log_tenants(stack: LocalStack, marker: str) -> list[str]:
    """The tenant.id of each stored log record whose body holds ``marker``."""
    httpx.post(f"{stack.elasticsearch.admin_url}/b2c-logs*/_refresh", timeout=30)
    found = httpx.post(
        f"{stack.elasticsearch.admin_url}/b2c-logs*/_search",
        json={"size": 100, "query": {"match_phrase": {"Body": marker}}},
        timeout=10,
    ).json()
    hits = found.get("hits", {}).get("hits", [])
    return sorted(
        str(
            h["_source"].get("Attributes.tenant.id") or h["_source"].get("Resource.tenant.id") or ""
        )
        for h in hits
    )


def collector_counter(stack: LocalStack, name: str, **labels: str) -> float:
    """The sum of a collector's own counter over the series that have these labels."""
    text = httpx.get(
        f"http://127.0.0.1:{stack.layout.ports.collector_telemetry}/metrics", timeout=10
    ).text
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{name}\{{(.*)\}} (\S+)$", line)
        if match and all(f'{k}="{v}"' in match.group(1) for k, v in labels.items()):
            total += float(match.group(2))
    return total


def accepted(stack: LocalStack, secret: str, tenant: str) -> Callable[[], bool | None]:
    """A probe for eventually(): the collector lets this token in (it reloads every 2 s)."""

    def probe() -> bool | None:
        marker = f"warmup-{uuid.uuid4().hex[:8]}"
        answer = send(
            stack,
            "logs",
            logs([({"service.name": "erp-connector", "tenant.id": tenant}, [marker])]),
            f"Bearer {secret}",
            "http",
        )
        return True if answer.ok else None

    return probe


# --------------------------------------------------------------------------------------
# the door


@pytest.mark.parametrize("via", ["http", "grpc"])
def test_without_a_valid_token_nothing_of_any_signal_is_stored_and_each_refusal_is_counted(
    stack: LocalStack, pool: psycopg_pool.ConnectionPool, tenant: str, via: str
) -> None:
    expired = token(pool, Role.PROBE, [tenant], expires_in=timedelta(seconds=-30))
    store = TokenStore(pool)
    made, revoked = store.create(
        f"probe-{uuid.uuid4().hex[:6]}", Role.PROBE, [tenant], datetime.now(UTC)
    )
    eventually(accepted(stack, revoked, tenant), timeout=20, what="the new token known")
    store.revoke(made.id, datetime.now(UTC))
    eventually(
        lambda: None if accepted(stack, revoked, tenant)() else True,
        timeout=20,
        what="the revoked token refused",
    )
    viewer = token(pool, Role.VIEWER, [tenant])  # a token, but not a probe's
    cases = {
        "missing": None,
        "malformed": "Basic dXNlcjpwYXNz",
        "unknown": "Bearer b2c_not-a-token-of-ours",
        "expired": f"Bearer {expired}",
        "revoked": f"Bearer {revoked}",
        "not a probe": f"Bearer {viewer}",
    }
    reasons = {"missing", "malformed", "unknown", "expired"}
    before = {r: collector_counter(stack, "b2c_ingest_refused_requests", reason=r) for r in reasons}
    marker = uuid.uuid4().hex[:10]
    resource = {"service.name": "erp-connector", "tenant.id": tenant}
    for case, authorization in cases.items():
        label = f"{marker}-{case.replace(' ', '-')}"
        for signal, message in (
            ("traces", spans_request([(resource, [job(f"refused-{label}")])])),
            ("metrics", health([(resource, f"refused-{label}")])),
            ("logs", logs([(resource, [f"refused {label}"])])),
        ):
            answer = send(stack, signal, message, authorization, via)
            # 401 / UNAUTHENTICATED: permanent, the sender does not retry for ever
            assert answer.http == 401 or answer.grpc_code == grpc.StatusCode.UNAUTHENTICATED, (
                case,
                signal,
                answer,
            )

    # a request with a good token, sent after them, is stored: the refused ones had
    # their chance to arrive and did not
    good = f"accepted-{marker}"
    assert send(
        stack,
        "traces",
        spans_request([(resource, [job(good)])]),
        probe_auth(stack)["Authorization"],
        via,
    ).ok
    eventually(lambda: job_tenants(pool, good) or None, what="the accepted job")
    for case in cases:
        label = f"{marker}-{case.replace(' ', '-')}"
        assert job_tenants(pool, f"refused-{label}") == [], case
        assert component_tenants(pool, f"refused-{label}") == [], case
    assert log_tenants(stack, marker) == []

    after = {r: collector_counter(stack, "b2c_ingest_refused_requests", reason=r) for r in reasons}
    # three signals each; revoked and not-a-probe tokens are unknown to the door
    assert after["missing"] - before["missing"] >= 3
    assert after["malformed"] - before["malformed"] >= 3
    assert after["unknown"] - before["unknown"] >= 9
    assert after["expired"] - before["expired"] >= 3


# --------------------------------------------------------------------------------------
# what a token may write


@pytest.mark.parametrize("via", ["http", "grpc"])
def test_a_tenant_token_writes_only_its_tenant_and_the_rest_of_the_batch_is_stored(
    stack: LocalStack, pool: psycopg_pool.ConnectionPool, via: str
) -> None:
    mine, theirs = f"t-a-{uuid.uuid4().hex[:8]}", f"t-b-{uuid.uuid4().hex[:8]}"
    made, secret = TokenStore(pool).create(
        f"probe-{uuid.uuid4().hex[:6]}", Role.PROBE, [mine], datetime.now(UTC)
    )
    eventually(accepted(stack, secret, mine), timeout=20, what="the new token known")
    marker = uuid.uuid4().hex[:10]
    as_mine = {"service.name": "erp-connector", "tenant.id": mine}
    as_theirs = {"service.name": "erp-connector", "tenant.id": theirs}
    no_tenant = {"service.name": "erp-connector"}
    answers = [
        send(
            stack,
            "traces",
            spans_request(
                [
                    (
                        as_mine,
                        [job(f"{marker}-mine"), job(f"{marker}-smuggled", **{"tenant.id": theirs})],
                    ),
                    (as_theirs, [job(f"{marker}-theirs")]),
                    (no_tenant, [job(f"{marker}-untold")]),
                ]
            ),
            f"Bearer {secret}",
            via,
        ),
        send(
            stack,
            "metrics",
            health(
                [
                    (as_mine, f"{marker}-mine"),
                    (as_theirs, f"{marker}-theirs"),
                    (no_tenant, f"{marker}-untold"),
                ]
            ),
            f"Bearer {secret}",
            via,
        ),
        send(
            stack,
            "logs",
            logs(
                [
                    (as_mine, [f"{marker} mine"]),
                    (as_theirs, [f"{marker} theirs"]),
                    (no_tenant, [f"{marker} untold"]),
                ]
            ),
            f"Bearer {secret}",
            via,
        ),
    ]
    # the request is accepted: what the token may write is stored
    assert all(a.ok for a in answers), answers

    eventually(lambda: job_tenants(pool, f"{marker}-untold") or None, what="the untold job")
    assert job_tenants(pool, f"{marker}-mine") == [mine]
    assert job_tenants(pool, f"{marker}-untold") == [
        mine
    ]  # a report without a tenant takes the token's
    assert job_tenants(pool, f"{marker}-theirs") == []
    assert job_tenants(pool, f"{marker}-smuggled") == []  # a span's own tenant.id is held too
    eventually(lambda: component_tenants(pool, f"{marker}-untold") or None, what="the health")
    assert component_tenants(pool, f"{marker}-mine") == [mine]
    assert component_tenants(pool, f"{marker}-theirs") == []
    eventually(
        lambda: log_tenants(stack, marker) if len(log_tenants(stack, marker)) == 2 else None,
        what="the logs",
    )
    assert log_tenants(stack, marker) == [mine, mine]
    # counted by signal, reason and token: the smuggled and their span, their data
    # point, their log record
    counted = {
        signal: collector_counter(
            stack,
            "b2c_ingest_rejected_items",
            signal=signal,
            reason="tenant_not_allowed",
            token=made.id,
        )
        for signal in ("traces", "metrics", "logs")
    }
    assert counted == {"traces": 2, "metrics": 1, "logs": 1}


def test_a_token_bound_to_a_service_cannot_write_as_another(
    stack: LocalStack, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    secret = token(pool, Role.PROBE, [tenant], services=["erp-connector"])
    eventually(accepted(stack, secret, tenant), timeout=20, what="the new token known")
    marker = uuid.uuid4().hex[:10]
    answer = send(
        stack,
        "traces",
        spans_request(
            [
                ({"service.name": "erp-connector"}, [job(f"{marker}-erp")]),
                ({"service.name": "pim-connector"}, [job(f"{marker}-pim")]),
                ({}, [job(f"{marker}-nameless")]),
            ]
        ),
        f"Bearer {secret}",
        "grpc",
    )
    assert answer.ok, answer
    eventually(lambda: job_tenants(pool, f"{marker}-erp") or None, what="the erp job")
    assert job_tenants(pool, f"{marker}-pim") == []
    assert job_tenants(pool, f"{marker}-nameless") == []
    assert collector_counter(stack, "b2c_ingest_rejected_items", reason="service_not_allowed") >= 2


def test_a_token_of_several_tenants_needs_each_record_to_say_whose(
    stack: LocalStack, pool: psycopg_pool.ConnectionPool
) -> None:
    a, b = f"t-a-{uuid.uuid4().hex[:8]}", f"t-b-{uuid.uuid4().hex[:8]}"
    secret = token(pool, Role.PROBE, [a, b])
    eventually(accepted(stack, secret, a), timeout=20, what="the new token known")
    marker = uuid.uuid4().hex[:10]
    answer = send(
        stack,
        "traces",
        spans_request(
            [
                (
                    {"service.name": "erp-connector"},
                    [
                        job(f"{marker}-a", **{"tenant.id": a}),
                        job(f"{marker}-b", **{"tenant.id": b}),
                        job(f"{marker}-which"),
                    ],
                )
            ]
        ),
        f"Bearer {secret}",
        "http",
    )
    assert answer.ok, answer
    eventually(lambda: job_tenants(pool, f"{marker}-b") or None, what="the job of b")
    assert job_tenants(pool, f"{marker}-a") == [a]
    assert job_tenants(pool, f"{marker}-which") == []


# --------------------------------------------------------------------------------------
# SDKs with a token


def test_the_probes_library_reports_with_its_token(
    stack: LocalStack, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    secret = token(pool, Role.PROBE, [tenant], services=["erp-connector"])
    eventually(accepted(stack, secret, tenant), timeout=20, what="the new token known")
    probes = Probes(
        ProbeSettings(
            endpoint=f"http://127.0.0.1:{stack.layout.ports.otlp_grpc}",
            service_name="erp-connector",
            token=secret,
        )
    )
    try:
        job_id = f"probes-{uuid.uuid4()}"
        with probes.job_run("ERP_SYNC", job_id=job_id):
            pass
    finally:
        probes.shutdown()
    # no tenant given: the token's
    eventually(lambda: job_tenants(pool, job_id) or None, what="the probes' job")
    assert job_tenants(pool, job_id) == [tenant]


def test_the_opentelemetry_js_sdk_reports_with_its_standard_headers_setting(
    stack: LocalStack, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    if not (JS_CLIENT / "node_modules" / "@opentelemetry").is_dir():
        pytest.fail("run `npm ci --prefix tests/otel_js_client` (scripts/test.sh does)")
    secret = token(pool, Role.PROBE, [tenant])
    eventually(accepted(stack, secret, tenant), timeout=20, what="the new token known")

    def report(job_id: str, headers: str | None) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")} | {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{stack.layout.ports.otlp_http}",
            "OTEL_SERVICE_NAME": "node-erp",
            "B2C_JOB_ID": job_id,
        }
        if headers is not None:
            env["OTEL_EXPORTER_OTLP_HEADERS"] = headers
        return subprocess.run(
            ["node", str(JS_CLIENT / "report.mjs")],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    with_token, without = f"js-{uuid.uuid4()}", f"js-{uuid.uuid4()}"
    done = report(with_token, f"authorization=Bearer {secret}")
    assert done.returncode == 0, done.stdout + done.stderr
    refused = report(without, None)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert json.loads(refused.stdout.strip().splitlines()[-1]) == {
        "code": 1,
        "error": "401 Unauthorized",
    }
    eventually(lambda: job_tenants(pool, with_token) or None, what="the JS SDK's job")
    assert job_tenants(pool, with_token) == [tenant]
    assert job_tenants(pool, without) == []


# --------------------------------------------------------------------------------------
# the rate limit


class SlowCollector(Collector):
    """The stack's collector part with a rate limit of 50 items/s (burst 50), exporting
    to the test stack's processor and Elasticsearch."""

    def __init__(self, layout: StackLayout, stack: LocalStack) -> None:
        super().__init__(
            layout,
            stack.processor_token,
            stack.logs_index,
            ingest_auth_dsn=stack.postgres.ingest_auth_dsn,
            es_credentials=stack.elasticsearch.collector_credentials,
            rate_per_s=50,
            burst=50,
        )
        self._upstream = stack.layout.ports

    def env(self) -> dict[str, str]:
        return {
            **super().env(),
            "B2C_PROCESSOR_ENDPOINT": f"127.0.0.1:{self._upstream.processor_grpc}",
            "B2C_ES_ENDPOINT": f"http://127.0.0.1:{self._upstream.elasticsearch}",
        }


def _free_ports() -> Ports:
    return free_ports(
        range(23000, 33000, 1000),
        "otlp_grpc",
        "otlp_http",
        "collector_health",
        "collector_telemetry",
        "collector_prometheus_exporter",
    )


@pytest.fixture(scope="module")
def slow_collector(
    stack: LocalStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SlowCollector]:
    layout = StackLayout(home=tmp_path_factory.mktemp("slow-collector"), ports=_free_ports())
    part = SlowCollector(layout, stack)
    supervisor = Supervisor(layout, [part])
    try:
        supervisor.start(part, print)
        yield part
    finally:
        supervisor.down(print)


def test_a_token_over_its_rate_is_told_to_retry_later_and_then_let_in(
    stack: LocalStack,
    slow_collector: SlowCollector,
    pool: psycopg_pool.ConnectionPool,
    tenant: str,
) -> None:
    secret, other = token(pool, Role.PROBE, [tenant]), token(pool, Role.PROBE, [tenant])
    ports = slow_collector.layout.ports
    url = f"http://127.0.0.1:{ports.otlp_http}/v1/traces"

    def post(job_id: str, spans: int, secret: str) -> httpx.Response:
        resource = {"service.name": "erp-connector"}
        body = spans_request([(resource, [job(f"{job_id}-{i}") for i in range(spans)])])
        return httpx.post(
            url,
            content=body.SerializeToString(),
            headers={"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {secret}"},
            timeout=10,
        )

    marker = uuid.uuid4().hex[:8]
    first = eventually(
        lambda: answer if (answer := post(f"{marker}-a", 200, secret)).status_code == 200 else None,
        timeout=20,
        what="the new token known to the slow collector",
    )
    assert first.status_code == 200  # 200 items on a credit of 50: let in, 150 in debt (3 s)
    over = post(f"{marker}-b", 1, secret)
    assert over.status_code == 429, over.text
    assert int(over.headers["Retry-After"]) >= 1
    # another token has its own bucket
    assert post(f"{marker}-c", 1, other).status_code == 200
    # over gRPC: RESOURCE_EXHAUSTED, which SDKs retry after the delay
    with grpc.insecure_channel(f"127.0.0.1:{ports.otlp_grpc}") as channel:
        export = channel.unary_unary(_GRPC_PATHS["traces"], None, None)
        with pytest.raises(grpc.RpcError) as refused:
            export(
                spans_request(
                    [({"service.name": "erp-connector"}, [job(f"{marker}-d")])]
                ).SerializeToString(),
                timeout=10,
                metadata=(("authorization", f"Bearer {secret}"),),
            )
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "over its rate" in (refused.value.details() or "")
    # once the debt is paid the token is let in again, and nothing it was told to
    # resend is stored twice or lost: the refused request was not taken
    time.sleep(int(over.headers["Retry-After"]) + 0.5)
    again = eventually(
        lambda: answer if (answer := post(f"{marker}-b", 1, secret)).status_code == 200 else None,
        timeout=10,
        what="the token let in again",
    )
    assert again.status_code == 200
    eventually(lambda: job_tenants(pool, f"{marker}-b-0") or None, what="the resent job")
    assert job_tenants(pool, f"{marker}-d") == []
