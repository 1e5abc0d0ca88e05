"""The OTLP gRPC services the collector exports to.

Here, and only here, domain errors become gRPC status codes:

- a report that breaks the contract is rejected alone, counted, and named in the
  answer's ``partial_success``; the rest of the batch is stored;
- a batch that could not be stored because the store is unavailable is answered
  ``UNAVAILABLE``, which the collector's exporter retries (its persistent queue keeps
  the data meanwhile); never OK for data that was not stored;
- a batch the store refused for itself is answered ``INVALID_ARGUMENT`` (permanent).
"""

from __future__ import annotations

import hmac
import logging
import time
from collections import Counter as Tally
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import grpc
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from b2c_monitoring.receivers import pipeline_metrics as m
from b2c_monitoring.receivers.batch_outcomes import BatchOutcomes
from b2c_monitoring.receivers.metrics_handler import MetricsHandler, MetricsOutcome
from b2c_monitoring.receivers.service_logs import LogsHandler, LogsOutcome
from b2c_monitoring.receivers.traces import NotStored, TraceHandler, TraceOutcome

log = logging.getLogger(__name__)


def _summary(rejected: list[tuple[str, str]], item: str = "job-state span") -> str:
    reasons = Tally(reason for reason, _ in rejected)
    counts = ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items()))
    return f"rejected {len(rejected)} {item}(s) ({counts}); first: {rejected[0][1]}"


class Authenticator:
    """Checks the bearer token the collector sends (``authorization`` header)."""

    def __init__(self, token: str | None) -> None:
        self._expected = f"Bearer {token}".encode() if token else None

    def check(self, context: grpc.ServicerContext) -> None:
        if self._expected is None:
            return
        for key, value in context.invocation_metadata():
            if key == "authorization":
                given = value.encode() if isinstance(value, str) else value
                if hmac.compare_digest(given, self._expected):
                    return
        context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong processor token")


class Outcome(Protocol):
    """What every handler answers for one request (``TraceOutcome``, ``MetricsOutcome``,
    ``LogsOutcome``): the one type the gRPC answer is mapped from."""

    @property
    def received(self) -> int: ...
    @property
    def not_stored(self) -> NotStored | None: ...
    @property
    def store_seconds(self) -> float | None: ...


OutcomeT = TypeVar("OutcomeT", bound=Outcome)


@dataclass(frozen=True)
class Signal(Generic[OutcomeT]):
    """How one OTLP signal differs from the others in its answer."""

    label: str  # the pipeline metrics' signal label
    what: str  # names a batch in messages: "job-state batch not stored"
    service: str  # the gRPC service
    response: type[Message]
    # counts the outcome's own figures (stored, ignored, rejected, changes) once stored;
    # returns the partial success (rejected count, message) or None
    account: Callable[[OutcomeT], tuple[int, str] | None]
    # the field of partial_success counting rejected items
    rejected_field: str | None = None


def _account_rejected(
    label: str, item: str, rejected: list[tuple[str, str]]
) -> tuple[int, str] | None:
    for reason, _ in rejected:
        m.REJECTED.labels(label, reason).inc()
    return (len(rejected), _summary(rejected, item)) if rejected else None


def _account_spans(outcome: TraceOutcome) -> tuple[int, str] | None:
    m.IGNORED.labels("spans").inc(outcome.ignored)
    m.STORED.labels("spans").inc(outcome.stored)
    for status, count in outcome.changes.items():
        m.JOB_CHANGES.labels(status).inc(count)
    return _account_rejected("spans", "job-state span", outcome.rejected)


def _account_data_points(outcome: MetricsOutcome) -> tuple[int, str] | None:
    m.IGNORED.labels("data_points").inc(outcome.ignored)
    m.STORED.labels("data_points").inc(outcome.stored)
    for status in outcome.service_changes:
        m.SERVICE_CHANGES.labels(status).inc()
    for status in outcome.health_changes:
        m.HEALTH_CHANGES.labels(status).inc()
    return _account_rejected("data_points", "data point", outcome.rejected)


def _account_log_records(outcome: LogsOutcome) -> tuple[int, str] | None:
    m.STORED.labels("log_records").inc(outcome.received)
    return None


