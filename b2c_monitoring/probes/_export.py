"""Bounded export of spans and log records, with the counts the SDK keeps to itself.

The SDK's batch processors drop telemetry when their queue is full, but they only
report it through internal metrics that are off unless
``OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED`` is set, and never as a number a host
can read. So each signal gets a ``Ledger``: a gate in front of the SDK's batch
processor admits an item only while fewer than ``capacity`` items are waiting, and
a wrapper around the exporter takes items off the ledger as the batch processor
hands them over. The gate is never looser than the SDK's own queue of the same
size, so the SDK never drops on its own and every drop is counted here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from opentelemetry.context import Context
from opentelemetry.sdk._logs import LogRecordProcessor, ReadableLogRecord, ReadWriteLogRecord
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    LogRecordExporter,
    LogRecordExportResult,
)
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from b2c_monitoring.probes._job_reports import JobReport

_log = logging.getLogger(__name__)

# The SDK's default; a smaller queue caps the batch too (the SDK refuses batch > queue).
_MAX_EXPORT_BATCH = 512


@dataclass(frozen=True)
class SignalStats:
    """What happened to the items of one signal (spans or log records) so far."""

    exported: int
    dropped: int  # never reached the exporter: queue full, or still queued at shutdown
    failed: int  # reached the exporter, which gave up on them (collector down, refused)


_NONE: Final = SignalStats(exported=0, dropped=0, failed=0)


@dataclass(frozen=True)
class ProbeStats:
    spans: SignalStats
    logs: SignalStats
    metrics: SignalStats = _NONE  # data points

    @property
    def dropped(self) -> int:
        return self.spans.dropped + self.logs.dropped + self.metrics.dropped

    @property
    def failed(self) -> int:
        return self.spans.failed + self.logs.failed + self.metrics.failed


class Ledger:
    """Counts one signal's items from admission to the end of their export."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._lock = threading.Lock()
        self._waiting = 0
        self._exported = 0
        self._dropped = 0
        self._failed = 0

    def admit(self) -> bool:
        with self._lock:
            if self._waiting >= self._capacity:
                self._dropped += 1
                return False
            self._waiting += 1
            return True

    def drop(self) -> None:
        with self._lock:
            self._dropped += 1

    def taken(self, count: int) -> None:
        with self._lock:
            self._waiting = max(0, self._waiting - count)

    def finished(self, count: int, ok: bool) -> None:
        with self._lock:
            if ok:
                self._exported += count
            else:
                self._failed += count

    def abandon(self) -> None:
        """At shutdown: whatever is still waiting will never be exported."""
        with self._lock:
            self._dropped += self._waiting
            self._waiting = 0

    def stats(self) -> SignalStats:
        with self._lock:
            return SignalStats(exported=self._exported, dropped=self._dropped, failed=self._failed)


class _Once:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done = False

    def first(self) -> bool:
        with self._lock:
            done, self._done = self._done, True
            return not done


class LedgerSpanExporter(SpanExporter):
    def __init__(self, inner: SpanExporter, ledger: Ledger) -> None:
        self._inner = inner
        self._ledger = ledger
        self._shutdown = _Once()
        self._takes_reports = bool(getattr(inner, "takes_job_reports", False))

    def export(self, spans: Sequence[ReadableSpan | JobReport]) -> SpanExportResult:
        self._ledger.taken(len(spans))
        try:
            if not self._takes_reports:
                spans = [s.readable() if type(s) is JobReport else s for s in spans]
            result = self._inner.export(spans)  # type: ignore[arg-type]
        except Exception:
            # the batch processor's worker thread is the edge: log, count, go on
            _log.exception("span exporter raised; %d spans lost", len(spans))
            result = SpanExportResult.FAILURE
        self._ledger.finished(len(spans), result is SpanExportResult.SUCCESS)
        return result

    def shutdown(self) -> None:
        # Probes shuts the exporter down before the processor to cut retries short;
        # the processor's own later call must not reach the inner exporter again.
        if self._shutdown.first():
            self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


class LedgerLogExporter(LogRecordExporter):
    def __init__(self, inner: LogRecordExporter, ledger: Ledger) -> None:
        self._inner = inner
        self._ledger = ledger
        self._shutdown = _Once()

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        self._ledger.taken(len(batch))
        try:
            result = self._inner.export(batch)
        except Exception:
            _log.exception("log exporter raised; %d log records lost", len(batch))
            result = LogRecordExportResult.FAILURE
        self._ledger.finished(len(batch), result is LogRecordExportResult.SUCCESS)
        return result

    def shutdown(self) -> None:
        if self._shutdown.first():
            self._inner.shutdown()  # type: ignore[no-untyped-call]

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


class BoundedSpanProcessor(SpanProcessor):
    """A ``BatchSpanProcessor`` behind the ledger's gate."""

    def __init__(
        self, exporter: LedgerSpanExporter, ledger: Ledger, *, capacity: int, delay_millis: float
    ) -> None:
        self._ledger = ledger
        self._batch = BatchSpanProcessor(
            exporter,
            max_queue_size=capacity,
            schedule_delay_millis=delay_millis,
            max_export_batch_size=min(_MAX_EXPORT_BATCH, capacity),
        )

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        # the batch processor ignores unsampled spans; they must not occupy the gate
        if span.context is None or not span.context.trace_flags.sampled:
            return
        if self._ledger.admit():
            self._batch.on_end(span)

    def put(self, report: JobReport) -> None:
        """A job report, to be made a span in the export thread (it is sampled)."""
        if self._ledger.admit():
            self._batch.on_end(report)  # type: ignore[arg-type]

    def shutdown(self) -> None:
        self._batch.shutdown()  # type: ignore[no-untyped-call]

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._batch.force_flush(timeout_millis)


class BoundedLogProcessor(LogRecordProcessor):
    """A ``BatchLogRecordProcessor`` behind the ledger's gate."""

    def __init__(
        self, exporter: LedgerLogExporter, ledger: Ledger, *, capacity: int, delay_millis: float
    ) -> None:
        self._ledger = ledger
        self._batch = BatchLogRecordProcessor(
            exporter,
            schedule_delay_millis=delay_millis,
            max_export_batch_size=min(_MAX_EXPORT_BATCH, capacity),
            max_queue_size=capacity,
        )

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        if self._ledger.admit():
            self._batch.on_emit(log_record)

    def shutdown(self) -> None:
        self._batch.shutdown()  # type: ignore[no-untyped-call]

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._batch.force_flush(timeout_millis)
