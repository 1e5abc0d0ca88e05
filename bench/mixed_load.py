"""Jobs, logs and metric points through the real collector at the same time: what is
stored of each, and what each part of the stack spends.

A deployment sends the three together: job-state spans spread over a job's run (as
``bench/job_spans.py --spread`` sends them: a job's four reports in requests about a
second apart), log records (as ``bench/log_throughput.py``) and connected-service
checks (as ``bench/metric_points.py``: two points a check, every service once a
second). This offers them together for ``--seconds`` at the given rates, waits until
everything is stored (or nothing new came for ``--stall`` seconds), and prints for
each kind: offered per second, refused at the door (a request the collector answered
with an error: a real client would send it again), stored per second, loss (accepted
but not stored), duplicates, and the CPU seconds of
each part of the stack over the whole run (``bench/stack_cpu.py``'s counting).

    uv run b2c stack up
    uv run python bench/mixed_load.py --home .b2c-test --port-offset 1000 \\
        --job-rate 10000 --log-rate 10000 --metric-rate 5000

Duplicates: a job is one row (primary key) and a report one timeline row (the unique
key ``job_changes_report``), a check one row of ``service_checks`` (its primary key),
so for those a redelivery cannot store twice and the check is that the counts equal
what was sent; log records have no key, so records found beyond those sent are
duplicates. The log records carry a time ``--days-ago`` days back and land in that
day's index (refused when it already holds documents, deleted at the end).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from b2c_monitoring.stack.local import LocalStack, default_layout

sys.path.insert(0, str(Path(__file__).parent))
import job_spans  # the spread job reports, their senders and the stored counts
import log_throughput  # the log records, their senders and the Elasticsearch count
import metric_points  # the service checks, their sender and the stored count
import otlp_send
from stack_cpu import StackCpu


@dataclass
class Kind:
    """One kind of telemetry in the run: what was sent, and how storing it went."""

    name: str
    unit: str
    count: Callable[[], int]  # stored so far
    offered: int  # in the requests built
    sent: int = 0  # in the requests the collector accepted
    refused_requests: int = 0
    send_seconds: float = 0.0
    stored: int = 0
    last_change: float = field(default_factory=time.monotonic)

    def poll(self) -> None:
        found = self.count()
        if found != self.stored:
            self.stored, self.last_change = found, time.monotonic()

    @property
    def done(self) -> bool:
        return self.stored >= self.sent


def _in_thread(kind: Kind, started: float, send: Callable[[], tuple[int, int]]) -> threading.Thread:
    def run() -> None:
        kind.sent, kind.refused_requests = send()
        kind.send_seconds = time.monotonic() - started

    return threading.Thread(target=run, name=f"send-{kind.name}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--job-rate", type=float, default=10_000.0, help="job-state spans/s")
    parser.add_argument("--log-rate", type=float, default=10_000.0, help="log records/s")
    parser.add_argument("--metric-rate", type=int, default=5_000, help="metric points/s")
    parser.add_argument("--senders", type=int, default=2, help="sender threads for jobs, for logs")
    parser.add_argument("--jobs-per-request", type=int, default=100)
    parser.add_argument("--logs-per-request", type=int, default=500)
    parser.add_argument("--days-ago", type=int, default=9)
    parser.add_argument("--wait", type=float, default=900.0, help="max seconds to wait for storage")
    parser.add_argument(
        "--stall", type=float, default=120.0, help="give up after this long without progress"
    )
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--port-offset", type=int, default=None)
    args = parser.parse_args()

    stack = LocalStack(default_layout(args.home, args.port_offset))
    with otlp_send.own_tokens(stack, [f"mixed-{kind}" for kind in KINDS]) as tokens:
        return run_mixed(args, stack, dict(zip(KINDS, tokens, strict=True)))


# each kind from services of a token of its own: the door's rate limit is a token's
KINDS: Final = ("jobs", "logs", "metrics")


def run_mixed(
    args: argparse.Namespace, stack: LocalStack, tokens: dict[str, otlp_send.Metadata]
) -> int:
    endpoint, _ = otlp_send.target(stack)
    base = stack.elasticsearch.admin_url
    telemetry = stack.collector.endpoints()["telemetry"]
    empty = log_throughput.empty_day(stack, args.days_ago)
    if empty is None:
        return 2
    day, index = empty

    run = uuid.uuid4().hex[:8]
    job_tenant, check_tenant = f"bench-{run}", f"bench-checks-{run}"
    plan = job_spans.schedule(
        args.job_rate, args.seconds, args.senders, args.jobs_per_request, spread=True
    )
    job_requests = [
        job_spans.prebuild(job_tenant, run, w, plan.per_worker, args.jobs_per_request, plan.lag)
        for w in range(args.senders)
    ]
    log_per_sender = max(
        1, round(args.log_rate * args.seconds / args.logs_per_request / args.senders)
    )
    log_interval = args.logs_per_request * args.senders / args.log_rate
    log_requests = log_throughput.build(
        run, args.senders, log_per_sender, args.logs_per_request, int(day.timestamp() * 1e9)
    )
    services = max(1, args.metric_rate // metric_points.POINTS_PER_CHECK)
    check_requests = metric_points.build(check_tenant, services, args.seconds)
    print(
        f"built: {sum(map(len, job_requests))} job requests (a job reporting every "
        f"{plan.lag} requests), {sum(map(len, log_requests))} log requests, "
        f"{len(check_requests)} metric requests of {services} checks",
        flush=True,
    )

    url = stack.postgres.url
    points_per_request = services * metric_points.POINTS_PER_CHECK
    timeline = Kind(
        "job reports",
        "spans",
        lambda: job_spans.timeline_rows(url, job_tenant),
        sum(p.spans for requests in job_requests for p in requests),
    )
    finished = Kind(
        "jobs finished",
        "jobs",
        lambda: job_spans.stored(url, job_tenant)[1],
        sum(p.jobs_finished for requests in job_requests for p in requests),
    )
    logs = Kind(
        "log records",
        "records",
        lambda: log_throughput.count(base, index, run),
        args.logs_per_request * sum(map(len, log_requests)),
    )
    points = Kind(
        "metric points",
        "points",
        lambda: metric_points.POINTS_PER_CHECK * metric_points.stored_checks(url, check_tenant),
        points_per_request * len(check_requests),
    )
    kinds = (timeline, finished, logs, points)

    def send_jobs() -> tuple[int, int]:
        sent = job_spans.send_all(endpoint, tokens["jobs"], job_requests, plan.interval)
        finished.sent = sent.jobs
        return sent.spans, sent.failed_requests

    def send_logs() -> tuple[int, int]:
        sent = log_throughput.send_all(
            endpoint, tokens["logs"], log_requests, args.logs_per_request, log_interval
        )
        return sent.records, sent.failed_requests

    def send_checks() -> tuple[int, int]:
        refused = metric_points.send_seconds(endpoint, tokens["metrics"], check_requests)
        return points_per_request * (len(check_requests) - refused), refused

    refused_before = log_throughput.refused(telemetry)
    meter = StackCpu(stack.layout.home)
    started = time.monotonic()
    threads = [
        _in_thread(timeline, started, send_jobs),
        _in_thread(logs, started, send_logs),
        _in_thread(points, started, send_checks),
    ]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        meter.sample()
        time.sleep(1.0)
    finished.send_seconds = timeline.send_seconds
    sending = time.monotonic() - started
    print(f"sending ended after {sending:.1f}s (load {os.getloadavg()[0]:.1f})", flush=True)

    deadline = time.monotonic() + args.wait
    while True:
        for kind in kinds:
            kind.poll()
        meter.sample()
        if all(k.done for k in kinds) or time.monotonic() > deadline:
            break
        if time.monotonic() - max(k.last_change for k in kinds) > args.stall:
            break  # nothing new anywhere: the rest is lost
        time.sleep(1.0)
    es_refused = log_throughput.refused(telemetry) - refused_before
    load = os.getloadavg()

    print(f"{args.seconds} s offered; load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")
    ok = True
    for kind in kinds:
        elapsed = kind.last_change - started
        missing = max(0, kind.sent - kind.stored)
        duplicates = max(0, kind.stored - kind.sent)
        ok = ok and missing == 0 and duplicates == 0 and kind.refused_requests == 0
        print(
            f"  {kind.name:14s} offered {kind.offered:>9,} {kind.unit} "
            f"({kind.offered / max(kind.send_seconds, 1e-9):>6,.0f}/s), refused at the door "
            f"{kind.offered - kind.sent:,} ({kind.refused_requests} requests); of the "
            f"{kind.sent:,} accepted stored {kind.stored:,} ({kind.stored / max(elapsed, 1e-9):,.0f}/s "
            f"end to end, the last {elapsed - kind.send_seconds:.1f}s after its sending ended); "
            f"missing {missing:,}, duplicates {duplicates:,}"
        )
    print(f"  documents refused by Elasticsearch (collector's counter): {es_refused:.0f}")
    totals = meter.totals()
    print(f"CPU seconds over {time.monotonic() - started:.0f}s (all kinds together):")
    for label, cpu in sorted(totals.items(), key=lambda item: -item[1]):
        if cpu >= 0.05:
            print(f"  {label:20s} {cpu:7.1f} CPU-s")
    log_throughput.es("DELETE", f"{base}/{index}")
    return 0 if ok and es_refused == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
