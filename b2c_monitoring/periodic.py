"""A round of work every so often, in a daemon thread of its own, until stopped.

The processor's background loop: its maintenance and the alert evaluator and
notifier each run on it (the probes' ``Watch`` runs on the same schedule,
``run_every``, with the quiet logging a host's log needs). Rounds keep their
phase: ``every_s`` from the start, not from the end of the last round, and a round
that overran its slot skips the slots it missed instead of running late rounds back
to back. The loop is the thread's edge: whatever a round raises is logged and the
schedule goes on (a ``B2CError`` is an expected failure, logged without its
traceback; anything else is a bug, logged with it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Final

from b2c_monitoring.errors import B2CError

# how long stop() waits for a round in progress before leaving the daemon thread be
DEFAULT_STOP_WAIT_S: Final = 30.0


class Periodic:
    def __init__(
        self,
        name: str,
        every_s: float,
        round_: Callable[[], object],
        *,
        log: logging.Logger,
        on_stop: Callable[[], None] = lambda: None,
    ) -> None:
        if every_s <= 0:
            raise ValueError(f"every_s must be positive, not {every_s}")
        self.name = name
        self.every_s = every_s
        self._round = round_
        self._log = log
        self._on_stop = on_stop
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

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

    def _run_round(self) -> None:
        try:
            self._round()
        except B2CError as exc:
            self._log.warning("%s: round failed (next in %gs): %s", self.name, self.every_s, exc)
        except Exception:
            # the thread's edge: a bug must not end the loop for good
            self._log.exception("%s: round crashed (next in %gs)", self.name, self.every_s)

    def _run(self) -> None:
        run_every(self.every_s, self._stopping, self._run_round)


def run_every(every_s: float, stopping: threading.Event, round_: Callable[[], object]) -> None:
    """Calls ``round_`` every ``every_s`` seconds from now, in phase, until ``stopping``
    is set; ``round_`` must not raise (it is the caller's edge)."""
    next_at = time.monotonic()
    while not stopping.is_set():
        round_()
        next_at += every_s
        now = time.monotonic()
        if next_at <= now:
            # overran: skip the missed slots, keep the phase
            missed = int((now - next_at) // every_s) + 1
            next_at += missed * every_s
        stopping.wait(next_at - now)
