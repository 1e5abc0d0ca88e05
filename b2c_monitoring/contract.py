"""Names of the public telemetry contract (docs/telemetry-contract.md).

These strings are the interface every instrumented service relies on; they are
spelled once here and imported everywhere else.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

# who and where
SERVICE_NAME: Final = "service.name"
SERVICE_INSTANCE_ID: Final = "service.instance.id"
TENANT_ID: Final = "tenant.id"

# job state spans
JOB_ID: Final = "scheduler.job.id"
JOB_TYPE: Final = "scheduler.job.type"
JOB_STATE: Final = "scheduler.job.state"
JOB_PROGRESS: Final = "scheduler.job.progress_percent"
JOB_ATTEMPT: Final = "scheduler.job.attempt"
JOB_RETRY_OF: Final = "scheduler.job.retry_of"
JOB_METADATA_PREFIX: Final = "scheduler.job.metadata."

# Limits of a job-state report (docs/telemetry-contract.md): the processor rejects a
# report beyond them, so the probes keep within them.
JOB_ID_MAX_CHARS: Final = 128
MAX_TENANT_CHARS: Final = 64
MAX_JOB_TYPE_CHARS: Final = 64
MAX_TEXT_CHARS: Final = 4096
MAX_METADATA_KEYS: Final = 64
MAX_METADATA_KEY_CHARS: Final = 128
MAX_METADATA_VALUE_CHARS: Final = 1024

# errors on spans and logs (OpenTelemetry semantic conventions)
EXCEPTION_EVENT: Final = "exception"
EXCEPTION_MESSAGE: Final = "exception.message"
ERROR_TYPE: Final = "error.type"

# connected services
SERVICE_UP: Final = "connected_service.up"
SERVICE_CHECK_DURATION: Final = "connected_service.check.duration"
CONNECTED_SERVICE_NAME: Final = "connected_service.name"
CONNECTED_SERVICE_TYPE: Final = "connected_service.type"
COMMUNICATION_ERROR_EVENT: Final = "connected_service.communication_error"
# connected_service.type values, spelled as in the contract
SERVICE_TYPES: Final = ("ERP", "PIM", "CRM", "Database", "Other")
SERVER_ADDRESS: Final = "server.address"
EVENT_NAME: Final = "event.name"
URL_FULL: Final = "url.full"
COMMUNICATION_DURATION: Final = "communication.duration"

# resources (OpenTelemetry semantic conventions where one exists)
PROCESS_CPU_UTILIZATION: Final = "process.cpu.utilization"
SYSTEM_CPU_UTILIZATION: Final = "system.cpu.utilization"
PROCESS_MEMORY_USAGE: Final = "process.memory.usage"
SYSTEM_MEMORY_USAGE: Final = "system.memory.usage"
SYSTEM_MEMORY_LIMIT: Final = "system.memory.limit"
PROCESS_THREAD_COUNT: Final = "process.thread.count"
DB_CLIENT_CONNECTION_COUNT: Final = "db.client.connection.count"
DB_CLIENT_CONNECTION_STATE: Final = "db.client.connection.state"
DB_CLIENT_CONNECTION_MAX: Final = "db.client.connection.max"
SCHEDULER_QUEUE_DEPTH: Final = "scheduler.queue.depth"

# component health
COMPONENT_HEALTH_STATUS: Final = "component.health.status"
COMPONENT_NAME: Final = "component.name"
COMPONENT_HEALTH_DESCRIPTION: Final = "component.health.description"


class JobState(StrEnum):
    """``scheduler.job.state``; spelled as in the contract, on the wire and in the API."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL: Final = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})