SPANS: Signal[TraceOutcome] = Signal(
    "spans",
    "job-state batch",
    "opentelemetry.proto.collector.trace.v1.TraceService",
    trace_service_pb2.ExportTraceServiceResponse,
    _account_spans,
    "rejected_spans",
)
DATA_POINTS: Signal[MetricsOutcome] = Signal(
    "data_points",
    "metrics batch",
    "opentelemetry.proto.collector.metrics.v1.MetricsService",
    metrics_service_pb2.ExportMetricsServiceResponse,
    _account_data_points,
    "rejected_data_points",
)
# the copy of log records that name a connected service (the records themselves go
# from the collector to Elasticsearch): the handler makes those services known
LOG_RECORDS: Signal[LogsOutcome] = Signal(
    "log_records",
    "logs batch",
    "opentelemetry.proto.collector.logs.v1.LogsService",
    logs_service_pb2.ExportLogsServiceResponse,
    _account_log_records,
)


class ExportService(Generic[OutcomeT]):
    """One signal's ``Export``, receiving the request's raw bytes: a worker process
    parses them, and the front stays free to receive (see ``add_to_server``)."""

    def __init__(
        self,
        signal: Signal[OutcomeT],
        handle: Callable[[bytes], OutcomeT],
        auth: Authenticator,
        outcomes: BatchOutcomes | None = None,
    ) -> None:
        self._signal = signal
        self._handle = handle
        self._auth = auth
        self._outcomes = outcomes or BatchOutcomes()

    def Export(self, data: bytes, context: grpc.ServicerContext) -> Message:
        signal = self._signal
        self._auth.check(context)
        started = time.perf_counter()
        digest = self._outcomes.arrived(data)
        outcome = self._handle(data)
        m.observe_store(signal.label, outcome.store_seconds, outcome.not_stored is None)
        m.RECEIVED.labels(signal.label).inc(outcome.received)
        refused = outcome.not_stored
        if refused is not None:
            code = (
                grpc.StatusCode.UNAVAILABLE
                if refused.retryable
                else grpc.StatusCode.INVALID_ARGUMENT
            )
            m.REFUSED_BATCHES.labels(signal.label, code.name, refused.reason).inc()
            if refused.retryable:
                self._outcomes.refused(signal.label, data, digest, refused.reason, refused.message)
            log.warning("%s not stored (%s): %s", signal.what, code.name, refused.message)
            context.abort(code, f"{signal.what} not stored: {refused.message}")
        self._outcomes.stored(signal.label, digest)
        partial = signal.account(outcome)
        m.BATCH_SECONDS.labels(signal.label).observe(time.perf_counter() - started)
        response = signal.response()
        if partial is not None and signal.rejected_field is not None:
            setattr(response.partial_success, signal.rejected_field, partial[0])  # type: ignore[attr-defined]
            response.partial_success.error_message = partial[1]  # type: ignore[attr-defined]
        return response

    def add_to_server(self, server: grpc.Server) -> None:
        handler = grpc.method_handlers_generic_handler(
            self._signal.service,
            {
                "Export": grpc.unary_unary_rpc_method_handler(
                    self.Export,
                    request_deserializer=None,
                    response_serializer=lambda response: response.SerializeToString(),
                )
            },
        )
        server.add_generic_rpc_handlers((handler,))


def TraceService(
    handle: TraceHandler, auth: Authenticator, outcomes: BatchOutcomes | None = None
) -> ExportService[TraceOutcome]:
    return ExportService(SPANS, handle, auth, outcomes)


def MetricsService(
    handle: MetricsHandler, auth: Authenticator, outcomes: BatchOutcomes | None = None
) -> ExportService[MetricsOutcome]:
    """Connected-service checks, component health and resources, derived and stored."""
    return ExportService(DATA_POINTS, handle, auth, outcomes)


def LogsService(
    handle: LogsHandler, auth: Authenticator, outcomes: BatchOutcomes | None = None
) -> ExportService[LogsOutcome]:
    return ExportService(LOG_RECORDS, handle, auth, outcomes)
