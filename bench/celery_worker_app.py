"""The Celery app ``bench/celery_worker.py`` runs in a real prefork worker: one no-op
task that counts itself in Redis (the bench's clock stops at the count), with or
without ``instrument_celery`` (``B2C_BENCH_CELERY_INSTRUMENT``);
``B2C_BENCH_CELERY_EXPORT_INTERVAL`` sets the probes' span export interval (0.2 s)."""

from __future__ import annotations

import os

import redis
from celery import Celery

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

if os.environ.get("B2C_BENCH_CELERY_INSTRUMENT") == "1":
    instrument_celery(
        app,
        ProbeSettings(
            endpoint=os.environ["B2C_BENCH_CELERY_OTLP"],
            token=os.environ["B2C_BENCH_CELERY_TOKEN"],
            service_name="bench-celery-worker",
            tenant_id=os.environ["B2C_BENCH_CELERY_TENANT"],
            max_queue_size=20_000,
            export_interval=float(os.environ.get("B2C_BENCH_CELERY_EXPORT_INTERVAL", "0.2")),
        ),
        keep_args=False,
    )


@app.task(name="bench.noop")  # type: ignore[untyped-decorator]
def noop(run: str) -> None:
    _counter.incr(f"bench:done:{run}")
