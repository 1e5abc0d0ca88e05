"""``Probes``: the SDK providers, exporters and bounded queues one service embeds.

The providers are the library's own, never installed as the global ones: a host
with its own OpenTelemetry setup keeps it, and job reports are not subject to the
host's sampler (a sampled-out report would be a job that never finished).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Final

from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import LogRecordExporter
from opentelemetry.sdk.environment_variables import (
    OTEL_EXPORTER_OTLP_ENDPOINT,
    OTEL_SERVICE_NAME,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON

from b2c_monitoring import contract as c
from b2c_monitoring.contract import JobState
from b2c_monitoring.errors import ConfigError
from b2c_monitoring.probes._export import (
    BoundedLogProcessor,
    BoundedSpanProcessor,
    Ledger,
    LedgerLogExporter,
    LedgerSpanExporter,
    ProbeStats,
)
from b2c_monitoring.probes._jobs import (
    Emitter,
    JobIdentity,
    JobRunContext,
    MonitoredJob,
    PendingJob,
    clean_metadata,
    context_from_traceparent,
    emit_report,
    traceparent_of,
)
from b2c_monitoring.probes._logging import OtelLogHandler
from b2c_monitoring.processors.jobs import Scalar

TENANT_ID_ENV: Final = "B2C_TENANT_ID"
DEFAULT_ENDPOINT: Final = "http://localhost:4317"
DEFAULT_EXPORT_TIMEOUT: Final = 5.0
DEFAULT_MAX_QUEUE_SIZE: Final = 2048
DEFAULT_SHUTDOWN_TIMEOUT: Final = 5.0
# short, so a job's reports reach the monitor while the job still runs
DEFAULT_EXPORT_INTERVAL: Final = 0.2
JOB_LOGGER_NAME: Final = "b2c_monitoring.jobs"
_SCOPE: Final = "b2c_monitoring.probes"

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProbeSettings:
    """Where and as whom a service reports. Build it with ``from_env`` to honour the
    standard environment variables; a value that cannot work is a ConfigError."""

    endpoint: str = DEFAULT_ENDPOINT
    service_name: str | None = None
    tenant_id: str | None = None
    service_instance_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    insecure: bool = True
    export_timeout: float = DEFAULT_EXPORT_TIMEOUT  # s, one export incl. its retries
    max_queue_size: int = DEFAULT_MAX_QUEUE_SIZE  # per signal
    export_interval: float = DEFAULT_EXPORT_INTERVAL  # s
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT  # s, also at interpreter exit
    job_log_level: int = logging.INFO

    def __post_init__(self) -> None:
        if not self.endpoint.strip():
            raise ConfigError("the OTLP endpoint is empty")
        for name in ("export_timeout", "export_interval", "shutdown_timeout"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)!r}")
        if self.max_queue_size < 1:
            raise ConfigError(f"max_queue_size must be at least 1, got {self.max_queue_size}")
        if not self.service_instance_id.strip():
            raise ConfigError("service_instance_id is empty")

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str],
        *,
        endpoint: str | None = None,
        service_name: str | None = None,
        tenant_id: str | None = None,
        service_instance_id: str | None = None,
        insecure: bool = True,
        export_timeout: float = DEFAULT_EXPORT_TIMEOUT,
        max_queue_size: int = DEFAULT_MAX_QUEUE_SIZE,
    ) -> ProbeSettings:
        """Arguments first, then ``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_SERVICE_NAME``
        and ``B2C_TENANT_ID``, then the defaults."""
        return cls(
            endpoint=endpoint or environ.get(OTEL_EXPORTER_OTLP_ENDPOINT) or DEFAULT_ENDPOINT,
            service_name=service_name or environ.get(OTEL_SERVICE_NAME) or None,
            tenant_id=tenant_id or environ.get(TENANT_ID_ENV) or None,
            service_instance_id=service_instance_id or str(uuid.uuid4()),
            insecure=insecure,
            export_timeout=export_timeout,
            max_queue_size=max_queue_size,
        )


def _within(timeout: float, name: str, work: Callable[[], bool]) -> bool:
    """Run ``work`` for at most ``timeout`` s. The SDK's flush and shutdown ignore
    their timeouts while an export retries against an unreachable collector."""
    outcome: list[bool] = []

    def run() -> None:
        try:
            outcome.append(work())
        except Exception:
            # a thread of our own: the edge where an SDK failure is logged, not raised
            _log.exception("%s failed", name)

    thread = threading.Thread(target=run, name=f"b2c-probes-{name}", daemon=True)
    thread.start()
    thread.join(max(0.0, timeout))
    return bool(outcome and outcome[0])


class Probes:
    """Job-state reports and job logs of one service, exported over OTLP.

    Exporters can be injected (tests use the SDK's in-memory ones); by default
    they are OTLP/gRPC to ``settings.endpoint``. Nothing here raises into the
    host because the collector is down: the SDK logs and drops, and the counts
    are in ``stats``.
    """

    def __init__(
        self,
        settings: ProbeSettings | None = None,
        *,
        span_exporter: SpanExporter | None = None,
        log_exporter: LogRecordExporter | None = None,
    ) -> None:
        self._settings = settings = settings or ProbeSettings()
        self._lock = threading.Lock()
        self._open = True
        self._flushed_at_shutdown: bool | None = None
        self._host_handlers: list[tuple[logging.Logger, logging.Handler]] = []

        attributes: dict[str, str] = {c.SERVICE_INSTANCE_ID: settings.service_instance_id}
        if settings.service_name:
            attributes[c.SERVICE_NAME] = settings.service_name
        if settings.tenant_id:
            attributes[c.TENANT_ID] = settings.tenant_id
        resource = Resource.create(attributes)

        capacity = settings.max_queue_size
        delay_millis = settings.export_interval * 1000
        self._span_ledger = Ledger(capacity)
        self._log_ledger = Ledger(capacity)
        self._span_exporter = LedgerSpanExporter(
            span_exporter
            or OTLPSpanExporter(
                endpoint=settings.endpoint,
                insecure=settings.insecure,
                timeout=settings.export_timeout,
            ),
            self._span_ledger,
        )
        self._log_exporter = LedgerLogExporter(
            log_exporter
            or OTLPLogExporter(
                endpoint=settings.endpoint,
                insecure=settings.insecure,
                timeout=settings.export_timeout,
            ),
            self._log_ledger,
        )

        # shutdown_on_exit=False: the SDK's own exit hook would wait up to 30 s per
        # provider for an unreachable collector; ours is bounded (_at_exit)
        self._tracer_provider = TracerProvider(
            sampler=ALWAYS_ON, resource=resource, shutdown_on_exit=False
        )
        self._tracer_provider.add_span_processor(
            BoundedSpanProcessor(
                self._span_exporter, self._span_ledger, capacity=capacity, delay_millis=delay_millis
            )
        )
        self._logger_provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
        self._logger_provider.add_log_record_processor(
            BoundedLogProcessor(
                self._log_exporter, self._log_ledger, capacity=capacity, delay_millis=delay_millis
            )
        )
        self._otel_logger = self._logger_provider.get_logger(_SCOPE)

        # Not from logging.getLogger: a logger of our own has its own level, so the
        # job log is exported whatever level the host gives its loggers; its parent
        # is the host's "b2c_monitoring.jobs", so records still reach host handlers.
        job_log = logging.Logger(JOB_LOGGER_NAME, settings.job_log_level)
        job_log.parent = logging.getLogger(JOB_LOGGER_NAME)
        job_log.addHandler(OtelLogHandler(self._otel_logger, host_wide=False))

        self._emitter = Emitter(
            tracer=self._tracer_provider.get_tracer(_SCOPE),
            job_log=job_log,
            is_open=self._is_open,
        )
        atexit.register(self._at_exit)

    @property
    def settings(self) -> ProbeSettings:
        return self._settings

    @property
    def stats(self) -> ProbeStats:
        return ProbeStats(spans=self._span_ledger.stats(), logs=self._log_ledger.stats())

    @property
    def dropped(self) -> int:
        """Reports and log records dropped: queue full, or unsent at shutdown."""
        return self.stats.dropped

    def _is_open(self) -> bool:
        return self._open

    # jobs

    def job_run(
        self,
        job_type: str,
        *,
        job_id: str | None = None,
        tenant_id: str | None = None,
        metadata: Mapping[str, object] | None = None,
        attempt: int = 1,
        retry_of: str | None = None,
        traceparent: str | None = None,
    ) -> JobRunContext:
        """One run of a job, as ``with`` or ``async with``; yields its ``JobRun``.

        ``traceparent`` continues the trace of a ``pending`` report sent elsewhere.
        """
        job = JobIdentity.checked(job_type, job_id, tenant_id, attempt, retry_of)
        cleaned: dict[str, Scalar] = {}
        clean_metadata(metadata or {}, cleaned)
        return JobRunContext(self._emitter, job, cleaned, context_from_traceparent(traceparent))

    def job_pending(
        self,
        job_type: str,
        *,
        job_id: str | None = None,
        tenant_id: str | None = None,
        metadata: Mapping[str, object] | None = None,
        attempt: int = 1,
        retry_of: str | None = None,
    ) -> PendingJob:
        """Report a queued job ``pending``; start it later with ``start_pending``."""
        job = JobIdentity.checked(job_type, job_id, tenant_id, attempt, retry_of)
        cleaned: dict[str, Scalar] = {}
        clean_metadata(metadata or {}, cleaned)
        sent = emit_report(
            self._emitter,
            job,
            JobState.PENDING,
            parent=context_from_traceparent(None),
            metadata=cleaned,
        )
        return PendingJob(
            job_id=job.job_id,
            job_type=job.job_type,
            tenant_id=job.tenant_id,
            attempt=job.attempt,
            retry_of=job.retry_of,
            metadata=cleaned,
            traceparent=traceparent_of(sent),
        )

    def start_pending(self, pending: PendingJob) -> JobRunContext:
        """The run of a job reported ``pending``, in the same trace."""
        return self.job_run(
            pending.job_type,
            job_id=pending.job_id,
            tenant_id=pending.tenant_id,
            metadata=pending.metadata,
            attempt=pending.attempt,
            retry_of=pending.retry_of,
            traceparent=pending.traceparent,
        )

    def monitored_job(
        self,
        job_type: str,
        *,
        tenant_id: str | None = None,
        metadata: Mapping[str, object] | None = None,
    ) -> MonitoredJob:
        """Decorator: every call of the (sync or async) function is one job run."""
        JobIdentity.checked(job_type, None, tenant_id, 1, None)
        return MonitoredJob(lambda: self.job_run(job_type, tenant_id=tenant_id, metadata=metadata))

    # logging

    def instrument_logging(
        self, logger: logging.Logger | None = None, level: int = logging.NOTSET
    ) -> logging.Handler:
        """Also export the host's own log records (the root logger's by default).

        Only on request: a host's logs are its own business. Removed at shutdown.
        """
        target = logger or logging.getLogger()
        handler = OtelLogHandler(self._otel_logger, level=level, host_wide=True)
        target.addHandler(handler)
        with self._lock:
            self._host_handlers.append((target, handler))
        return handler

    # lifecycle

    def force_flush(self, timeout: float | None = None) -> bool:
        """Export what is queued; False if that did not finish within ``timeout`` s."""
        limit = self._settings.shutdown_timeout if timeout is None else timeout
        millis = int(limit * 1000)

        def flush() -> bool:
            spans = self._tracer_provider.force_flush(millis)  # logs are flushed either way
            return self._logger_provider.force_flush(millis) and spans

        return _within(limit, "flush", flush)

    def shutdown(self, timeout: float | None = None) -> bool:
        """Flush for at most ``timeout`` s, then stop; True if the flush finished in
        time (``stats`` says what was exported). Idempotent; later reports are ignored."""
        with self._lock:
            if not self._open:
                return bool(self._flushed_at_shutdown)
            self._open = False
            handlers, self._host_handlers = self._host_handlers, []
        for target, handler in handlers:
            target.removeHandler(handler)
        atexit.unregister(self._at_exit)

        limit = self._settings.shutdown_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        flushed = self.force_flush(limit)

        def stop() -> bool:
            # exporters first: this interrupts an export that is backing off
            # between retries, so the processors' final drain returns at once
            self._span_exporter.shutdown()
            self._log_exporter.shutdown()
            self._tracer_provider.shutdown()
            self._logger_provider.shutdown()
            return True

        # the grace covers joining the workers after their exporters were cut short
        _within(max(deadline - time.monotonic(), 1.0), "shutdown", stop)
        self._span_ledger.abandon()
        self._log_ledger.abandon()
        self._flushed_at_shutdown = flushed
        return flushed

    def _at_exit(self) -> None:
        self.shutdown()

    def __enter__(self) -> Probes:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()


def configure(
    endpoint: str | None = None,
    *,
    service_name: str | None = None,
    tenant_id: str | None = None,
    service_instance_id: str | None = None,
    insecure: bool = True,
    export_timeout: float = DEFAULT_EXPORT_TIMEOUT,
    max_queue_size: int = DEFAULT_MAX_QUEUE_SIZE,
) -> Probes:
    """``Probes`` from arguments, then the standard environment variables."""
    return Probes(
        ProbeSettings.from_env(
            os.environ,
            endpoint=endpoint,
            service_name=service_name,
            tenant_id=tenant_id,
            service_instance_id=service_instance_id,
            insecure=insecure,
            export_timeout=export_timeout,
            max_queue_size=max_queue_size,
        )
    )
