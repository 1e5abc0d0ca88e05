"""Steady load through a stack's real collector while one of its parts fails, and the
count of what was stored against what the collector acknowledged.

Used by ``tests/test_faults.py`` (short, bounded) and ``bench/faults.py`` (long, with
figures). The sender is raw OTLP gRPC: each job reports four times a second apart
(pending, running 30 %, running 70 %, succeeded), every request of its own records
whether the collector answered OK, and a request that was not answered OK is not
sent again (what the collector refused is not its to keep). Optional log records flow
beside, one request a second.

A fault is a function of the stack that breaks a part and returns when it is mended;
the load runs before, during and after it. Then ``wait_stored`` waits until every
acknowledged report and log record is stored (or a deadline) and ``count`` says how
many were lost or stored twice.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
import psycopg
from elasticsearch import Elasticsearch
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import (
    LogRecord,
    ResourceLogs,
    ScopeLogs,
    SeverityNumber,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from b2c_monitoring.stack.local import LocalStack

REPORTS = (("pending", None), ("running", 30), ("running", 70), ("succeeded", None))
# what each report's timeline row says (its own state and progress)
ROWS = (("pending", 0), ("running", 30), ("running", 70), ("succeeded", 100))
_SPANS_PER_REQUEST = 100


def _kv(key: str, value: str | int) -> KeyValue:
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


@dataclass
class Ledger:
    """What the sender sent and what the collector acknowledged, by report."""

    tenant: str
    sent_reports: int = 0
    acked: set[tuple[str, int]] = field(default_factory=set)  # (job id, step)
    sent_logs: int = 0
    acked_logs: set[str] = field(default_factory=set)
    refused_requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def acked_final_jobs(self) -> set[str]:
        return {job for job, step in self.acked if step == len(REPORTS) - 1}


class Load:
    """``rate`` spans a second (a quarter of them new jobs) and ``logs_per_s`` log
    records, from a thread, until ``stop``."""

    def __init__(self, stack: LocalStack, rate: int, logs_per_s: int = 0) -> None:
        self.stack = stack
        self.rate = rate
        self.logs_per_s = logs_per_s
        self.ledger = Ledger(tenant=f"fault-{uuid.uuid4().hex[:10]}")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fault-load", daemon=True)
        self._metadata = (("authorization", f"Bearer {stack.probe_token}"),)

    def start(self) -> Load:
        self._thread.start()
        return self

    def stop(self) -> Ledger:
        self._stop.set()
        self._thread.join()
        return self.ledger

    def _export(self, call: Callable[..., object], request: object) -> bool:
        try:
            call(request, timeout=5, metadata=self._metadata)
        except grpc.RpcError:
            return False
        return True

    def _run(self) -> None:
        ledger = self.ledger
        resource = Resource(
            attributes=[_kv("service.name", "fault-load"), _kv("tenant.id", ledger.tenant)]
        )
        new_per_s = max(1, self.rate // len(REPORTS))
        started: list[tuple[int, int]] = []  # (second, first job number) of each cohort
        channel = grpc.insecure_channel(f"127.0.0.1:{self.stack.layout.ports.otlp_grpc}")
        traces = trace_service_pb2_grpc.TraceServiceStub(channel).Export
        logs = logs_service_pb2_grpc.LogsServiceStub(channel).Export
        tick, second, next_job, next_log = time.monotonic(), 0, 0, 0
        try:
            # after stop, the jobs already begun report to their end (so a fault
            # near the end still has complete jobs)
            while not self._stop.is_set() or any(second - s < len(REPORTS) for s, _ in started):
                if not self._stop.is_set():
                    started.append((second, next_job))
                    next_job += new_per_s
                due = [(s, first) for s, first in started if 0 <= second - s < len(REPORTS)]
                reports = [
                    (f"{ledger.tenant}-{n}", second - s)
                    for s, first in due
                    for n in range(first, first + new_per_s)
                ]
                now = time.time_ns()
                for start in range(0, len(reports), _SPANS_PER_REQUEST):
                    part = reports[start : start + _SPANS_PER_REQUEST]
                    spans = [_span(job, step, now) for job, step in part]
                    request = ExportTraceServiceRequest(
                        resource_spans=[
                            ResourceSpans(resource=resource, scope_spans=[ScopeSpans(spans=spans)])
                        ]
                    )
                    ok = self._export(traces, request)
                    with ledger.lock:
                        ledger.sent_reports += len(part)
                        if ok:
                            ledger.acked.update(part)
                        else:
                            ledger.refused_requests += 1
                if self.logs_per_s and not self._stop.is_set():
                    ids = [
                        f"{ledger.tenant}-log-{n}"
                        for n in range(next_log, next_log + self.logs_per_s)
                    ]
                    next_log += self.logs_per_s
                    records = [
                        LogRecord(
                            time_unix_nano=now,
                            severity_text="INFO",
                            severity_number=SeverityNumber.SEVERITY_NUMBER_INFO,
                            body=AnyValue(string_value=f"fault load record {i}"),
                            attributes=[_kv("fault.record.id", i)],
                        )
                        for i in ids
                    ]
                    request_logs = ExportLogsServiceRequest(
                        resource_logs=[
                            ResourceLogs(
                                resource=resource, scope_logs=[ScopeLogs(log_records=records)]
                            )
                        ]
                    )
                    ok = self._export(logs, request_logs)
                    with ledger.lock:
                        ledger.sent_logs += len(ids)
                        if ok:
                            ledger.acked_logs.update(ids)
                        else:
                            ledger.refused_requests += 1
                second += 1
                tick += 1.0
                time.sleep(max(0.0, tick - time.monotonic()))
        finally:
            channel.close()


def _span(job_id: str, step: int, now: int) -> Span:
    state, progress = REPORTS[step]
    attrs = [
        _kv("scheduler.job.id", job_id),
        _kv("scheduler.job.type", "ERP_SYNC"),
        _kv("scheduler.job.state", state),
    ]
    if progress is not None:
        attrs.append(_kv("scheduler.job.progress_percent", progress))
    return Span(
        trace_id=os.urandom(16),
        span_id=os.urandom(8),
        name=f"job ERP_SYNC {state}",
        start_time_unix_nano=now - 1000,
        end_time_unix_nano=now,
        attributes=attrs,
    )


@dataclass(frozen=True)
class Count:
    """Stored against acknowledged: reports (timeline rows), final jobs, log records."""

    acked_reports: int
    missing_rows: int
    duplicate_rows: int
    acked_final_jobs: int
    jobs_not_final: int
    acked_logs: int
    missing_logs: int
    duplicate_logs: int

    @property
    def complete(self) -> bool:
        return self.missing_rows == 0 and self.jobs_not_final == 0 and self.missing_logs == 0


def count(stack: LocalStack, ledger: Ledger) -> Count:
    with psycopg.connect(stack.postgres.url) as conn:
        rows = Counter(
            (job, status, progress)
            for job, status, progress in conn.execute(
                "SELECT job_id, status, progress_percent FROM job_changes WHERE tenant_id = %s",
                (ledger.tenant,),
            )
        )
        statuses: dict[str, str] = dict(
            conn.execute(
                "SELECT job_id, status FROM jobs WHERE tenant_id = %s", (ledger.tenant,)
            ).fetchall()
        )
    with ledger.lock:
        acked = set(ledger.acked)
        acked_logs = set(ledger.acked_logs)
    expected = {(job, *ROWS[step]) for job, step in acked}
    final = {job for job, step in acked if step == len(REPORTS) - 1}
    logs: Counter[str] = _log_ids(stack, ledger.tenant) if acked_logs else Counter()
    return Count(
        acked_reports=len(acked),
        missing_rows=sum(1 for key in expected if rows[key] == 0),
        duplicate_rows=sum(n - 1 for n in rows.values() if n > 1),
        acked_final_jobs=len(final),
        jobs_not_final=sum(1 for job in final if statuses.get(job) != "succeeded"),
        acked_logs=len(acked_logs),
        missing_logs=sum(1 for i in acked_logs if logs[i] == 0),
        duplicate_logs=sum(n - 1 for n in logs.values() if n > 1),
    )


def _log_ids(stack: LocalStack, tenant: str) -> Counter[str]:
    es = Elasticsearch(stack.elasticsearch.admin_url, request_timeout=30)
    try:
        pattern = f"{stack.logs_index}-*"
        es.indices.refresh(index=pattern, ignore_unavailable=True, allow_no_indices=True)
        found: Counter[str] = Counter()
        after: list[object] | None = None
        while True:
            body: dict[str, object] = {
                "size": 5000,
                "query": {"term": {"Resource.tenant.id": tenant}},
                "_source": ["Attributes.fault.record.id"],
                "sort": [{"_doc": "asc"}],
            }
            if after is not None:
                body["search_after"] = after
            hits = es.search(index=pattern, body=body)["hits"]["hits"]
            if not hits:
                return found
            for hit in hits:
                source = hit["_source"]
                value = source.get("Attributes.fault.record.id")
                if value is None:
                    value = source.get("Attributes", {}).get("fault.record.id")
                found[str(value)] += 1
            after = hits[-1]["sort"]
    finally:
        es.close()


def wait_stored(stack: LocalStack, ledger: Ledger, timeout: float) -> tuple[Count, float]:
    """The count once everything acknowledged is stored (or at ``timeout``), and the
    seconds it took."""
    start = time.monotonic()
    while True:
        result = count(stack, ledger)
        if result.complete or time.monotonic() - start > timeout:
            return result, time.monotonic() - start
        time.sleep(1.0)


# the faults: each breaks a part for ``seconds`` and mends it


def _say(line: str) -> None:
    print(f"[faults] {line}", flush=True)


def kill_processor(stack: LocalStack, seconds: float) -> None:
    """(a) kill -9 of the processor's whole process group (front, workers, the
    resource tracker), then a start."""
    pid = stack.supervisor.pid(stack.processor)
    assert pid is not None, "the processor is not running"
    os.killpg(os.getpgid(pid), signal.SIGKILL)
    time.sleep(seconds)
    stack.supervisor.start(stack.processor, _say)


def stop_postgres(stack: LocalStack, seconds: float) -> None:
    """(b) Postgres stopped, then started."""
    stack.supervisor.stop(stack.postgres, _say)
    time.sleep(seconds)
    stack.supervisor.start(stack.postgres, _say)


def stop_elasticsearch(stack: LocalStack, seconds: float) -> None:
    """(c) Elasticsearch stopped while logs flow, then started."""
    stack.supervisor.stop(stack.elasticsearch, _say)
    time.sleep(seconds)
    # its JVM took more than the default 120 s to start at load 16 (shared cores)
    stack.supervisor.start(stack.elasticsearch, _say, timeout=300)


def stop_collector_with_queue(stack: LocalStack, seconds: float) -> None:
    """(d) the processor stopped, so the collector's queue towards it fills; then the
    collector stopped with that queue on disk; both started again, the queue drains."""
    stack.supervisor.stop(stack.processor, _say)
    time.sleep(seconds / 2)
    stack.supervisor.stop(stack.collector, _say)
    time.sleep(seconds / 2)
    stack.supervisor.start(stack.collector, _say)
    stack.supervisor.start(stack.processor, _say)


def kill_collector(stack: LocalStack, seconds: float) -> None:
    """(e) kill -9 of the collector, then a start."""
    pid = stack.supervisor.pid(stack.collector)
    assert pid is not None, "the collector is not running"
    os.kill(pid, signal.SIGKILL)
    time.sleep(seconds)
    stack.supervisor.start(stack.collector, _say)


FAULTS: dict[str, Callable[[LocalStack, float], None]] = {
    "kill-processor": kill_processor,
    "stop-postgres": stop_postgres,
    "stop-elasticsearch": stop_elasticsearch,
    "stop-collector-with-queue": stop_collector_with_queue,
    "kill-collector": kill_collector,
}


@dataclass(frozen=True)
class Outcome:
    fault: str
    ledger: Ledger
    count: Count
    recover_seconds: float


def run_fault(
    stack: LocalStack,
    name: str,
    *,
    rate: int,
    before: float,
    fault_seconds: float,
    after: float,
    wait: float,
    logs_per_s: int = 0,
) -> Outcome:
    """Load, the fault, load again; then the count once stored. ``recover_seconds``:
    from the part mended to everything acknowledged stored."""
    load = Load(stack, rate, logs_per_s).start()
    try:
        time.sleep(before)
        FAULTS[name](stack, fault_seconds)
        mended = time.monotonic()
        time.sleep(after)
    finally:
        ledger = load.stop()
    result, _ = wait_stored(stack, ledger, wait)
    return Outcome(name, ledger, result, time.monotonic() - mended)
