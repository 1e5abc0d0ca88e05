"""A real process running APScheduler's BackgroundScheduler with the integration, as
the APScheduler tests run it (``python -m tests.apscheduler_app``, configured from
``B2C_TEST_APS_*``); it runs until SIGTERM. ``B2C_TEST_APS_EVERY_MINUTE=1`` schedules
only a cron job a minute instead (the missed-run test), registered with a 5 s grace."""

from __future__ import annotations

import os
import signal
import threading
from datetime import timedelta

from apscheduler.schedulers.background import BackgroundScheduler

from b2c_monitoring.probes import ProbeSettings
from b2c_monitoring.probes.apscheduler import instrument_apscheduler

RUNS: list[str] = []


def sync_orders(batch: int) -> None:
    RUNS.append(f"sync {batch}")


def import_catalog(source: str) -> None:
    raise ConnectionError(f"{source} answered 503")


def main() -> None:
    scheduler = BackgroundScheduler(timezone="UTC")
    every_minute = os.environ.get("B2C_TEST_APS_EVERY_MINUTE") == "1"
    if every_minute:
        # APScheduler's own default grace: a run more than 1 s late is missed, not run
        scheduler.add_job(
            sync_orders, "cron", minute="*", args=(1,), id="erp-sync", misfire_grace_time=1
        )
    else:
        scheduler.add_job(sync_orders, "interval", seconds=2, args=(7,), id="erp-sync")
        scheduler.add_job(
            import_catalog, "cron", minute="*", second="*/3", args=("pim",), id="pim-import"
        )
        scheduler.add_job(sync_orders, "cron", hour="2", minute="30", args=(1,), id="nightly")
    monitor = instrument_apscheduler(
        scheduler,
        ProbeSettings(
            endpoint=os.environ["B2C_TEST_APS_OTLP"],
            token=os.environ["B2C_TEST_APS_INGEST_TOKEN"],
            service_name=os.environ["B2C_TEST_APS_SERVICE"],
            tenant_id=os.environ["B2C_TEST_APS_TENANT"],
            export_interval=0.2,
        ),
        control_url=os.environ["B2C_TEST_APS_API"],
        token=os.environ["B2C_TEST_APS_PROBE_TOKEN"],
        job_types={"erp-sync": "ERP_SYNC", "pim-import": "PIM_IMPORT", "nightly": "ERP_NIGHTLY"},
        poll_wait_s=1.0,
        schedule_grace=timedelta(seconds=5) if every_minute else timedelta(minutes=5),
    )
    scheduler.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    scheduler.shutdown(wait=False)
    monitor.stop()
    monitor.probes.shutdown(5.0)


if __name__ == "__main__":
    main()
