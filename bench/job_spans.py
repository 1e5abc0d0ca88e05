"""Job-state spans through the real collector into Postgres: throughput and loss.

Sends job-state reports as OTLP gRPC to the collector of a running local stack
(each job: pending, running 30 %, running 70 %, succeeded), then waits until every
job is stored in its final state, and prints the figures.

By default a job's four reports travel in one request, so the processor inserts each
job once. ``--spread`` sends them about a second apart, in different requests, as
real jobs report over their run: the processor then inserts a job and updates it
three times, the heavier path.

    uv run b2c stack up
    uv run python bench/job_spans.py --seconds 60 --rate 20000

``--rate`` is the offered load (spans per second); the requests are serialized before
the clock starts. The figures: spans offered per second, spans stored per second
while sending (does the pipeline keep up?), spans stored per second end to end (from
the first send to the last job stored), and loss (jobs missing or not in their final
state when the wait ends).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import psycopg
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from b2c_monitoring.stack.local import LocalStack, default_layout

sys.path.insert(0, str(Path(__file__).parent))
import otlp_send  # the paced sending loop the throughput benches share

REPORTS = (("pending", None), ("running", 30), ("running", 70), ("succeeded", None))


def _kv(key: str, value: str | int) -> KeyValue:
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _job_spans(job_id: str, n: int, steps: Iterable[int], now: int) -> list[Span]:
    trace_id = n.to_bytes(16, "big")
    spans = []
    for step in steps:
        state, progress = REPORTS[step]
        attrs = [
            _kv("scheduler.job.id", job_id),
            _kv("scheduler.job.type", "ERP_SYNC"),
            _kv("scheduler.job.state", state),
        ]
        if progress is not None:
            attrs.append(_kv("scheduler.job.progress_percent", progress))
        end = now + step * 1000
        spans.append(
            Span(
                trace_id=trace_id,
                span_id=os.urandom(8),
                name=f"job ERP_SYNC {state}",
                start_time_unix_nano=end - 500,
                end_time_unix_nano=end,
                attributes=attrs,
            )
        )
    return spans


def request(
    tenant: str, run: str, parts: Iterable[tuple[int, int, Iterable[int]]]
) -> ExportTraceServiceRequest:
    """One export request: for each part ``(first_job, jobs, steps)``, those reports of
    those jobs."""
    now = time.time_ns()
    spans = [
        span
        for first_job, jobs, steps in parts
        for n in range(first_job, first_job + jobs)
        for span in _job_spans(f"{run}-{n}", n, steps, now)
    ]
    resource = Resource(attributes=[_kv("service.name", "bench"), _kv("tenant.id", tenant)])
    return ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(resource=resource, scope_spans=[ScopeSpans(spans=spans)])]
    )


def batch(tenant: str, first_job: int, jobs: int, run: str) -> ExportTraceServiceRequest:
    """Every report of ``jobs`` jobs in one request."""
    return request(tenant, run, [(first_job, jobs, range(len(REPORTS)))])


@dataclass
class Sent:
    jobs: int = 0
    spans: int = 0
    failed_requests: int = 0


@dataclass(frozen=True)
class Prepared:
    data: bytes
    spans: int
    jobs_finished: int  # jobs whose last report is in this request


def prebuild(
    tenant: str, run: str, worker: int, requests: int, jobs_per_request: int, lag: int
) -> list[Prepared]:
    """Serialized requests made before the clock starts: the sender then costs little CPU
    on this same machine, and the figures are the pipeline's, not the load generator's.

    ``lag`` 0: request ``k`` holds every report of chunk ``k`` (``jobs_per_request``
    jobs). Otherwise it holds report ``s`` of chunk ``k - s * lag``: a job's reports are
    ``lag`` requests apart, and the requests hold as many spans as with ``lag`` 0,
    but for the first and last few.
    """
    first = worker * 10_000_000
    steps = len(REPORTS)
    built = []
    for k in range(requests + (steps - 1) * lag):
        parts = [
            (
                first + (k - s * lag) * jobs_per_request,
                jobs_per_request,
                [s] if lag else range(steps),
            )
            for s in (range(steps) if lag else [0])
            if 0 <= k - s * lag < requests
        ]
        spans = sum(jobs * len(list(reported)) for _, jobs, reported in parts)
        finished = jobs_per_request if 0 <= k - (steps - 1) * lag < requests else 0
        built.append(Prepared(request(tenant, run, parts).SerializeToString(), spans, finished))
    return built


def sender(
    endpoint: str,
    metadata: otlp_send.Metadata,
    requests: list[Prepared],
    interval: float,
    sent: Sent,
    lock: threading.Lock,
) -> None:
    def accepted(i: int) -> None:
        with lock:
            sent.jobs += requests[i].jobs_finished
            sent.spans += requests[i].spans

    data = [prepared.data for prepared in requests]
    refused = otlp_send.paced(endpoint, metadata, otlp_send.TRACES, data, interval, accepted)
    with lock:
        sent.failed_requests += refused


def stored(database_url: str, tenant: str) -> tuple[int, int]:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'succeeded' AND progress_percent = 100) "
            "FROM jobs WHERE tenant_id = %s",
            (tenant,),
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


@dataclass(frozen=True)
class Schedule:
    """How ``--rate`` spans/s for ``--seconds`` are cut into each sender's requests."""

    per_worker: int  # chunks of jobs each sender starts
    interval: float  # seconds between two requests of one sender
    lag: int  # requests between a job's reports; 0: all four in one request


