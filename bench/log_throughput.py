"""Log records through the real collector into Elasticsearch: throughput, loss, heap, disk.

Sends OTLP log records over gRPC to the collector of a running local stack at an
offered rate, waits until every record is searchable in Elasticsearch, and prints the
figures. The records look like a job's log (a ~120-character body, tenant, job id and
type, trace and span ids, six more attributes) and pass through every processor of
the logs pipeline (normalize, redaction, bounds, error patterns).

    uv run b2c stack up
    uv run python bench/log_throughput.py --seconds 30 --rate 10000

The records carry a time ``--days-ago`` days back (default 9), so they land in that
day's index of their own and the disk figure is that index's size; the bench refuses
to run when that index already holds documents, and deletes it at the end unless
``--keep``. The figures: records offered per second, records made searchable per
second while sending (after the first 5 s), how long after the last send the last
record became searchable, records stored per second end to end (first send to the
last record searchable: at most about seconds / (seconds + that lag) of the offered
rate, so offer more than the rate to be shown), loss (records sent minus found,
and documents Elasticsearch refused by the collector's own counter), Elasticsearch's
heap after the run (and its growth) and the index's disk size per million records,
after a refresh and after a force merge to one segment (extrapolated from the
records measured when fewer than a million were sent). ``--warmup N`` first sends N
seconds of records into the index of the day before and deletes it: a freshly started
Elasticsearch spends several times its steady CPU a record until its JIT has compiled
the indexing code (~1 million records).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from b2c_monitoring.stack.base import Part
from b2c_monitoring.stack.local import LocalStack, default_layout
from b2c_monitoring.storage.logs import daily_index

sys.path.insert(0, str(Path(__file__).parent))
import otlp_send  # the paced sending loop the throughput benches share

MESSAGES = (
    "fetched page {n} of orders from enventa in {ms} ms",
    "order {n} mapped to ERP document SO-{n} with 14 lines, 2 discounts",
    "customer {n} has no VAT id; using the default tax class for DE",
    "retrying PUT https://erp.example/api/orders/{n} after 503 (attempt 2 of 5)",
)


def _kv(key: str, value: str | int) -> KeyValue:
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def batch(run: str, first: int, count: int, at_ns: int) -> bytes:
    records = []
    for n in range(first, first + count):
        job = n // 200  # 200 lines a job
        records.append(
            LogRecord(
                time_unix_nano=at_ns + n,
                severity_number=9 if n % 10 else 13,  # type: ignore[arg-type]
                severity_text="INFO" if n % 10 else "WARN",
                body=AnyValue(
                    string_value=f"{MESSAGES[n % len(MESSAGES)].format(n=n, ms=n % 900)} [{run}]"
                ),
                trace_id=os.urandom(16),
                span_id=os.urandom(8),
                attributes=[
                    _kv("bench.run", run),
                    _kv("scheduler.job.id", f"{run}-{job}"),
                    _kv("scheduler.job.type", "ERP_SYNC"),
                    _kv("erp.page", n % 50),
                    _kv("erp.order_id", f"SO-{n}"),
                    _kv("code.function", "sync_orders"),
                    _kv("thread.name", f"worker-{n % 4}"),
                ],
            )
        )
    resource = Resource(
        attributes=[
            _kv("service.name", "erp-connector"),
            _kv("service.instance.id", "bench-1"),
            _kv("tenant.id", f"bench-{run}"),
        ]
    )
    request = ExportLogsServiceRequest(
        resource_logs=[ResourceLogs(resource=resource, scope_logs=[ScopeLogs(log_records=records)])]
    )
    return request.SerializeToString()


@dataclass
class Sent:
    records: int = 0
    failed_requests: int = 0


def sender(
    endpoint: str,
    metadata: otlp_send.Metadata,
    requests: list[bytes],
    per_request: int,
    interval: float,
    sent: Sent,
    lock: threading.Lock,
) -> None:
    def accepted(_: int) -> None:
        with lock:
            sent.records += per_request

    refused = otlp_send.paced(endpoint, metadata, otlp_send.LOGS, requests, interval, accepted)
    with lock:
        sent.failed_requests += refused


def empty_day(stack: LocalStack, days_ago: int) -> tuple[datetime, str] | None:
    """A moment ``days_ago`` days back and that day's log index, which must hold no
    documents (the bench counts what it finds there); None, said on stderr, if it does."""
    day = datetime.now(UTC) - timedelta(days=days_ago)
    index = daily_index(stack.logs_index, day.date())
    existing = httpx.get(f"{stack.elasticsearch.admin_url}/{index}/_count", timeout=30)
    if existing.status_code == 200 and existing.json().get("count"):
        print(f"{index} already holds documents; choose another --days-ago", file=sys.stderr)
        return None
    return day, index


def send_all(
    endpoint: str,
    metadata: otlp_send.Metadata,
    prepared: list[list[bytes]],
    per_request: int,
    interval: float,
) -> Sent:
    sent, lock = Sent(), threading.Lock()
    otlp_send.in_threads(
        sender,
        (
            (endpoint, metadata, requests, per_request, interval, sent, lock)
            for requests in prepared
        ),
    )
    return sent


def sample_counts(
    base: str, index: str, run: str, done: threading.Event, out: list[tuple[float, int]]
) -> None:
    """(monotonic time, records searchable) about every second until ``done``."""
    while not done.wait(1.0):
        out.append((time.monotonic(), count(base, index, run)))


def steady_rate(samples: list[tuple[float, int]], started: float, skip: float) -> float | None:
    """Records made searchable per second while sending, leaving out the first ``skip``
    seconds (pipeline filling, the first refresh)."""
    kept = [(t, n) for t, n in samples if t - started >= skip]
    if len(kept) < 2 or kept[-1][0] <= kept[0][0]:
        return None
    return (kept[-1][1] - kept[0][1]) / (kept[-1][0] - kept[0][0])


def build(
    run: str, workers: int, per_worker: int, per_request: int, at_ns: int
) -> list[list[bytes]]:
    return [
        [
            batch(run, (w * per_worker + i) * per_request, per_request, at_ns)
            for i in range(per_worker)
        ]
        for w in range(workers)
    ]


def warm_up(
    base: str,
    endpoint: str,
    metadata: tuple[tuple[str, str], ...],
    index: str,
    at_ns: int,
    args: argparse.Namespace,
    interval: float,
) -> None:
    """Send ``--warmup`` seconds of records at the offered rate into an index of their
    own, wait until they are searchable and delete the index: a freshly started
    Elasticsearch runs its indexing code interpreted until the JIT has compiled it,
    and would be measured at several times its steady CPU per record."""
    run = uuid.uuid4().hex[:8]
    per_worker = max(1, round(args.rate * args.warmup / args.per_request / args.workers))
    sent = send_all(
        endpoint,
        metadata,
        build(run, args.workers, per_worker, args.per_request, at_ns),
        args.per_request,
        interval,
    )
    deadline = time.monotonic() + args.wait
    while count(base, index, run) < sent.records and time.monotonic() < deadline:
        time.sleep(0.5)
    es("DELETE", f"{base}/{index}")
    print(f"warm-up: {sent.records:,} records sent into {index} (deleted)")


def es(method: str, url: str, **kwargs: Any) -> Any:
    response = httpx.request(method, url, timeout=600, **kwargs)
    response.raise_for_status()
    return response.json()


def count(base: str, index: str, run: str) -> int:
    # the run's tenant: an explicitly mapped, indexed field (an unknown attribute such as
    # bench.run is a doc-values-only keyword, whose term query scans the index)
    query = {"query": {"term": {"Resource.tenant.id": f"bench-{run}"}}}
    found = httpx.post(f"{base}/{index}/_count", json=query, timeout=30)
    return int(found.json().get("count", 0)) if found.status_code == 200 else 0


def heap(base: str) -> tuple[int, int]:
    stats = es("GET", f"{base}/_nodes/stats/jvm")
    [node] = stats["nodes"].values()
    return int(node["jvm"]["mem"]["heap_used_in_bytes"]), int(
        node["jvm"]["mem"]["heap_max_in_bytes"]
    )


def store_bytes(base: str, index: str) -> int:
    # a node caches an index's store size for index.store.stats_refresh_interval (10s)
    time.sleep(11)
    stats = es("GET", f"{base}/{index}/_stats/store")
    return int(stats["indices"][index]["primaries"]["store"]["size_in_bytes"])


def refused(telemetry: str) -> float:
    total = 0.0
    for line in httpx.get(telemetry, timeout=10).text.splitlines():
        if (
            line.startswith("otelcol_elasticsearch_docs_processed{")
            and 'outcome="success"' not in line
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU of ``pid`` and its descendants (Elasticsearch's JVM is a child
    of its launcher): on a shared machine the CPU spent per record is steadier than
    the wall clock."""
    if pid is None:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    usage: dict[int, float] = {}
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        process = int(stat.parent.name)
        parents[process] = int(fields[1])
        usage[process] = (int(fields[11]) + int(fields[12])) / ticks
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += usage.get(current, 0.0)
        todo.extend(child for child, parent in parents.items() if parent == current)
    return total


def mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="at most 60")
    parser.add_argument("--rate", type=float, default=10_000.0, help="offered records/s")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--per-request", type=int, default=500)
    parser.add_argument("--days-ago", type=int, default=9)
    parser.add_argument(
        "--warmup",
        type=float,
        default=0.0,
        help="seconds of records sent first (into the index of --days-ago + 1, then deleted)",
    )
    parser.add_argument("--wait", type=float, default=300.0, help="max seconds to wait for ES")
    parser.add_argument("--keep", action="store_true", help="keep the bench's index")
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--port-offset", type=int, default=None)
    args = parser.parse_args()
    seconds = min(args.seconds, 60.0)

    stack = LocalStack(default_layout(args.home, args.port_offset))
    base = stack.elasticsearch.admin_url
    telemetry = stack.collector.endpoints()["telemetry"]
    endpoint, metadata = otlp_send.target(stack)
    empty = empty_day(stack, args.days_ago)
    if empty is None:
        return 2
    day, index = empty

    run = uuid.uuid4().hex[:8]
    per_worker = max(1, round(args.rate * seconds / args.per_request / args.workers))
    interval = args.per_request * args.workers / args.rate
    at_ns = int(day.timestamp() * 1e9)
    if args.warmup > 0:
        warm_day = day - timedelta(days=1)
        warm_index = daily_index(stack.logs_index, warm_day.date())
        existing = httpx.get(f"{base}/{warm_index}/_count", timeout=30)
        if existing.status_code == 200 and existing.json().get("count"):
            print(
                f"{warm_index} already holds documents; choose another --days-ago", file=sys.stderr
            )
            return 2
        warm_up(
            base, endpoint, metadata, warm_index, int(warm_day.timestamp() * 1e9), args, interval
        )
    print(f"building {per_worker * args.workers} requests of {args.per_request} records ...")
    prepared = build(run, args.workers, per_worker, args.per_request, at_ns)
    heap_before, heap_max = heap(base)
    refused_before = refused(telemetry)
    parts: dict[str, Part] = {"collector": stack.collector, "elasticsearch": stack.elasticsearch}
    pids = {name: stack.supervisor.pid(part) for name, part in parts.items()}
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}

    samples: list[tuple[float, int]] = []
    sampling = threading.Event()
    sampler = threading.Thread(target=sample_counts, args=(base, index, run, sampling, samples))
    started = time.monotonic()
    sampler.start()
    sent = send_all(endpoint, metadata, prepared, args.per_request, interval)
    send_seconds = time.monotonic() - started
    sampling.set()
    sampler.join()
    found_when_sent = count(base, index, run)
    print(
        f"sent {sent.records:,} records in {send_seconds:.1f}s: "
        f"{sent.records / send_seconds:,.0f} records/s offered; "
        f"{sent.failed_requests} requests refused by the collector"
    )
    print(f"searchable when the sending ended: {found_when_sent:,}")
    steady = steady_rate(samples, started, skip=5.0)
    if steady is not None:
        print(f"stored while sending (after the first 5 s): {steady:,.0f} records/s")

    deadline = time.monotonic() + args.wait
    found = last = found_when_sent
    last_change = time.monotonic()
    while found < sent.records and time.monotonic() < deadline:
        time.sleep(0.5)
        found = count(base, index, run)
        if found != last:
            last, last_change = found, time.monotonic()
        elif time.monotonic() - last_change > 60:
            break  # nothing new for a minute: the rest is lost
    elapsed = last_change - started if found else time.monotonic() - started
    lost = sent.records - found
    print(f"last record searchable {elapsed - send_seconds:.1f}s after the sending ended")
    print(
        f"end to end: {found:,}/{sent.records:,} records in {elapsed:.1f}s = "
        f"{found / elapsed:,.0f} records/s stored; loss: {lost} records; "
        f"documents refused by Elasticsearch: {refused(telemetry) - refused_before:.0f}"
    )

    cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
    print(
        "CPU per 100,000 records stored: "
        + ", ".join(f"{name} {100_000 * used / max(found, 1):.1f} s" for name, used in cpu.items())
        + f" (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )
    es("POST", f"{base}/{index}/_refresh")
    heap_after, _ = heap(base)
    size = store_bytes(base, index)
    es("POST", f"{base}/{index}/_forcemerge?max_num_segments=1")
    es("POST", f"{base}/{index}/_flush")
    merged = store_bytes(base, index)
    scale = 1_000_000 / max(found, 1)
    note = "" if found >= 1_000_000 else f" (extrapolated from {found:,})"
    print(
        f"Elasticsearch heap: {mib(heap_after)} used of {mib(heap_max)} after the run "
        f"({mib(heap_before)} before)"
    )
    print(
        f"disk per million records{note}: {mib(size * scale)} as written, "
        f"{mib(merged * scale)} force-merged ({size / max(found, 1):,.0f} / "
        f"{merged / max(found, 1):,.0f} bytes a record)"
    )
    if not args.keep:
        es("DELETE", f"{base}/{index}")
    return 0 if lost == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
