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

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from b2c_monitoring.receivers import pipeline_metrics as m
from b2c_monitoring.receivers.batch_outcomes import BatchOutcomes
from b2c_monitoring.receivers.metrics_handler import MetricsHandler
from b2c_monitoring.receivers.service_logs import LogsHandler
from b2c_monitoring.receivers.traces import TraceHandler

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


class TraceService:
    """``TraceService.Export``, receiving the request's raw bytes (see ``add_to_server``)."""

    def __init__(
        self, handle: TraceHandler, auth: Authenticator, outcomes: BatchOutcomes | None = None
    ) -> None:
        self._handle = handle
        self._auth = auth
        self._outcomes = outcomes or BatchOutcomes()

    def Export(
        self, data: bytes, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self._auth.check(context)
        started = time.perf_counter()
        digest = self._outcomes.arrived(data)
        outcome = self._handle(data)
        m.observe_store("spans", outcome.store_seconds, outcome.not_stored is None)
        m.RECEIVED.labels("spans").inc(outcome.received)
        m.IGNORED.labels("spans").inc(outcome.ignored)
        for reason, _ in outcome.rejected:
            m.REJECTED.labels("spans", reason).inc()
        if outcome.not_stored is not None:
            code = (
                grpc.StatusCode.UNAVAILABLE
                if outcome.not_stored.retryable
                else grpc.StatusCode.INVALID_ARGUMENT
            )
            m.REFUSED_BATCHES.labels("spans", code.name, outcome.not_stored.reason).inc()
            if outcome.not_stored.retryable:
                self._outcomes.refused(
                    "spans", data, digest, outcome.not_stored.reason, outcome.not_stored.message
                )
            log.warning(
                "job-state batch not stored (%s): %s", code.name, outcome.not_stored.message
            )
            context.abort(code, f"job-state batch not stored: {outcome.not_stored.message}")
        self._outcomes.stored("spans", digest)
        m.STORED.labels("spans").inc(outcome.stored)
        for status, count in outcome.changes.items():
            m.JOB_CHANGES.labels(status).inc(count)
        m.BATCH_SECONDS.labels("spans").observe(time.perf_counter() - started)
        response = trace_service_pb2.ExportTraceServiceResponse()
        if outcome.rejected:
            response.partial_success.rejected_spans = len(outcome.rejected)
            response.partial_success.error_message = _summary(outcome.rejected)
        return response

    def add_to_server(self, server: grpc.Server) -> None:
        # registered by hand so that Export gets the bytes unparsed: a worker process
        # parses them, and the front stays free to receive
        handler = grpc.method_handlers_generic_handler(
            "opentelemetry.proto.collector.trace.v1.TraceService",
            {
                "Export": grpc.unary_unary_rpc_method_handler(
                    self.Export,
                    request_deserializer=None,
                    response_serializer=trace_service_pb2.ExportTraceServiceResponse.SerializeToString,
                )
            },
        )
        server.add_generic_rpc_handlers((handler,))


class MetricsService:
    """``MetricsService.Export``: connected-service checks, component health and resources,
    derived and stored by ``handle`` (raw request bytes, like ``TraceService``)."""

    def __init__(
        self, handle: MetricsHandler, auth: Authenticator, outcomes: BatchOutcomes | None = None
    ) -> None:
        self._handle = handle
        self._auth = auth
        self._outcomes = outcomes or BatchOutcomes()

    def Export(
        self, data: bytes, context: grpc.ServicerContext
    ) -> metrics_service_pb2.ExportMetricsServiceResponse:
        self._auth.check(context)
        started = time.perf_counter()
        digest = self._outcomes.arrived(data)
        outcome = self._handle(data)
        m.observe_store("data_points", outcome.store_seconds, outcome.not_stored is None)
        m.RECEIVED.labels("data_points").inc(outcome.received)
        m.IGNORED.labels("data_points").inc(outcome.ignored)
        for reason, _ in outcome.rejected:
            m.REJECTED.labels("data_points", reason).inc()
        if outcome.not_stored is not None:
            code = (
                grpc.StatusCode.UNAVAILABLE
                if outcome.not_stored.retryable
                else grpc.StatusCode.INVALID_ARGUMENT
            )
            m.REFUSED_BATCHES.labels("data_points", code.name, outcome.not_stored.reason).inc()
            if outcome.not_stored.retryable:
                self._outcomes.refused(
                    "data_points",
                    data,
                    digest,
                    outcome.not_stored.reason,
                    outcome.not_stored.message,
                )
            log.warning("metrics batch not stored (%s): %s", code.name, outcome.not_stored.message)
            context.abort(code, f"metrics batch not stored: {outcome.not_stored.message}")
        self._outcomes.stored("data_points", digest)
        m.STORED.labels("data_points").inc(outcome.stored)
        for status in outcome.service_changes:
            m.SERVICE_CHANGES.labels(status).inc()
        for status in outcome.health_changes:
            m.HEALTH_CHANGES.labels(status).inc()
        m.BATCH_SECONDS.labels("data_points").observe(time.perf_counter() - started)
        response = metrics_service_pb2.ExportMetricsServiceResponse()
        if outcome.rejected:
            response.partial_success.rejected_data_points = len(outcome.rejected)
            response.partial_success.error_message = _summary(outcome.rejected, "data point")
        return response

    def add_to_server(self, server: grpc.Server) -> None:
        # raw bytes, as for traces: a worker process parses them
        handler = grpc.method_handlers_generic_handler(
            "opentelemetry.proto.collector.metrics.v1.MetricsService",
            {
                "Export": grpc.unary_unary_rpc_method_handler(
                    self.Export,
                    request_deserializer=None,
                    response_serializer=metrics_service_pb2.ExportMetricsServiceResponse.SerializeToString,
                )
            },
        )
        server.add_generic_rpc_handlers((handler,))


class LogsService:
    """``LogsService.Export``: the copy of log records that name a connected service (the
    records themselves go from the collector to Elasticsearch); ``handle`` makes those
    services known. Raw bytes, as for traces."""

    def __init__(
        self, handle: LogsHandler, auth: Authenticator, outcomes: BatchOutcomes | None = None
    ) -> None:
        self._handle = handle
        self._auth = auth
        self._outcomes = outcomes or BatchOutcomes()

    def Export(
        self, data: bytes, context: grpc.ServicerContext
    ) -> logs_service_pb2.ExportLogsServiceResponse:
        self._auth.check(context)
        started = time.perf_counter()
        digest = self._outcomes.arrived(data)
        outcome = self._handle(data)
        m.observe_store("log_records", outcome.store_seconds, outcome.not_stored is None)
        m.RECEIVED.labels("log_records").inc(outcome.received)
        if outcome.not_stored is not None:
            code = (
                grpc.StatusCode.UNAVAILABLE
                if outcome.not_stored.retryable
                else grpc.StatusCode.INVALID_ARGUMENT
            )
            m.REFUSED_BATCHES.labels("log_records", code.name, outcome.not_stored.reason).inc()
            if outcome.not_stored.retryable:
                self._outcomes.refused(
                    "log_records",
                    data,
                    digest,
                    outcome.not_stored.reason,
                    outcome.not_stored.message,
                )
            log.warning("logs batch not stored (%s): %s", code.name, outcome.not_stored.message)
            context.abort(code, f"logs batch not stored: {outcome.not_stored.message}")
        self._outcomes.stored("log_records", digest)
        m.STORED.labels("log_records").inc(outcome.received)
        m.BATCH_SECONDS.labels("log_records").observe(time.perf_counter() - started)
        return logs_service_pb2.ExportLogsServiceResponse()

    def add_to_server(self, server: grpc.Server) -> None:
        handler = grpc.method_handlers_generic_handler(
            "opentelemetry.proto.collector.logs.v1.LogsService",
            {
                "Export": grpc.unary_unary_rpc_method_handler(
                    self.Export,
                    request_deserializer=None,
                    response_serializer=logs_service_pb2.ExportLogsServiceResponse.SerializeToString,
                )
            },
        )
        server.add_generic_rpc_handlers((handler,))
