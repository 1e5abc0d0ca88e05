"""The probes library: services report their jobs to b2c-monitoring with it.

Built on the standard OpenTelemetry SDK; every report follows the public telemetry
contract, so a service in another language can do the same without this library::

    probes = configure(service_name="erp-connector")
    with probes.job_run("ERP_SYNC", tenant_id="acme") as job:
        job.logger.info("fetching orders")
        job.progress(50, records_processed=1200)
    probes.shutdown()
"""

from __future__ import annotations

from b2c_monitoring.probes._export import ProbeStats, SignalStats
from b2c_monitoring.probes._jobs import JobRun, JobRunContext, MonitoredJob, PendingJob
from b2c_monitoring.probes._logging import JobLogger
from b2c_monitoring.probes._probes import (
    JOB_LOGGER_NAME,
    TENANT_ID_ENV,
    Probes,
    ProbeSettings,
    configure,
)

__all__ = [
    "JOB_LOGGER_NAME",
    "TENANT_ID_ENV",
    "JobLogger",
    "JobRun",
    "JobRunContext",
    "MonitoredJob",
    "PendingJob",
    "ProbeSettings",
    "ProbeStats",
    "Probes",
    "SignalStats",
    "configure",
]
