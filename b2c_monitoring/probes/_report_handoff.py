"""Job reports handed off by the host's threads and made in a thread of their own.

In a prefork Celery worker child the integration's two per-task handlers ran at
~40 us of CPU together (``bench/celery_worker.py --setups b2c-timed``), several times
what the same lines cost in a warm loop: between two tasks the child sleeps on its
pipe while the pool's other processes run, so the caches are cold and the cost grows
with the code and data a handler touches, not with the work it does. So a handler
only appends ``(make, entry, state, time)`` to a deque; this module's thread calls
``make`` for each, a batch at a time and warm, and gives the ``JobReport`` it returns
to the span processor (the ledger's gate, the SDK's batch processor, the exporter).

A report that must follow the handed-off ones (a failure, which the SDK's path
records with its exception) is sent after ``drain()``: one queue's order is kept.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, Final

from b2c_monitoring.contract import JobState
from b2c_monitoring.probes._export import Ledger
from b2c_monitoring.probes._job_reports import JobReport

_log = logging.getLogger(__name__)

Make = Callable[[Any, JobState, int], JobReport | None]
_STOP_WAIT_S: Final = 2.0


class ReportHandoff:
    def __init__(
        self,
        put: Callable[[JobReport], None],
        ledger: Ledger,
        *,
        capacity: int,
        interval_s: float,
    ) -> None:
        self._put = put
        self._ledger = ledger
        self._capacity = capacity
        self._interval_s = interval_s
        self._items: deque[tuple[Make, Any, JobState, int]] = deque()
        self._drain_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        _HANDOFFS.add(self)

    def leave(self, make: Make, entry: Any, state: JobState, time_ns: int) -> None:
        """From the host's thread: what ``make(entry, state, time_ns)`` will report."""
        if self._closed:
            return
        items = self._items
        if len(items) >= self._capacity:
            self._ledger.drop()
            return
        items.append((make, entry, state, time_ns))
        if self._thread is None:
            self._start()

    def drain(self) -> None:
        """Make every report left so far and give it to the span processor."""
        items = self._items
        with self._drain_lock:
            while items:
                make, entry, state, at = items.popleft()
                try:
                    report = make(entry, state, at)
                    if report is not None:
                        self._put(report)
                except Exception:
                    # the thread is the edge: one bad entry loses its report, not the rest
                    _log.exception("a job report (%s) was not made", state.value)

    def close(self) -> None:
        """Stop the thread and drain; later reports are ignored."""
        self._closed = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(_STOP_WAIT_S)
        self.drain()

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(
                    target=self._run, name="b2c-report-handoff", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self._interval_s)
            self.drain()

    def _forked(self) -> None:
        # the parent's thread did not come through the fork, and its reports are the
        # parent's to send
        self._items.clear()
        self._thread = None
        self._drain_lock = threading.Lock()
        self._start_lock = threading.Lock()


_HANDOFFS: weakref.WeakSet[ReportHandoff] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for handoff in list(_HANDOFFS):
        handoff._forked()


os.register_at_fork(after_in_child=_after_fork_in_child)
