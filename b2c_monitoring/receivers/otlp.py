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
from datetime import UTC, datetime

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from b2c_monitoring.errors import B2CError, InvalidReport, StorageError
from b2c_monitoring.receivers import pipeline_metrics as m
from b2c_monitoring.receivers.spans import decode_request
from b2c_monitoring.storage.jobs import JobStore

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def _summary(rejected: list[InvalidReport]) -> str:
    reasons = Tally(r.reason for r in rejected)
    first = rejected[0].message
    counts = ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items()))
    return f"rejected {len(rejected)} job-state span(s) ({counts}); first: {first}"


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


class TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(
        self, store: JobStore, auth: Authenticator, default_tenant: str, clock: Clock = utc_now
    ) -> None:
        self._store = store
        self._auth = auth
        self._default_tenant = default_tenant
        self._clock = clock

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self._auth.check(context)
        started = time.perf_counter()
        batch = decode_request(request, self._default_tenant)
        total = len(batch.reports) + len(batch.rejected) + batch.ignored
        m.RECEIVED.labels("spans").inc(total)
        m.IGNORED.labels("spans").inc(batch.ignored)
        try:
            applied = self._store.apply(batch.reports, self._clock())
        except StorageError as exc:
            code = (
                grpc.StatusCode.UNAVAILABLE if exc.retryable else grpc.StatusCode.INVALID_ARGUMENT
            )
            m.REFUSED_BATCHES.labels("spans", code.name).inc()
            log.warning(
                "job-state batch of %d report(s) not stored (%s): %s",
                len(batch.reports),
                code.name,
                exc,
            )
            context.abort(code, f"job-state batch not stored: {exc.message}")
        except B2CError as exc:  # pragma: no cover - a bug; keep the data with the collector
            m.REFUSED_BATCHES.labels("spans", "UNAVAILABLE").inc()
            log.exception("unexpected error storing a job-state batch")
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        m.STORED.labels("spans").inc(len(batch.reports))
        for change in applied.changes:
            m.JOB_CHANGES.labels(change.status.value).inc()
        m.BATCH_SECONDS.labels("spans").observe(time.perf_counter() - started)
        response = trace_service_pb2.ExportTraceServiceResponse()
        if batch.rejected:
            for rejected in batch.rejected:
                m.REJECTED.labels("spans", rejected.reason).inc()
            response.partial_success.rejected_spans = len(batch.rejected)
            response.partial_success.error_message = _summary(batch.rejected)
        return response


class MetricsService(metrics_service_pb2_grpc.MetricsServiceServicer):
    """Accepts metrics; health and resource derivation reads them (connected services)."""

    def __init__(self, auth: Authenticator) -> None:
        self._auth = auth

    def Export(
        self,
        request: metrics_service_pb2.ExportMetricsServiceRequest,
        context: grpc.ServicerContext,
    ) -> metrics_service_pb2.ExportMetricsServiceResponse:
        self._auth.check(context)
        points = 0
        for rm in request.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    kind = metric.WhichOneof("data")
                    if kind is not None:
                        points += len(getattr(metric, kind).data_points)
        m.RECEIVED.labels("data_points").inc(points)
        m.IGNORED.labels("data_points").inc(points)
        return metrics_service_pb2.ExportMetricsServiceResponse()


class LogsService(logs_service_pb2_grpc.LogsServiceServicer):
    """Logs go from the collector to Elasticsearch; this service only counts what reaches it."""

    def __init__(self, auth: Authenticator) -> None:
        self._auth = auth

    def Export(
        self, request: logs_service_pb2.ExportLogsServiceRequest, context: grpc.ServicerContext
    ) -> logs_service_pb2.ExportLogsServiceResponse:
        self._auth.check(context)
        records = sum(len(sl.log_records) for rl in request.resource_logs for sl in rl.scope_logs)
        m.RECEIVED.labels("log_records").inc(records)
        m.IGNORED.labels("log_records").inc(records)
        return logs_service_pb2.ExportLogsServiceResponse()
