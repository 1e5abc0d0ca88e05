"""The probes library: services report their jobs to b2c-monitoring with it.

Built on the standard OpenTelemetry SDK; every report follows the public telemetry
contract, so a service in another language can do the same without this library::

    probes = configure(service_name="erp-connector")
    with probes.job_run("ERP_SYNC", tenant_id="acme") as job:
        job.logger.info("fetching orders")
        job.progress(50, records_processed=1200)
    probes.shutdown()

and its connected services, component health and resources::

    probes.watch_service("enventa-erp", "ERP", CheckSpec("http", "https://erp/health"))
    probes.health_check("catalog", lambda: HealthCheckResult.healthy("index fresh"))
    probes.watch_resources()

and its failed calls to connected services, in one line or for a whole client::

    probes.record_communication_error("pim-system", method="GET", url=url, status=503)
    probes.instrument_httpx(client, "pim-system")  # or instrument_requests(session, ...)

and runs its jobs, carrying out operators' retry and cancel requests::

    runner = probes.job_runner(control_url="http://monitor:8000", token=PROBE_TOKEN)
    runner.handler("ERP_SYNC")(sync_orders)  # sync_orders(job, params)
    runner.submit("ERP_SYNC", tenant_id="acme", params={"since": "2026-11-01"})
"""

from __future__ import annotations

from b2c_monitoring.checks import CheckResult, CheckSpec
from b2c_monitoring.errors import JobCancelled
from b2c_monitoring.probes._export import ProbeStats, SignalStats
from b2c_monitoring.probes._health import HealthCheck, HealthCheckResult
from b2c_monitoring.probes._jobs import (
    JobRun,
    JobRunContext,
    MonitoredJob,
    PendingJob,
)
from b2c_monitoring.probes._logging import JobLogger
from b2c_monitoring.probes._probes import (
    JOB_LOGGER_NAME,
    TENANT_ID_ENV,
    Probes,
    ProbeSettings,
    configure,
)
from b2c_monitoring.probes._resources import PoolUsage, ResourceSample
from b2c_monitoring.probes._runner import JobRunner
from b2c_monitoring.probes._services import CustomCheck
from b2c_monitoring.probes._watch import Watch

__all__ = [
    "JOB_LOGGER_NAME",
    "TENANT_ID_ENV",
    "CheckResult",
    "CheckSpec",
    "CustomCheck",
    "HealthCheck",
    "HealthCheckResult",
    "JobCancelled",
    "JobLogger",
    "JobRun",
    "JobRunContext",
    "JobRunner",
    "MonitoredJob",
    "PendingJob",
    "PoolUsage",
    "ProbeSettings",
    "ProbeStats",
    "Probes",
    "ResourceSample",
    "SignalStats",
    "Watch",
    "configure",
]
