"""Running a probe on a schedule in a thread of its own, and bounding the host's code.

A ``Watch`` runs one probe (a service check, a health check, a resource sample)
every ``every_s`` seconds from the moment it starts, in a daemon thread, until it is
stopped. A round that overran its slot skips the slots it missed instead of running
late rounds back to back. Whatever a round raises is logged (once per distinct
failure, not once per round) and the schedule goes on.

``BoundedCall`` runs code the host handed in (a custom check, a health function)
for at most a timeout. Python cannot stop a thread, so a call that overruns keeps
its thread; the next round finds it still running and reports that at once rather
than starting a second one: a hanging function costs one thread, not one per round.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

from b2c_monitoring.periodic import run_every

T = TypeVar("T")

_log = logging.getLogger(__name__)
# how long stop() waits for a round in progress before leaving the daemon thread be
DEFAULT_STOP_WAIT_S: Final = 1.0


class QuietLog:
    """Logs a recurring failure when it first happens and when it changes, not each
    round: a probe every second must not flood the host's log."""

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger
        self._last: str | None = None

    def failure(self, message: str, *, exc_info: bool = False) -> None:
        if message != self._last:
            self._last = message
            self._logger.warning(message, exc_info=exc_info)

    def recovered(self, message: str) -> None:
        if self._last is not None:
            self._last = None
            self._logger.info(message)


class Watch(Generic[T]):
    """A probe running on a schedule; ``last`` is its latest outcome."""

    def __init__(
        self, name: str, every_s: float, round_: Callable[[], T], *, on_stop: Callable[[], None]
    ) -> None:
        self.name = name
        self.every_s = every_s
        self._round = round_
        self._on_stop = on_stop
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._last: T | None = None
        self._rounds = 0
        self._quiet = QuietLog(_log)
        self._thread = threading.Thread(target=self._run, name=f"b2c-probes-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def last(self) -> T | None:
        with self._lock:
            return self._last

    @property
    def rounds(self) -> int:
        """Rounds completed so far."""
        with self._lock:
            return self._rounds

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self._stopping.is_set()

    def request_stop(self) -> None:
        """Stop after the round in progress, without waiting for it."""
        if not self._stopping.is_set():
            self._stopping.set()
            self._on_stop()

    def stop(self, wait_s: float = DEFAULT_STOP_WAIT_S) -> None:
        """Stop after the round in progress; waits at most ``wait_s`` for it."""
        self.request_stop()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(wait_s)

    def run_once(self) -> T | None:
        """One round now, in the caller's thread (besides the schedule)."""
        try:
            outcome = self._round()
        except Exception:
            # the host's code or the SDK failed: the edge of a probe round
            self._quiet.failure(f"probe {self.name!r} failed; it goes on", exc_info=True)
            return None
        self._quiet.recovered(f"probe {self.name!r} works again")
        with self._lock:
            self._last = outcome
            self._rounds += 1
        return outcome

    def _run(self) -> None:
        run_every(self.every_s, self._stopping, self.run_once)


@dataclass(frozen=True)
class Returned(Generic[T]):
    value: T
    seconds: float


@dataclass(frozen=True)
class Raised:
    error: Exception
    seconds: float


@dataclass(frozen=True)
class TimedOut:
    seconds: float  # the timeout
    still_running: bool  # False: this call overran; True: an earlier one still runs


Outcome = Returned[T] | Raised | TimedOut


class BoundedCall(Generic[T]):
    """Calls ``fn`` in a worker thread and waits at most ``timeout_s`` for it."""

    def __init__(self, name: str, fn: Callable[[], T]) -> None:
        self._name = name
        self._fn = fn
        self._worker: threading.Thread | None = None

    def __call__(self, timeout_s: float) -> Outcome[T]:
        if self._worker is not None and self._worker.is_alive():
            return TimedOut(timeout_s, still_running=True)
        slot: list[Returned[T] | Raised] = []

        def call() -> None:
            started = time.perf_counter()
            try:
                value = self._fn()
            except Exception as exc:
                # the host's function failed: that is its result, reported by the probe
                slot.append(Raised(exc, time.perf_counter() - started))
            else:
                slot.append(Returned(value, time.perf_counter() - started))

        self._worker = threading.Thread(target=call, name=f"b2c-probes-{self._name}", daemon=True)
        self._worker.start()
        self._worker.join(timeout_s)
        return slot[0] if slot else TimedOut(timeout_s, still_running=False)
