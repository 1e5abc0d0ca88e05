"""The Celery app ``bench/celery_worker.py`` runs in a real prefork worker: one no-op
task that counts itself in Redis (the bench's clock stops at the count), instrumented
as ``B2C_BENCH_CELERY_SETUP`` says: ``plain`` (not at all), ``b2c`` (``instrument_celery``)
or ``otel`` (``opentelemetry-instrumentation-celery`` with the SDK's batch span processor
and OTLP/gRPC exporter, in each pool child: the standard tracing a Celery app may
already have, for comparison). ``B2C_BENCH_CELERY_EXPORT_INTERVAL`` sets the span export
interval (0.2 s, the probes' default)."""

from __future__ import annotations

import os

import redis
from celery import Celery, signals
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.celery import CeleryInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from b2c_monitoring.probes import ProbeSettings
from b2c_monitoring.probes.celery import instrument_celery

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
if _setup == "b2c":
    instrument_celery(
        app,
        ProbeSettings(
            endpoint=os.environ["B2C_BENCH_CELERY_OTLP"],
            token=os.environ["B2C_BENCH_CELERY_TOKEN"],
            service_name="bench-celery-worker",
            tenant_id=os.environ["B2C_BENCH_CELERY_TENANT"],
            max_queue_size=20_000,
            export_interval=_interval,
        ),
        keep_args=False,
    )
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
