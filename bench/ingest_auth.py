"""What the door costs: OTLP ingestion with authentication on against off, in one run.

Starts two collectors of our own from the stack's binary, side by side, and feeds
them the same prepared requests in alternating rounds:

- ``on``: the stack's configuration (``collector-config/collector.yaml``): the
  b2c_ingest_auth extension on both receivers and b2c_tenant_guard first in every
  pipeline, with a probe token bound to one tenant (so the guard checks and fills in
  tenants), and its rate limit set out of reach (it is counted, never hit);
- ``off``: the same configuration with the auth lines and the guard taken out.

The spans are ordinary spans, not job-state reports: the first processor after the
guard drops them, so both collectors do the same receive, decode, check and drop,
and nothing downstream (the processor, Postgres) is in the measurement. Each round
sends for ``--seconds`` with ``--workers`` senders at full speed; the figures are the
spans accepted per second and the collector's CPU per 100,000 spans (steadier than
the wall clock on a shared machine), the median of the rounds, and on/off ratios.

    uv run b2c stack up
    uv run python bench/ingest_auth.py --rounds 5 --seconds 10
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import grpc
import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from b2c_monitoring.auth import Role
from b2c_monitoring.stack.base import Ports, StackLayout, repo_root
from b2c_monitoring.stack.collector import CONFIG, collector_binary_path, collector_env
from b2c_monitoring.stack.local import LocalStack, default_layout
from b2c_monitoring.storage.db import make_pool
from b2c_monitoring.storage.tokens import TokenStore

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def without_auth(config: str) -> str:
    """collector.yaml with the door taken out: no auth on the receivers, no guard."""
    config = re.sub(r"\n[ \t]+auth:\n[ \t]+authenticator: b2c_ingest_auth", "", config)
    config = config.replace("b2c_tenant_guard, ", "").replace(", b2c_ingest_auth ]", " ]")
    if "b2c_tenant_guard," in config or "authenticator:" in config:
        raise SystemExit("collector.yaml changed shape: update without_auth()")
    return config


def request(spans: int) -> bytes:
    now = time.time_ns()
    attrs = [KeyValue(key="http.route", value=AnyValue(string_value="/orders"))]
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(
                    attributes=[
                        KeyValue(key="service.name", value=AnyValue(string_value="erp-connector"))
                    ]
                ),
                scope_spans=[
                    ScopeSpans(
                        spans=[
                            Span(
                                trace_id=os.urandom(16),
                                span_id=os.urandom(8),
                                name="GET /orders",
                                start_time_unix_nano=now - 1000,
                                end_time_unix_nano=now,
                                attributes=attrs,
                            )
                            for _ in range(spans)
                        ]
                    )
                ],
            )
        ]
    ).SerializeToString()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Instance:
    name: str
    process: subprocess.Popen[bytes]
    grpc_endpoint: str


def start(
    name: str, config: Path, layout: StackLayout, stack: LocalStack, binary: Path
) -> Instance:
    env = {
        **collector_env(
            layout,
            stack.processor_token,
            stack.logs_index,
            stack.postgres.ingest_auth_dsn,
            stack.elasticsearch.collector_credentials,
            rate_per_s=1e12,
        ),
        # export to the stack's own processor and Elasticsearch (nothing reaches them)
        "B2C_PROCESSOR_ENDPOINT": f"127.0.0.1:{stack.layout.ports.processor_grpc}",
        "B2C_ES_ENDPOINT": f"http://127.0.0.1:{stack.layout.ports.elasticsearch}",
        "GOGC": "300",
        "GOMEMLIMIT": "800MiB",
    }
    (layout.home / "collector.log").parent.mkdir(parents=True, exist_ok=True)
    out = (layout.home / "collector.log").open("wb")
    process = subprocess.Popen(
        [str(binary), "--config", str(config)], env=env, stdout=out, stderr=subprocess.STDOUT
    )
    health = f"http://127.0.0.1:{layout.ports.collector_health}/"
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise SystemExit(f"collector {name} exited; see {layout.home / 'collector.log'}")
        try:
            if httpx.get(health, timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"collector {name} did not become healthy")
        time.sleep(0.2)
    return Instance(name, process, f"127.0.0.1:{layout.ports.otlp_grpc}")


def round_of(
    instance: Instance,
    data: bytes,
    per_request: int,
    metadata: tuple[tuple[str, str], ...],
    workers: int,
    seconds: float,
) -> tuple[float, float, int]:
    """Spans accepted per second, CPU seconds per 100k spans, failed requests."""
    accepted = [0] * workers
    failed = [0] * workers
    stop_at = time.monotonic() + seconds

    def send(w: int) -> None:
        with grpc.insecure_channel(instance.grpc_endpoint) as channel:
            export = channel.unary_unary(EXPORT, None, None)
            while time.monotonic() < stop_at:
                try:
                    export(data, timeout=30, metadata=metadata)
                    accepted[w] += per_request
                except grpc.RpcError:
                    failed[w] += 1

    cpu_before = cpu_seconds(instance.process.pid)
    started = time.monotonic()
    threads = [threading.Thread(target=send, args=(w,)) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - started
    cpu = cpu_seconds(instance.process.pid) - cpu_before
    total = sum(accepted)
    return total / wall, cpu / max(total, 1) * 100_000, sum(failed)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--spans-per-request", type=int, default=200)
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--port-offset", type=int, default=None)
    args = parser.parse_args()

    stack = LocalStack(default_layout(args.home, args.port_offset))
    if not all(s.healthy for s in stack.supervisor.status()):
        print("the stack is not running: uv run b2c stack up", file=sys.stderr)
        return 2
    binary = collector_binary_path(stack.layout)
    tenant = f"bench-auth-{uuid.uuid4().hex[:6]}"
    pool = make_pool(stack.postgres.url, max_size=1, name="bench-ingest-auth")
    pool.open(wait=True)
    try:
        _, secret = TokenStore(pool).create(
            f"bench-{tenant}", Role.PROBE, [tenant], datetime.now(UTC)
        )
    finally:
        pool.close()
    metadata = (("authorization", f"Bearer {secret}"),)

    base = stack.layout.ports.offset
    with tempfile.TemporaryDirectory(prefix="b2c-bench-auth-") as tmp:
        root = Path(tmp)
        config_on = repo_root() / CONFIG
        config_off = root / "collector-off.yaml"
        config_off.write_text(without_auth(config_on.read_text()))
        instances = {}
        for i, (name, config) in enumerate((("on", config_on), ("off", config_off))):
            layout = StackLayout(home=root / name, ports=Ports(offset=base + 20_000 + 100 * i))
            instances[name] = start(name, config, layout, stack, binary)
        try:
            time.sleep(3)  # the door's first token load, and both warmed by a round
            data = request(args.spans_per_request)
            for instance in instances.values():
                round_of(instance, data, args.spans_per_request, metadata, args.workers, 2.0)
            figures: dict[str, list[tuple[float, float, int]]] = {"on": [], "off": []}
            for r in range(args.rounds):
                order = ("on", "off") if r % 2 == 0 else ("off", "on")
                for name in order:
                    figures[name].append(
                        round_of(
                            instances[name],
                            data,
                            args.spans_per_request,
                            metadata,
                            args.workers,
                            args.seconds,
                        )
                    )
                print(
                    f"round {r + 1}: "
                    + ", ".join(
                        f"{n} {figures[n][-1][0]:,.0f} spans/s {figures[n][-1][1]:.3f} CPU s/100k"
                        for n in ("on", "off")
                    ),
                    flush=True,
                )
        finally:
            for instance in instances.values():
                instance.process.terminate()
                instance.process.wait(timeout=15)

    def median(name: str, i: int) -> float:
        return statistics.median(f[i] for f in figures[name])

    on_rate, off_rate = median("on", 0), median("off", 0)
    on_cpu, off_cpu = median("on", 1), median("off", 1)
    failed = sum(f[2] for fs in figures.values() for f in fs)
    print(
        f"\n{args.rounds} rounds of {args.seconds:.0f} s, {args.workers} senders, "
        f"{args.spans_per_request} spans per request (medians):"
    )
    print(
        f"  auth on:  {on_rate:,.0f} spans/s accepted, {on_cpu:.3f} collector CPU s per 100k spans"
    )
    print(
        f"  auth off: {off_rate:,.0f} spans/s accepted, {off_cpu:.3f} collector CPU s per 100k spans"
    )
    print(
        f"  on/off: throughput {on_rate / off_rate:.3f} ({(1 - on_rate / off_rate) * 100:+.1f} % lower), "
        f"CPU per span {on_cpu / off_cpu:.3f}"
    )
    print(f"  failed requests: {failed}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
