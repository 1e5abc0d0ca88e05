"""Derivation in worker processes, so that the processor uses every core.

Decoding and deriving reports is CPU-bound Python; one process would hold the GIL
for all of it. The gRPC front hands each export request's bytes to a pool of
spawned processes (spawn, not fork: the front has gRPC's threads running), each with
its own database pool. A worker that dies breaks the pool: the request in flight is
answered with a retryable status (the collector keeps it) and a new pool is made.

A worker ends when the front dies, however it dies (``kill -9`` included), so that a
crashed processor leaves no worker holding Postgres connections beside its
successor: the kernel kills it (``PR_SET_PDEATHSIG``), and, since that signal follows
the death of the *thread* that spawned the worker rather than of the process, a
thread of the worker also waits on multiprocessing's parent sentinel (a pipe that
reaches EOF when the front's process is gone) and exits then. The resource tracker
ends by itself once no process holds its pipe any more.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import multiprocessing
import os
import signal
import sys
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Final

from b2c_monitoring.receivers.metrics_handler import MetricsOutcome, handle_metrics_export
from b2c_monitoring.receivers.service_logs import LogsOutcome, handle_logs_export
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


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """End this worker when the front dies (see the module's docstring)."""
    parent = multiprocessing.parent_process()
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            log.warning("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
    if parent is None:
        return

    def watch() -> None:
        parent.join()  # returns when the front's end of the sentinel pipe is closed
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


# Young objects a collection waits for. A batch makes some ten objects a span (decoded
# protobuf wrappers, reports, jobs, rows), all freed by reference counting when it is
# done and none in a cycle; at CPython's 700 the collector ran several times a batch,
# found nothing, and cost ~5 us of a worker's ~40-50 us a span (counted with
# gc.callbacks, bench/worker_cpu.py).
_GC_YOUNG: Final = 100_000


def quiet_gc() -> None:
    """Spare the cyclic garbage collector's walks over what lives for the worker's life.

    ``gc.freeze()`` moves everything alive now (the imported modules, their classes and
    functions) to a generation no collection visits; a higher young threshold lets a
    batch's short-lived objects be freed by reference counting before a collection
    walks them. Cycles are still collected, only less often.
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(_GC_YOUNG, middle, old)


def _init_worker(settings: Settings) -> None:
    global _store, _metrics, _default_tenant, _redact_patterns
    _die_with_parent()
    pool = make_pool(settings.database_url, max_size=2, name="b2c-processor-worker", utc=True)
    pool.open(wait=False)
    _store = JobStore(pool)
    _metrics = MetricsStore(pool, policy_from(settings))
    _default_tenant = settings.default_tenant
    # the collector masks these in logs; the same in what the processor stores
    _redact_patterns = compile_patterns(settings.log_redact_patterns)
    quiet_gc()


# A bug must not reach the collector as UNKNOWN, which it does not retry: the batch
# would be lost. At this process edge it is logged and answered as retryable.
_BUG = "an unexpected error in the processor; see its log"


def _handle(data: bytes) -> TraceOutcome:
    assert _store is not None, "worker not initialised"
    try:
        return handle_trace_export(_store, _default_tenant, data, _redact_patterns)
    except Exception:
        log.exception("unexpected error deriving a trace export")
        return TraceOutcome(not_stored=NotStored(True, _BUG, "bug"))


def _handle_metrics(data: bytes) -> MetricsOutcome:
    assert _metrics is not None, "worker not initialised"
    try:
        return handle_metrics_export(_metrics, _default_tenant, data, _redact_patterns)
    except Exception:
        log.exception("unexpected error deriving a metrics export")
        return MetricsOutcome(not_stored=NotStored(True, _BUG, "bug"))


def _handle_logs(data: bytes) -> LogsOutcome:
    assert _metrics is not None, "worker not initialised"
    try:
        return handle_logs_export(_metrics, _default_tenant, data)
    except Exception:
        log.exception("unexpected error deriving a logs export")
        return LogsOutcome(not_stored=NotStored(True, _BUG, "bug"))


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
            return TraceOutcome(
                not_stored=NotStored(True, "a derivation worker died; retry", "worker_died")
            )

    def metrics(self, data: bytes) -> MetricsOutcome:
        executor = self._executor
        try:
            return executor.submit(_handle_metrics, data).result()
        except BrokenProcessPool:
            self._replace(executor)
            return MetricsOutcome(
                not_stored=NotStored(True, "a derivation worker died; retry", "worker_died")
            )

    def logs(self, data: bytes) -> LogsOutcome:
        executor = self._executor
        try:
            return executor.submit(_handle_logs, data).result()
        except BrokenProcessPool:
            self._replace(executor)
            return LogsOutcome(
                not_stored=NotStored(True, "a derivation worker died; retry", "worker_died")
            )

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        log.error("a derivation worker died; starting a new pool")
        with self._lock:
            if self._executor is broken:
                self._executor = self._new_executor()
                broken.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
