"""The Celery integration's cost per task: no-op tasks run eagerly in this process
(Celery's own task machinery and its prerun/success/postrun signals; no broker), with
and without ``instrument_celery``. Prints µs of CPU (``process_time``: every thread of
the process, so the batch processor's export thread is counted) and bytes allocated
per task (``tracemalloc``, a separate pass).

Exporter setups, each behind the probes' real ``BatchSpanProcessor``:

- ``noop``: an exporter that drops every batch (the probe's own cost);
- ``memory``: the SDK's ``InMemorySpanExporter`` (keeps every span: its bytes are the
  exporter's, not the probe's);
- ``otlp``: OTLP/gRPC to a real collector (``--endpoint``, ``--token``; the test stack's
  by default when its credentials are found): the probe plus protobuf encoding and
  gRPC in the export thread.

``signals-only`` connects no-op receivers to the same Celery signals: the floor that
Celery's signal dispatch itself costs any signal-based integration. Runs alternate
(plain, then each setup) ``--rounds`` times; the medians are printed.

    uv run python bench/celery_probe.py [--tasks 10000] [--rounds 3] [--setups noop,memory,otlp]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import tracemalloc
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from celery import Celery, signals
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from b2c_monitoring.contract import JobState
from b2c_monitoring.probes import Probes, ProbeSettings
from b2c_monitoring.probes._jobs import JobIdentity, emit_report
from b2c_monitoring.probes.celery import instrument_celery
from b2c_monitoring.processors.jobs import Scalar
from b2c_monitoring.stack.base import Ports

ROOT = Path(__file__).resolve().parent.parent
_SIGNALS = (
    signals.before_task_publish,
    signals.task_prerun,
    signals.task_success,
    signals.task_failure,
    signals.task_retry,
    signals.task_revoked,
    signals.task_postrun,
)


class NoopExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def _app() -> tuple[Celery, Any]:
    app = Celery("bench", broker="memory://", backend="cache+memory://")
    app.conf.task_always_eager = True
    app.conf.task_store_eager_result = False

    @app.task  # type: ignore[untyped-decorator]
    def noop() -> None:
        return None

    return app, noop


def _measure(noop: Any, tasks: int, memory: bool) -> float:
    for _ in range(200):
        noop.apply()
    if not memory:
        start = time.process_time()
        for _ in range(tasks):
            noop.apply()
        return (time.process_time() - start) / tasks * 1e6
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(tasks):
        noop.apply()
    peak = tracemalloc.get_traced_memory()[1] - before
    tracemalloc.stop()
    return peak / tasks


def run(setup: str, tasks: int, *, memory: bool, endpoint: str, token: str | None) -> float:
    app, noop = _app()
    undo: Callable[[], None] = lambda: None  # noqa: E731
    if setup == "signals-only":

        def receiver(**_: Any) -> None:
            pass

        for signal in _SIGNALS:
            signal.connect(receiver, weak=False)

        def undo() -> None:
            for signal in _SIGNALS:
                signal.disconnect(receiver)

    elif setup != "plain":
        exporter: SpanExporter | None = {"noop": NoopExporter, "memory": InMemorySpanExporter}.get(
            setup, lambda: None
        )()
        settings = ProbeSettings(
            endpoint=endpoint,
            service_name="bench-celery",
            tenant_id=f"bench-{uuid.uuid4().hex[:8]}",
            token=token,
            max_queue_size=20_000,
        )
        probes = Probes(settings, span_exporter=exporter)
        monitor = instrument_celery(app, settings, keep_args=False, probes_factory=lambda: probes)

        def undo() -> None:
            monitor.uninstall()
            probes.shutdown(10.0)
            if probes.stats.dropped or probes.stats.failed:
                print(f"  {setup}: {probes.stats.dropped} dropped, {probes.stats.failed} failed")

    try:
        return _measure(noop, tasks, memory)
    finally:
        undo()


def report_cost(reports: int = 20_000) -> float:
    """µs of CPU of one job report alone (``emit_report``, no Celery), no-op exporter."""
    settings = ProbeSettings(service_name="bench", tenant_id="bench", token="unused")  # noqa: S106 - no-op exporter
    probes = Probes(settings, span_exporter=NoopExporter())
    job = JobIdentity.checked("ERP_SYNC", "bench-job", "bench", 1, None)
    parent = Context()
    metadata: dict[str, Scalar] = {"celery.task": "bench.noop", "celery.worker": "w@host"}
    try:
        for _ in range(500):
            emit_report(probes._emitter, job, JobState.RUNNING, parent=parent, metadata=metadata)
        start = time.process_time()
        for _ in range(reports):
            emit_report(probes._emitter, job, JobState.RUNNING, parent=parent, metadata=metadata)
        return (time.process_time() - start) / reports * 1e6
    finally:
        probes.shutdown(5.0)


def _stack_defaults() -> tuple[str, str | None]:
    home = Path(os.environ.get("B2C_TEST_HOME") or ROOT / ".b2c-test")
    credentials = home / "credentials.json"
    token = json.loads(credentials.read_text())["probeToken"] if credentials.exists() else None
    ports = Ports(int(os.environ.get("B2C_TEST_PORT_OFFSET", "1000")))
    return f"http://127.0.0.1:{ports.otlp_grpc}", token


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--setups", default="signals-only,noop,memory,otlp")
    endpoint, token = _stack_defaults()
    parser.add_argument("--endpoint", default=endpoint)
    parser.add_argument("--token", default=token)
    args = parser.parse_args()
    setups = ["plain", *args.setups.split(",")]
    cpu: dict[str, list[float]] = {s: [] for s in setups}
    for _ in range(args.rounds):
        for setup in setups:
            cpu[setup].append(
                run(setup, args.tasks, memory=False, endpoint=args.endpoint, token=args.token)
            )
    plain = statistics.median(cpu["plain"])
    report = statistics.median(report_cost() for _ in range(args.rounds))
    print(f"one job report alone (emit_report, no-op exporter): {report:.1f} us CPU")
    print(f"{args.tasks} no-op tasks a run, {args.rounds} rounds, medians")
    print(f"  plain (no integration): {plain:.1f} us CPU a task")
    for setup in setups[1:]:
        us = statistics.median(cpu[setup])
        bytes_ = run(setup, args.tasks, memory=True, endpoint=args.endpoint, token=args.token)
        print(
            f"  {setup:>12}: {us:.1f} us CPU a task, +{us - plain:.1f} us "
            f"({(us - plain) / plain * 100:.0f} % of the task's own), "
            f"{bytes_:.0f} B peak a task"
        )


if __name__ == "__main__":
    main()
