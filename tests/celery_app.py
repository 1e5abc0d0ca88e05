"""The Celery app the Celery tests run in a real worker (prefork): plain task code, no
b2c calls inside the tasks but ``progress_steps``' celery-progress idiom. Configured
from the environment the test gives the worker (``B2C_TEST_CELERY_*``)."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from typing import Any

from celery import Celery
from celery.schedules import crontab

from b2c_monitoring.probes import ProbeSettings
from b2c_monitoring.probes.celery import instrument_celery

_redis = os.environ.get("B2C_TEST_CELERY_REDIS", "redis://127.0.0.1:6379/0")
app = Celery("b2c_test_celery", broker=_redis, backend=_redis)
app.conf.update(
    worker_hijack_root_logger=False,
    task_acks_late=False,
    broker_connection_retry_on_startup=True,
    beat_schedule={
        "nightly-sync": {
            "task": "tests.celery_app.add",
            "schedule": timedelta(minutes=5),
            "args": (1, 2),
        }
    },
)
if os.environ.get("B2C_TEST_CELERY_BEAT_EVERY_MINUTE") == "1":
    # the missed-run test: a crontab entry a minute, registered with a short grace
    app.conf.beat_schedule = {
        "erp-every-minute": {
            "task": "tests.celery_app.add",
            "schedule": crontab(minute="*"),
            "args": (1, 2),
        }
    }

if os.environ.get("B2C_TEST_CELERY_INSTRUMENT", "1") == "1":
    instrument_celery(
        app,
        ProbeSettings(
            endpoint=os.environ.get("B2C_TEST_CELERY_OTLP", "http://127.0.0.1:4317"),
            token=os.environ.get("B2C_TEST_CELERY_INGEST_TOKEN"),
            service_name=os.environ.get("B2C_TEST_CELERY_SERVICE", "celery-test"),
            tenant_id=os.environ.get("B2C_TEST_CELERY_TENANT"),
            export_interval=0.2,
        ),
        control_url=os.environ.get("B2C_TEST_CELERY_API"),
        token=os.environ.get("B2C_TEST_CELERY_PROBE_TOKEN"),
        job_types={"tests.celery_app.add": "ERP_SYNC"},
        tenant_argument="tenant",
        poll_wait_s=1.0,
        schedule_grace=timedelta(seconds=int(os.environ.get("B2C_TEST_CELERY_GRACE_S", "300"))),
    )


if os.environ.get("B2C_TEST_CELERY_OTEL") == "1":
    # the zero-code path: only opentelemetry-instrumentation-celery, no b2c library
    from celery.signals import worker_process_init

    @worker_process_init.connect(weak=False)
    def _trace(**_: Any) -> None:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from opentelemetry.instrumentation.celery import CeleryInstrumentor
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(
            resource=Resource.create(
                {
                    "service.name": os.environ.get("B2C_TEST_CELERY_SERVICE", "celery-otel"),
                    "tenant.id": os.environ.get("B2C_TEST_CELERY_TENANT", ""),
                }
            )
        )
        exporter = OTLPSpanExporter(
            endpoint=os.environ["B2C_TEST_CELERY_OTLP"],
            insecure=True,
            headers={"authorization": f"Bearer {os.environ['B2C_TEST_CELERY_INGEST_TOKEN']}"},
        )
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=200))
        trace.set_tracer_provider(provider)
        CeleryInstrumentor().instrument()  # type: ignore[no-untyped-call]


@app.task
def add(x: int, y: int, tenant: str | None = None) -> int:
    return x + y


@app.task
def boom(message: str) -> None:
    raise ValueError(message)


@app.task
def slow(seconds: float, token: str = "") -> str:
    time.sleep(seconds)
    return "slept"


@app.task(bind=True)
def progress_steps(self: Any, steps: int) -> int:
    for step in range(1, steps + 1):
        self.update_state(state="PROGRESS", meta={"current": step, "total": steps})
        time.sleep(0.3)
    return steps


@app.task(bind=True, max_retries=1, default_retry_delay=0)
def flaky(self: Any) -> str:
    if self.request.retries == 0:
        raise self.retry(exc=ConnectionError("PIM answered 503"))
    return "ok"
