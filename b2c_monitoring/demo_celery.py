"""The demo's Celery app: a real worker (prefork) with beat, reporting through
``instrument_celery`` with no b2c call inside the task code.

Run by the stack's ``celery-demo`` part (``stack/celery_demo.py``) as
``celery -A b2c_monitoring.demo_celery worker --beat``, configured from
``B2C_DEMO_CELERY_*`` (the broker, the collector, the probe token, the admin API).
Its beat entries register as job schedules of the demo tenants, so their missed runs
alert; ``b2c jobs retry`` and ``b2c jobs cancel`` reach its tasks.

- ``demo.erp.sync_orders`` (ERP_SYNC): progress with celery-progress' idiom,
  ``self.update_state(state="PROGRESS", meta={"current", "total"})``.
- ``demo.pim.import_products`` (PIM_IMPORT): fails now and then (the PIM answers 503)
  and retries itself once with ``self.retry``.
- ``demo.crm.export_contacts`` (CRM_EXPORT): a plain task.

Celery is a dev dependency of the checkout (``uv run`` has it): the demo runs from it.
"""

from __future__ import annotations

import os
import random
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

from celery import Celery, signals
from celery.schedules import crontab

from b2c_monitoring.probes import ProbeSettings
from b2c_monitoring.probes.celery import instrument_celery

SERVICE: Final = "celery-demo"
JOB_TYPES: Final = {
    "demo.erp.sync_orders": "ERP_SYNC",
    "demo.pim.import_products": "PIM_IMPORT",
    "demo.crm.export_contacts": "CRM_EXPORT",
}
# a share of PIM imports whose first attempt fails (the second succeeds)
_PIM_FAILURE_SHARE: Final = 0.3


def _env(name: str, default: str | None = None) -> str:
    value = os.environ.get(f"B2C_DEMO_CELERY_{name}", default)
    if value is None:
        raise RuntimeError(f"B2C_DEMO_CELERY_{name} is not set: start this app with b2c demo")
    return value


app = Celery(
    "b2c_demo",
    broker=_env("REDIS", "redis://127.0.0.1:6379/0"),
    backend=_env("REDIS", "redis://127.0.0.1:6379/0"),
)
# the tenants of the beat entries (the tests give tenants of their own)
_first, _second = (_env("TENANTS", "acme,globex").split(",") * 2)[:2]
app.conf.update(
    timezone="UTC",
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    result_expires=3600,
    beat_schedule={
        "erp-sync": {
            "task": "demo.erp.sync_orders",
            "schedule": timedelta(seconds=30),
            "args": (25,),
            "kwargs": {"tenant": _first},
        },
        "pim-import": {
            "task": "demo.pim.import_products",
            "schedule": crontab(minute="*"),
            "args": ("products.csv",),
            "kwargs": {"tenant": _second},
        },
        "crm-export": {
            "task": "demo.crm.export_contacts",
            "schedule": crontab(minute="*/2"),
            "kwargs": {"tenant": _first},
        },
    },
)

_ca_file = os.environ.get("B2C_DEMO_CELERY_CA_FILE") or None
monitor = instrument_celery(
    app,
    ProbeSettings(
        endpoint=_env("OTLP", "http://127.0.0.1:4317"),
        token=os.environ.get("B2C_DEMO_CELERY_TOKEN"),
        service_name=SERVICE,
        ca_file=_ca_file,
        export_interval=0.5,
    ),
    control_url=os.environ.get("B2C_DEMO_CELERY_API"),
    ca_file=_ca_file,
    job_types=JOB_TYPES,
    tenant_argument="tenant",
    schedule_grace=timedelta(seconds=30),
)


def _ready(**_: Any) -> None:
    # the stack part's health check: the worker took its queues
    ready = os.environ.get("B2C_DEMO_CELERY_READY_FILE")
    if ready:
        Path(ready).write_text(str(os.getpid()))


def _gone(**_: Any) -> None:
    ready = os.environ.get("B2C_DEMO_CELERY_READY_FILE")
    if ready:
        Path(ready).unlink(missing_ok=True)


signals.worker_ready.connect(_ready, weak=False)
signals.worker_shutdown.connect(_gone, weak=False)


@app.task(bind=True, name="demo.erp.sync_orders")  # type: ignore[untyped-decorator]
def sync_orders(self: Any, orders: int, tenant: str | None = None) -> int:
    steps = 5
    for step in range(1, steps + 1):
        time.sleep(random.uniform(0.3, 0.8))
        self.update_state(state="PROGRESS", meta={"current": step, "total": steps})
    return orders


@app.task(bind=True, name="demo.pim.import_products", max_retries=1, default_retry_delay=2)  # type: ignore[untyped-decorator]
def import_products(self: Any, source: str, tenant: str | None = None) -> str:
    time.sleep(random.uniform(0.5, 1.5))
    if self.request.retries == 0 and random.random() < _PIM_FAILURE_SHARE:
        raise self.retry(exc=ConnectionError(f"Akeneo PIM answered 503 while reading {source}"))
    return f"{source}: {random.randint(100, 900)} products"


@app.task(name="demo.crm.export_contacts")  # type: ignore[untyped-decorator]
def export_contacts(tenant: str | None = None) -> int:
    time.sleep(random.uniform(0.2, 1.0))
    return random.randint(10, 80)
