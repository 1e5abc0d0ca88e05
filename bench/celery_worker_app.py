"""The Celery app ``bench/celery_worker.py`` runs in a real prefork worker: one no-op
task that counts itself in Redis (the bench's clock stops at the count), instrumented
as ``B2C_BENCH_CELERY_SETUP`` says: ``plain`` (not at all), ``b2c`` (``instrument_celery``),
``b2c-noop`` (the same, its spans dropped at the exporter: the handlers' cost without
the export's), ``b2c-timed`` (the same, its handlers timed in each child), ``signals`` (no-op receivers on the integration's signals: Celery's
dispatch floor) or ``otel`` (``opentelemetry-instrumentation-celery`` with the SDK's batch span processor
and OTLP/gRPC exporter, in each pool child: the standard tracing a Celery app may
already have, for comparison). ``B2C_BENCH_CELERY_EXPORT_INTERVAL`` sets the span export
interval (0.2 s, the probes' default)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import redis
from celery import Celery, signals
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.celery import CeleryInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from b2c_monitoring.probes import Probes, ProbeSettings
from b2c_monitoring.probes.celery import CeleryMonitor, instrument_celery

_url = os.environ["B2C_BENCH_CELERY_REDIS"]
app = Celery("b2c_bench", broker=_url)
app.conf.update(
    worker_hijack_root_logger=False,
    task_ignore_result=True,
    worker_prefetch_multiplier=64,
    broker_connection_retry_on_startup=True,
)
_counter = redis.Redis.from_url(_url)

_setup = os.environ.get("B2C_BENCH_CELERY_SETUP", "plain")
_interval = float(os.environ.get("B2C_BENCH_CELERY_EXPORT_INTERVAL", "0.2"))


def _time_in_each_child(monitor: CeleryMonitor) -> None:
    """Times the two per-task handlers (and what they call) with the thread's CPU clock
    in each child; at the child's end the µs a task go to B2C_BENCH_CELERY_TIMES_DIR.
    A handed-off report is made in another thread: its ``_request_identity`` is timed
    there."""
    spent: dict[str, int] = {"tasks": 0}

    def timed(name: str, call: Callable[..., object]) -> Callable[..., object]:
        spent[name] = 0

        def run(*args: object, **kwargs: object) -> object:
            start = time.thread_time_ns()
            try:
                return call(*args, **kwargs)
            finally:
                spent[name] += time.thread_time_ns() - start

        return run

    for signal, name, handler in (
        (signals.task_prerun, "prerun", monitor._on_prerun),
        (signals.task_postrun, "postrun", monitor._on_postrun),
    ):
        signal.disconnect(handler)
        signal.connect(timed(name, handler), weak=False)
    for method in ("_request_identity", "_send", "probes"):
        setattr(monitor, method, timed(method, getattr(monitor, method)))

    def count(**_: object) -> None:
        spent["tasks"] += 1

    def write(**_: object) -> None:
        tasks = spent["tasks"] or 1
        path = Path(os.environ["B2C_BENCH_CELERY_TIMES_DIR"]) / f"{os.getpid()}.json"
        path.write_text(json.dumps({k: v / tasks / 1000 for k, v in spent.items()}))

    signals.task_postrun.connect(count, weak=False)
    signals.worker_process_shutdown.connect(write, weak=False)


class _DropSpans(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


if _setup.startswith("b2c"):
    _settings = ProbeSettings(
        endpoint=os.environ["B2C_BENCH_CELERY_OTLP"],
        token=os.environ["B2C_BENCH_CELERY_TOKEN"],
        service_name="bench-celery-worker",
        tenant_id=os.environ["B2C_BENCH_CELERY_TENANT"],
        max_queue_size=20_000,
        export_interval=_interval,
    )
    _monitor = instrument_celery(
        app,
        _settings,
        keep_args=False,
        probes_factory=(lambda: Probes(_settings, span_exporter=_DropSpans()))
        if _setup == "b2c-noop"
        else None,
    )
    if _setup == "b2c-timed":
        _time_in_each_child(_monitor)
elif _setup == "signals":

    def _nothing(**_: object) -> None:
        pass

    # the signals instrument_celery connects: Celery's dispatch to them is the floor
    for _signal in (
        signals.before_task_publish,
        signals.task_prerun,
        signals.task_failure,
        signals.task_retry,
        signals.task_revoked,
        signals.task_postrun,
    ):
        _signal.connect(_nothing, weak=False)
elif _setup == "otel":

    @signals.worker_process_init.connect(weak=False)  # type: ignore[untyped-decorator]
    def _trace_child(**_: object) -> None:
        # as the instrumentation's documentation says: per child, after the fork
        provider = TracerProvider(resource=Resource.create({"service.name": "bench-otel"}))
        exporter = OTLPSpanExporter(
            endpoint=os.environ["B2C_BENCH_CELERY_OTLP"],
            insecure=True,
            headers={"authorization": f"Bearer {os.environ['B2C_BENCH_CELERY_TOKEN']}"},
        )
        provider.add_span_processor(
            BatchSpanProcessor(
                exporter, max_queue_size=20_000, schedule_delay_millis=_interval * 1000
            )
        )
        CeleryInstrumentor().instrument(tracer_provider=provider)  # type: ignore[no-untyped-call]


@app.task(name="bench.noop")  # type: ignore[untyped-decorator]
def noop(run: str) -> None:
    _counter.incr(f"bench:done:{run}")
