"""Derivation in worker processes, so that the processor uses every core.

Decoding and deriving reports is CPU-bound Python; one process would hold the GIL
for all of it. The gRPC front hands each export request's bytes to a pool of
spawned processes (spawn, not fork: the front has gRPC's threads running), each with
its own database pool. A worker that dies breaks the pool: the request in flight is
answered with a retryable status (the collector keeps it) and a new pool is made.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from b2c_monitoring.receivers.metrics_handler import MetricsOutcome, handle_metrics_export
from b2c_monitoring.receivers.traces import NotStored, TraceOutcome, handle_trace_export
from b2c_monitoring.redaction import Patterns, compile_patterns
from b2c_monitoring.settings import Settings
from b2c_monitoring.storage.db import make_pool
from b2c_monitoring.storage.jobs import JobStore
from b2c_monitoring.storage.metrics import MetricsStore, policy_from

log = logging.getLogger(__name__)

_store: JobStore | None = None
_metrics: MetricsStore | None = None
_default_tenant = ""
_redact_patterns: Patterns = ()


def _init_worker(settings: Settings) -> None:
    global _store, _metrics, _default_tenant, _redact_patterns
    pool = make_pool(settings.database_url, max_size=2, name="b2c-processor-worker")
    pool.open(wait=False)
    _store = JobStore(pool)
    _metrics = MetricsStore(pool, policy_from(settings))
    _default_tenant = settings.default_tenant
    # the collector masks these in logs; the same in what the processor stores
    _redact_patterns = compile_patterns(settings.log_redact_patterns)


# A bug must not reach the collector as UNKNOWN, which it does not retry: the batch
# would be lost. At this process edge it is logged and answered as retryable.
_BUG = "an unexpected error in the processor; see its log"


def _handle(data: bytes) -> TraceOutcome:
    assert _store is not None, "worker not initialised"
    try:
        return handle_trace_export(_store, _default_tenant, data, _redact_patterns)
    except Exception:
        log.exception("unexpected error deriving a trace export")
        return TraceOutcome(not_stored=NotStored(True, _BUG))


def _handle_metrics(data: bytes) -> MetricsOutcome:
    assert _metrics is not None, "worker not initialised"
    try:
        return handle_metrics_export(_metrics, _default_tenant, data, _redact_patterns)
    except Exception:
        log.exception("unexpected error deriving a metrics export")
        return MetricsOutcome(not_stored=NotStored(True, _BUG))


def _ready() -> bool:
    return _store is not None


class WorkerPool:
    """A TraceHandler (call it) and a MetricsHandler (``metrics``) backed by worker processes."""

    def __init__(self, settings: Settings, processes: int) -> None:
        self._settings = settings
        self._processes = processes
        self._lock = threading.Lock()
        self._executor = self._new_executor()

    def warm(self) -> None:
        """Start every worker now: a spawned worker takes seconds to import, which the
        first export requests would otherwise wait for."""
        futures = [self._executor.submit(_ready) for _ in range(self._processes)]
        for future in futures:
            future.result()

    def _new_executor(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self._processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(self._settings,),
        )

    def __call__(self, data: bytes) -> TraceOutcome:
        executor = self._executor
        try:
            return executor.submit(_handle, data).result()
        except BrokenProcessPool:
            log.error("a derivation worker died; starting a new pool")
            with self._lock:
                if self._executor is executor:
                    self._executor = self._new_executor()
                    executor.shutdown(wait=False, cancel_futures=True)
            return TraceOutcome(not_stored=NotStored(True, "a derivation worker died; retry"))

    def metrics(self, data: bytes) -> MetricsOutcome:
        executor = self._executor
        try:
            return executor.submit(_handle_metrics, data).result()
        except BrokenProcessPool:
            self._replace(executor)
            return MetricsOutcome(not_stored=NotStored(True, "a derivation worker died; retry"))

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        log.error("a derivation worker died; starting a new pool")
        with self._lock:
            if self._executor is broken:
                self._executor = self._new_executor()
                broken.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
