"""Connected-service checks through the real collector into Postgres: metric points per
second and what each costs (run it under ``bench/stack_cpu.py``).

Each check is two points of one service and instant (``connected_service.up`` and
``connected_service.check.duration``), the contract's shape; ``--services`` services of
one tenant report every second. The figures: points offered per second, points stored
per second end to end (from the first send until every check is a row of
``service_checks``), and how many checks were not stored when the wait ended.

    uv run python bench/stack_cpu.py --home .b2c-test/replicas -- uv run python \\
        bench/metric_points.py --home .b2c-test/replicas --port-offset 4600 --rate 4000
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

import psycopg
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    Gauge,
    Metric,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from b2c_monitoring.stack.local import LocalStack, default_layout

sys.path.insert(0, str(Path(__file__).parent))
import otlp_send  # the paced sending loop the throughput benches share

POINTS_PER_CHECK = 2


def _kv(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def second_of_checks(tenant: str, services: int, at_ns: int) -> bytes:
    """One check of every service at ``at_ns``, as one serialized request."""
    up, duration = [], []
    for n in range(services):
        attrs = [
            _kv("connected_service.name", f"svc-{n}"),
            _kv("connected_service.type", "ERP"),
        ]
        up.append(NumberDataPoint(attributes=attrs, time_unix_nano=at_ns, as_int=1))
        duration.append(NumberDataPoint(attributes=attrs, time_unix_nano=at_ns, as_double=0.05))
    metrics = [
        Metric(name="connected_service.up", gauge=Gauge(data_points=up)),
        Metric(
            name="connected_service.check.duration", unit="s", gauge=Gauge(data_points=duration)
        ),
    ]
    resource = Resource(attributes=[_kv("service.name", "bench-checks"), _kv("tenant.id", tenant)])
    return ExportMetricsServiceRequest(
        resource_metrics=[
            ResourceMetrics(resource=resource, scope_metrics=[ScopeMetrics(metrics=metrics)])
        ]
    ).SerializeToString()


def stored_checks(database_url: str, tenant: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM service_checks c JOIN services s ON s.id = c.service_id "
            "WHERE s.tenant_id = %s",
            (tenant,),
        ).fetchone()
    return int(row[0]) if row else 0


def build(tenant: str, services: int, seconds: int) -> list[bytes]:
    """A request a second: one check of every service, dated in the past so none is
    "in the future"."""
    first = time.time_ns() - (seconds + 5) * 10**9
    return [second_of_checks(tenant, services, first + s * 10**9) for s in range(seconds)]


def send_seconds(endpoint: str, metadata: otlp_send.Metadata, prepared: list[bytes]) -> int:
    """Send one request a second; the number of requests refused."""
    return otlp_send.paced(endpoint, metadata, otlp_send.METRICS, prepared, 1.0, lambda _: None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--rate", type=int, default=4000, help="offered points/s")
    parser.add_argument("--wait", type=float, default=300.0)
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--port-offset", type=int, default=None)
    args = parser.parse_args()

    stack = LocalStack(default_layout(args.home, args.port_offset))
    tenant = f"bench-checks-{uuid.uuid4().hex[:8]}"
    services = max(1, args.rate // POINTS_PER_CHECK)
    prepared = build(tenant, services, args.seconds)
    endpoint, metadata = otlp_send.target(stack)
    started = time.monotonic()
    refused = send_seconds(endpoint, metadata, prepared)
    sent_checks = services * (len(prepared) - refused)
    deadline = time.monotonic() + args.wait
    done = stored_checks(stack.postgres.url, tenant)
    while done < sent_checks and time.monotonic() < deadline:
        time.sleep(0.5)
        done = stored_checks(stack.postgres.url, tenant)
    elapsed = time.monotonic() - started
    points = done * POINTS_PER_CHECK
    print(
        f"sent {sent_checks * POINTS_PER_CHECK} points ({sent_checks} checks); {refused} requests refused"
    )
    print(f"stored {done}/{sent_checks} checks after {elapsed:.1f}s")
    print(
        f"end-to-end: {points / elapsed:,.0f} points/s stored; missing: {sent_checks - done} checks"
    )
    return 0 if done == sent_checks else 1


if __name__ == "__main__":
    sys.exit(main())
