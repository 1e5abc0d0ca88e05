"""``Probes``: the SDK providers, exporters and bounded queues one service embeds.

The providers are the library's own, never installed as the global ones: a host
with its own OpenTelemetry setup keeps it, and job reports are not subject to the
host's sampler (a sampled-out report would be a job that never finished).

TLS: an ``https://`` endpoint (or ``insecure=False``) is verified with ``ca_file``
(else ``OTEL_EXPORTER_OTLP_CERTIFICATE``, else the system's CAs); the job runner's
control URL is verified with the same CA.
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
from typing import TYPE_CHECKING, Any, Final, TypeVar
from urllib.parse import urlsplit

import grpc
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import LogRecordExporter
from opentelemetry.sdk.environment_variables import (
    OTEL_EXPORTER_OTLP_CERTIFICATE,
    OTEL_EXPORTER_OTLP_ENDPOINT,
    OTEL_EXPORTER_OTLP_HEADERS,
    OTEL_METRIC_EXPORT_INTERVAL,
    OTEL_SERVICE_NAME,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.util.types import AnyValue

from b2c_monitoring import contract as c
from b2c_monitoring.checks import CheckResult, CheckSpec
from b2c_monitoring.contract import JobState
from b2c_monitoring.errors import ConfigError
from b2c_monitoring.probes import _communication
from b2c_monitoring.probes._export import (
    BoundedLogProcessor,
    BoundedSpanProcessor,
    Ledger,
    LedgerLogExporter,
    LedgerSpanExporter,
    ProbeStats,
)
from b2c_monitoring.probes._health import (
    DEFAULT_HEALTH_EVERY_S,
    DEFAULT_HEALTH_TIMEOUT_S,
    HealthCheck,
    HealthCheckResult,
    HealthProbe,
)
from b2c_monitoring.probes._jobs import (
    DirectSpans,
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
from b2c_monitoring.probes._metrics import GAUGE_DELTA, LedgerMetricExporter, MetricSink, Point
from b2c_monitoring.probes._report_handoff import ReportHandoff
from b2c_monitoring.probes._resources import (
    DEFAULT_RESOURCES_EVERY_S,
    PoolUsage,
    ResourceProbe,
    ResourceSample,
)
from b2c_monitoring.probes._runner import (
    DEFAULT_MAX_QUEUED,
    DEFAULT_MAX_WORKERS,
    DEFAULT_POLL_WAIT_S,
    JobRunner,
)
from b2c_monitoring.probes._services import (
    DEFAULT_CUSTOM_TIMEOUT_S,
    DEFAULT_SERVICE_EVERY_S,
    CustomCheck,
    ServiceProbe,
    check_name,
    identity,
)
from b2c_monitoring.probes._span_wire import WireSpanExporter
from b2c_monitoring.probes._watch import Watch
from b2c_monitoring.processors.jobs import Scalar
from b2c_monitoring.tls import is_loopback, read_ca, url_host

if TYPE_CHECKING:
    import httpx
    import requests

TENANT_ID_ENV: Final = "B2C_TENANT_ID"
PROBE_TOKEN_ENV: Final = "B2C_PROBE_TOKEN"  # noqa: S105 (a variable name)
DEFAULT_ENDPOINT: Final = "http://localhost:4317"
DEFAULT_EXPORT_TIMEOUT: Final = 5.0
DEFAULT_MAX_QUEUE_SIZE: Final = 2048
DEFAULT_SHUTDOWN_TIMEOUT: Final = 5.0
# short, so a job's reports reach the monitor while the job still runs
DEFAULT_EXPORT_INTERVAL: Final = 0.2
# metrics: a check's point reaches the monitor within this, at one export per interval
DEFAULT_METRIC_EXPORT_INTERVAL: Final = 2.0
JOB_LOGGER_NAME: Final = "b2c_monitoring.jobs"
_SCOPE: Final = "b2c_monitoring.probes"

_log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class ProbeSettings:
    """Where and as whom a service reports. Build it with ``from_env`` to honour the
    standard environment variables; a value that cannot work is a ConfigError."""

    endpoint: str = DEFAULT_ENDPOINT
    service_name: str | None = None
    tenant_id: str | None = None
    service_instance_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    insecure: bool = True  # an https:// endpoint is TLS whatever this says
    # PEM file of the CA that verifies the collector (and the job runner's control URL);
    # None: the system's CAs
    ca_file: str | None = None
    # the probe token the collector lets reports in with (b2c admin tokens create
    # --role probe); None: whatever OTEL_EXPORTER_OTLP_HEADERS says, read by the SDK
    token: str | None = field(default=None, repr=False)
    export_timeout: float = DEFAULT_EXPORT_TIMEOUT  # s, one export incl. its retries
    max_queue_size: int = DEFAULT_MAX_QUEUE_SIZE  # per signal
    export_interval: float = DEFAULT_EXPORT_INTERVAL  # s
    metric_export_interval: float = DEFAULT_METRIC_EXPORT_INTERVAL  # s
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT  # s, also at interpreter exit
    job_log_level: int = logging.INFO

    def __post_init__(self) -> None:
        if not self.endpoint.strip():
            raise ConfigError("the OTLP endpoint is empty")
        for name in (
            "export_timeout",
            "export_interval",
            "metric_export_interval",
            "shutdown_timeout",
        ):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)!r}")
        if self.max_queue_size < 1:
            raise ConfigError(f"max_queue_size must be at least 1, got {self.max_queue_size}")
        if not self.service_instance_id.strip():
            raise ConfigError("service_instance_id is empty")
        if self.token is not None and (
            not self.token.strip() or any(ch.isspace() for ch in self.token)
        ):
            raise ConfigError("the probe token is empty or holds white space")
        if self.ca_file is not None and not self.tls:
            raise ConfigError(
                f"a CA file ({self.ca_file}) is given, but the endpoint {self.endpoint} "
                "is plaintext: use https://"
            )

    @property
    def tls(self) -> bool:
        return urlsplit(self.endpoint).scheme == "https" or not self.insecure

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
        ca_file: str | None = None,
        token: str | None = None,
        export_timeout: float = DEFAULT_EXPORT_TIMEOUT,
        max_queue_size: int = DEFAULT_MAX_QUEUE_SIZE,
        metric_export_interval: float | None = None,
    ) -> ProbeSettings:
        """Arguments first, then ``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_SERVICE_NAME``,
        ``B2C_TENANT_ID``, ``OTEL_EXPORTER_OTLP_CERTIFICATE``, ``B2C_PROBE_TOKEN`` and
        ``OTEL_METRIC_EXPORT_INTERVAL`` (ms), then the defaults. Without a token the SDK
        sends ``OTEL_EXPORTER_OTLP_HEADERS`` (``authorization=Bearer%20<token>``)."""
        if metric_export_interval is None:
            metric_export_interval = _seconds_from_millis(
                environ, OTEL_METRIC_EXPORT_INTERVAL, DEFAULT_METRIC_EXPORT_INTERVAL
            )
        return cls(
            endpoint=endpoint or environ.get(OTEL_EXPORTER_OTLP_ENDPOINT) or DEFAULT_ENDPOINT,
            service_name=service_name or environ.get(OTEL_SERVICE_NAME) or None,
            tenant_id=tenant_id or environ.get(TENANT_ID_ENV) or None,
            service_instance_id=service_instance_id or str(uuid.uuid4()),
            insecure=insecure,
            ca_file=ca_file or environ.get(OTEL_EXPORTER_OTLP_CERTIFICATE) or None,
            token=token or environ.get(PROBE_TOKEN_ENV) or None,
            export_timeout=export_timeout,
            max_queue_size=max_queue_size,
            metric_export_interval=metric_export_interval,
        )


def _seconds_from_millis(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name)
    if not raw:
        return default
    try:
        return float(raw) / 1000
    except ValueError:
        raise ConfigError(f"{name} must be a number of milliseconds, got {raw!r}") from None


def _otlp_options(settings: ProbeSettings) -> dict[str, Any]:
    """What every OTLP exporter of the probes connects with: the one place for the
    endpoint, TLS and anything sent with each export. The SDK would read its
    OTEL_EXPORTER_OTLP_* variables itself; the settings already hold them, read once."""
    credentials = None
    if settings.tls:
        ca = read_ca(settings.ca_file, setting="ca_file") if settings.ca_file else None
        credentials = grpc.ssl_channel_credentials(root_certificates=ca)
    elif not is_loopback(url_host(settings.endpoint)):
        _log.warning(
            "b2c probes: reporting in PLAINTEXT to %s, not a loopback address; "
            "use an https:// endpoint with the collector's CA (ca_file)",
            settings.endpoint,
        )
    headers = None
    if settings.token is not None:
        headers = {"authorization": f"Bearer {settings.token}"}
    elif "authorization" not in os.environ.get(OTEL_EXPORTER_OTLP_HEADERS, "").lower():
        _log.warning(
            "b2c probes: no probe token (token=, B2C_PROBE_TOKEN or an authorization in "
            "OTEL_EXPORTER_OTLP_HEADERS): the collector refuses the reports; create one "
            "with 'b2c admin tokens create --role probe'"
        )
    return {
        "endpoint": settings.endpoint,
        "insecure": not settings.tls,
        "credentials": credentials,
        "headers": headers,
        "timeout": settings.export_timeout,
    }


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
    """Job-state reports, job logs, connected-service checks, component health and
    resource metrics of one service, exported over OTLP.

    Exporters can be injected (tests use the SDK's in-memory ones, and a metric
    reader such as ``InMemoryMetricReader``); by default they are OTLP/gRPC to
    ``settings.endpoint``. Nothing here raises into the host because the collector
    is down or a check fails: the SDK logs and drops, and the counts are in ``stats``.
    """

    def __init__(
        self,
        settings: ProbeSettings | None = None,
        *,
        span_exporter: SpanExporter | None = None,
        log_exporter: LogRecordExporter | None = None,
        metric_reader: MetricReader | None = None,
    ) -> None:
        self._settings = settings = settings or ProbeSettings()
        self._lock = threading.Lock()
        self._open = True
        self._flushed_at_shutdown: bool | None = None
        self._host_handlers: list[tuple[logging.Logger, logging.Handler]] = []
        self._watches: list[Watch[Any]] = []
        self._given_metric_reader = metric_reader
        self._meter_provider: MeterProvider | None = None
        self._sink: MetricSink | None = None

        attributes: dict[str, str] = {c.SERVICE_INSTANCE_ID: settings.service_instance_id}
        if settings.service_name:
            attributes[c.SERVICE_NAME] = settings.service_name
        if settings.tenant_id:
            attributes[c.TENANT_ID] = settings.tenant_id
        resource = self._resource = Resource.create(attributes)

        capacity = settings.max_queue_size
        delay_millis = settings.export_interval * 1000
        self._span_ledger = Ledger(capacity)
        self._log_ledger = Ledger(capacity)
        self._metric_ledger = Ledger(capacity)  # counts points; metrics never queue
        otlp = self._otlp = _otlp_options(settings)
        self._span_exporter = LedgerSpanExporter(
            span_exporter or WireSpanExporter(**otlp), self._span_ledger
        )
        self._log_exporter = LedgerLogExporter(
            log_exporter or OTLPLogExporter(**otlp), self._log_ledger
        )

        # shutdown_on_exit=False: the SDK's own exit hook would wait up to 30 s per
        # provider for an unreachable collector; ours is bounded (_at_exit)
        self._tracer_provider = TracerProvider(
            sampler=ALWAYS_ON, resource=resource, shutdown_on_exit=False
        )
        span_processor = BoundedSpanProcessor(
            self._span_exporter, self._span_ledger, capacity=capacity, delay_millis=delay_millis
        )
        self._tracer_provider.add_span_processor(span_processor)
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

        tracer = self._tracer_provider.get_tracer(_SCOPE)
        self._handoff = ReportHandoff(
            span_processor.put,
            self._span_ledger,
            capacity=capacity,
            # half the export interval: a handed-off report waits for two threads
            interval_s=settings.export_interval / 2,
        )
        self._emitter = Emitter(
            tracer=tracer,
            job_log=job_log,
            is_open=self._is_open,
            direct=DirectSpans(span_processor, resource, InstrumentationScope(_SCOPE)),
            handoff=self._handoff,
        )
        atexit.register(self._at_exit)

    @property
    def settings(self) -> ProbeSettings:
        return self._settings

    @property
    def stats(self) -> ProbeStats:
        return ProbeStats(
            spans=self._span_ledger.stats(),
            logs=self._log_ledger.stats(),
            metrics=self._metric_ledger.stats(),
        )

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

    def job_runner(
        self,
        *,
        control_url: str | None = None,
        token: str | None = None,
        service_name: str | None = None,
        max_workers: int = DEFAULT_MAX_WORKERS,
        max_queued: int = DEFAULT_MAX_QUEUED,
        poll_wait_s: float = DEFAULT_POLL_WAIT_S,
    ) -> JobRunner:
        """A job runner (handlers per job type, a bounded pool). With ``control_url`` (the
        admin API) and a ``probe`` token it also carries out operators' retry and cancel
        requests for the jobs of this service, from now until ``stop()``."""
        own = self._settings.service_name
        if control_url is not None and own is None:
            raise ConfigError("a job runner with a control_url needs the probes' service_name")
        if service_name is not None and service_name != own:
            # commands are addressed to the service.name the jobs report
            raise ConfigError(
                f"the runner's service_name {service_name!r} differs from the probes' {own!r}"
            )
        token = token or self._settings.token  # the same probe token, unless told
        if control_url is not None and not token:
            raise ConfigError("a job runner with a control_url needs a probe token")
        return JobRunner(
            self,
            service_name=own,
            control_url=control_url,
            token=token,
            ca_file=self._settings.ca_file,
            max_workers=max_workers,
            max_queued=max_queued,
            poll_wait_s=poll_wait_s,
        )

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

    # connected services, component health, resources

    def watch_service(
        self,
        name: str,
        type: str,  # the contract's word (connected_service.type)
        check: CheckSpec | CustomCheck,
        every_s: float = DEFAULT_SERVICE_EVERY_S,
        *,
        timeout_s: float = DEFAULT_CUSTOM_TIMEOUT_S,
        address: str | None = None,
        report_errors: bool = True,
    ) -> Watch[CheckResult]:
        """Check a connected service every ``every_s`` s in a background thread, from now.

        ``check`` is a ``CheckSpec`` (http / tcp / postgres, with its own timeout) or a
        callable of the host's returning a ``CheckResult`` or a bool, bounded by
        ``timeout_s``. Reports ``connected_service.up`` and
        ``connected_service.check.duration`` with ``connected_service.name``,
        ``connected_service.type`` (ERP PIM CRM Database Other) and ``server.address``
        (the check's host, or ``address``). With ``report_errors`` a failed check is
        also a ``connected_service.communication_error`` log record.
        """
        service = identity(name, type, check, address)
        _check_interval("every_s", every_s)
        _check_interval("timeout_s", timeout_s)
        probe = ServiceProbe(
            service,
            check,
            timeout_s=timeout_s,
            emit=self._emit_points,
            log_error=self._emit_event if report_errors else None,
        )
        return self._start(f"service-{service.name}", every_s, probe)

    def health_check(
        self,
        component: str,
        fn: HealthCheck,
        every_s: float = DEFAULT_HEALTH_EVERY_S,
        *,
        timeout_s: float = DEFAULT_HEALTH_TIMEOUT_S,
    ) -> Watch[HealthCheckResult]:
        """Report ``component``'s health every ``every_s`` s: ``fn()`` returns a
        ``HealthCheckResult`` (or a bool); raising, or running past ``timeout_s``, is
        ``unhealthy`` with the reason. Reports ``component.health.status`` (2 / 1 / 0)
        with ``component.name`` and ``component.health.description``."""
        check_name("component", component)
        _check_interval("every_s", every_s)
        _check_interval("timeout_s", timeout_s)
        probe = HealthProbe(component, fn, timeout_s=timeout_s, emit=self._emit_points)
        return self._start(f"health-{component}", every_s, probe)

    def watch_resources(
        self,
        owner: str | None = None,
        every_s: float = DEFAULT_RESOURCES_EVERY_S,
        *,
        pool: Callable[[], PoolUsage] | None = None,
        queue_depth: Callable[[], int] | None = None,
        process: bool = True,
    ) -> Watch[ResourceSample]:
        """Report this process's CPU, memory and threads every ``every_s`` s, and the
        connection pool (``pool``) and queue depth (``queue_depth``) when given.

        ``owner`` names the connected service the resources belong to
        (``connected_service.name``); without it they belong to this service. With
        ``process=False`` only the callbacks are reported (a pool owned by a
        connected service that does not run in this process). The callbacks run in
        the probe's thread and must be quick.
        """
        if owner is not None:
            check_name("owner", owner)
        _check_interval("every_s", every_s)
        probe = ResourceProbe(
            owner, process=process, pool=pool, queue_depth=queue_depth, emit=self._emit_points
        )
        return self._start(f"resources-{owner or 'self'}", every_s, probe)

    # communication errors

    def record_communication_error(
        self,
        service: str,
        *,
        method: str | None = None,
        url: str | None = None,
        status: int | None = None,
        error: BaseException | str | None = None,
        duration: float | None = None,
        request_body: str | bytes | None = None,
        response_body: str | bytes | None = None,
        server_address: str | None = None,
        error_type: str | None = None,
    ) -> None:
        """Record one failed call to the connected service ``service`` (a
        ``connected_service.communication_error`` record, level ERROR): ``error`` is the
        exception or its text, ``status`` the HTTP status, ``duration`` in seconds. The
        URL loses its credentials, bodies are redacted excerpts; inside a job run the
        record carries the job's id. Never raises."""
        _communication.record(
            self._emit_error,
            service,
            method=method,
            url=url,
            status=status,
            error=error,
            duration=duration,
            request_body=request_body,
            response_body=response_body,
            server_address=server_address,
            error_type=error_type,
        )

    def instrument_httpx(
        self,
        client: httpx.Client | httpx.AsyncClient,
        service: str,
        *,
        min_status: int = _communication.DEFAULT_MIN_STATUS,
    ) -> None:
        """Record every failed call of ``client`` as a communication error of ``service``:
        an exception, or an answer with a status of at least ``min_status``."""
        _communication.instrument_httpx(client, self._emit_error, service, min_status)

    def instrument_requests(
        self,
        session: requests.Session,
        service: str,
        *,
        min_status: int = _communication.DEFAULT_MIN_STATUS,
    ) -> None:
        """The same for a ``requests`` session (every adapter mounted on it now)."""
        _communication.instrument_requests(session, self._emit_error, service, min_status)

    def _emit_error(self, body: str, attributes: dict[str, AnyValue]) -> None:
        self._emit_event(body, attributes, severity=SeverityNumber.ERROR)

    def _start(self, name: str, every_s: float, probe: Callable[[], T]) -> Watch[T]:
        watch: Watch[T] = Watch(name, every_s, probe, on_stop=lambda: self._forget(watch))
        if not self._open:
            return watch  # after shutdown: never started, reports nothing
        self._metrics()
        with self._lock:
            if not self._open:
                return watch
            self._watches.append(watch)
        watch.start()
        return watch

    def _forget(self, watch: Watch[Any]) -> None:
        with self._lock:
            if watch in self._watches:
                self._watches.remove(watch)

    def _metrics(self) -> MetricSink:
        """The meter provider is built with the first metric probe: a host that only
        reports jobs runs no metric reader thread."""
        with self._lock:
            if self._sink is None:
                settings = self._settings
                reader = self._given_metric_reader or PeriodicExportingMetricReader(
                    LedgerMetricExporter(
                        OTLPMetricExporter(**self._otlp, preferred_temporality=GAUGE_DELTA),
                        self._metric_ledger,
                    ),
                    export_interval_millis=settings.metric_export_interval * 1000,
                    export_timeout_millis=settings.export_timeout * 1000,
                )
                self._meter_provider = MeterProvider(
                    resource=self._resource, metric_readers=[reader], shutdown_on_exit=False
                )
                self._sink = MetricSink(self._meter_provider.get_meter(_SCOPE))
            return self._sink

    def _emit_points(self, points: list[Point]) -> None:
        sink = self._sink
        if sink is not None and self._open:
            sink.emit(points)

    def _emit_event(
        self,
        body: str,
        attributes: dict[str, AnyValue],
        *,
        severity: SeverityNumber = SeverityNumber.WARN,
    ) -> None:
        if not self._open:
            return
        try:
            self._otel_logger.emit(
                timestamp=time.time_ns(),
                severity_number=severity,
                severity_text=severity.name,
                body=body,
                attributes=attributes,
                event_name=str(attributes.get(c.EVENT_NAME) or "") or None,
            )
        except Exception:
            # the probe's thread is the host's: an SDK failure is logged, not raised
            _log.exception("could not emit a %s record", attributes.get(c.EVENT_NAME))

    # lifecycle

    def force_flush(self, timeout: float | None = None) -> bool:
        """Export what is queued; False if that did not finish within ``timeout`` s."""
        limit = self._settings.shutdown_timeout if timeout is None else timeout
        millis = int(limit * 1000)

        def flush() -> bool:
            self._handoff.drain()
            spans = self._tracer_provider.force_flush(millis)  # logs are flushed either way
            logs = self._logger_provider.force_flush(millis)
            meters = self._meter_provider
            return (meters.force_flush(millis) if meters is not None else True) and spans and logs

        return _within(limit, "flush", flush)

    def shutdown(self, timeout: float | None = None) -> bool:
        """Flush for at most ``timeout`` s, then stop; True if the flush finished in
        time (``stats`` says what was exported). Idempotent; later reports are ignored."""
        with self._lock:
            if not self._open:
                return bool(self._flushed_at_shutdown)
            self._open = False
            handlers, self._host_handlers = self._host_handlers, []
            watches, self._watches = self._watches, []
        for target, handler in handlers:
            target.removeHandler(handler)
        atexit.unregister(self._at_exit)

        limit = self._settings.shutdown_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        # a round in progress may wait out its check's timeout: give it a moment,
        # then leave the daemon thread be (what it would report is ignored now)
        _stop_all(watches, wait_s=min(limit, 0.5))
        if self._sink is not None:
            self._sink.close()
        self._handoff.close()
        flushed = self.force_flush(max(deadline - time.monotonic(), 0.1))

        def stop() -> bool:
            # exporters first: this interrupts an export that is backing off
            # between retries, so the processors' final drain returns at once
            self._span_exporter.shutdown()
            self._log_exporter.shutdown()
            self._tracer_provider.shutdown()
            self._logger_provider.shutdown()
            if self._meter_provider is not None:
                # its final collection is empty: the flush above exported every point
                self._meter_provider.shutdown(timeout_millis=1000)
            return True

        # the grace covers joining the workers after their exporters were cut short
        _within(max(deadline - time.monotonic(), 1.0), "shutdown", stop)
        self._span_ledger.abandon()
        self._log_ledger.abandon()
        self._metric_ledger.abandon()
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


def _check_interval(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 86400:
        raise ValueError(f"{name} must be a number of seconds above 0, got {value!r}")


def _stop_all(watches: list[Watch[Any]], wait_s: float) -> None:
    for watch in watches:
        watch.request_stop()
    deadline = time.monotonic() + wait_s
    for watch in watches:
        watch.stop(max(0.0, deadline - time.monotonic()))


def configure(
    endpoint: str | None = None,
    *,
    service_name: str | None = None,
    tenant_id: str | None = None,
    service_instance_id: str | None = None,
    insecure: bool = True,
    ca_file: str | None = None,
    token: str | None = None,
    export_timeout: float = DEFAULT_EXPORT_TIMEOUT,
    max_queue_size: int = DEFAULT_MAX_QUEUE_SIZE,
    metric_export_interval: float | None = None,
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
            ca_file=ca_file,
            token=token,
            export_timeout=export_timeout,
            max_queue_size=max_queue_size,
            metric_export_interval=metric_export_interval,
        )
    )