def schedule(
    rate: float, seconds: float, workers: int, jobs_per_request: int, spread: bool
) -> Schedule:
    spans_per_request = jobs_per_request * len(REPORTS)
    per_worker = max(1, round(rate * seconds / spans_per_request / workers))
    interval = spans_per_request * workers / rate
    # about a second between a job's reports
    lag = max(1, round(1.0 / interval)) if spread else 0
    return Schedule(per_worker, interval, lag)


def send_all(
    endpoint: str,
    metadata: otlp_send.Metadata,
    prepared: list[list[Prepared]],
    interval: float,
) -> Sent:
    """Each list of requests by a sender thread of its own, ``interval`` apart."""
    sent, lock = Sent(), threading.Lock()
    otlp_send.in_threads(
        sender, ((endpoint, metadata, requests, interval, sent, lock) for requests in prepared)
    )
    return sent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=20_000.0, help="offered spans/s")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--jobs-per-request", type=int, default=100)
    parser.add_argument(
        "--spread", action="store_true", help="a job's reports in requests ~1 s apart"
    )
    parser.add_argument("--wait", type=float, default=300.0, help="max seconds to wait for storage")
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--port-offset", type=int, default=None)
    args = parser.parse_args()

    stack = LocalStack(default_layout(args.home, args.port_offset))
    endpoint, metadata = otlp_send.target(stack)
    run = uuid.uuid4().hex[:8]
    tenant = f"bench-{run}"
    spans_per_request = args.jobs_per_request * len(REPORTS)
    plan = schedule(args.rate, args.seconds, args.workers, args.jobs_per_request, args.spread)
    lag = plan.lag
    print(
        f"building {plan.per_worker * args.workers} requests of {spans_per_request} spans"
        f"{f', a job reporting every {lag} requests' if lag else ''} ...",
        flush=True,
    )
    prepared = [
        prebuild(tenant, run, w, plan.per_worker, args.jobs_per_request, lag)
        for w in range(args.workers)
    ]
    started = time.monotonic()
    sent = send_all(endpoint, metadata, prepared, plan.interval)
    send_seconds = time.monotonic() - started
    stored_when_sent = stored(stack.postgres.url, tenant)[1]
    print(
        f"sent {sent.spans} spans ({sent.jobs} jobs) in {send_seconds:.1f}s: "
        f"{sent.spans / send_seconds:,.0f} spans/s offered; {sent.failed_requests} requests refused"
    )
    print(f"stored while sending: {stored_when_sent * len(REPORTS) / send_seconds:,.0f} spans/s")

    deadline = time.monotonic() + args.wait
    total, done = stored(stack.postgres.url, tenant)
    while done < sent.jobs and time.monotonic() < deadline:
        time.sleep(0.5)
        total, done = stored(stack.postgres.url, tenant)
    elapsed = time.monotonic() - started
    lost = sent.jobs - done
    print(
        f"stored {done}/{sent.jobs} jobs in their final state ({total} rows) after {elapsed:.1f}s"
    )
    print(
        f"end-to-end: {done * len(REPORTS) / elapsed:,.0f} spans/s stored; "
        f"loss: {lost} jobs ({100 * lost / max(sent.jobs, 1):.3f} %)"
    )
    # every report moved its job's status or progress: one timeline row each
    changes = timeline_rows(stack.postgres.url, tenant)
    print(f"timeline: {changes} changes stored for {sent.spans} reports sent")
    return 0 if lost == 0 and changes == sent.spans else 1


def timeline_rows(database_url: str, tenant: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM job_changes WHERE tenant_id = %s", (tenant,)
        ).fetchone()
    assert row is not None
    return int(row[0])


if __name__ == "__main__":
    sys.exit(main())
