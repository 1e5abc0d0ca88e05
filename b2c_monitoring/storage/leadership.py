"""One leading replica among several processors: a Postgres session advisory lock held,
on a connection of its own, for as long as the leader lives.

``Leadership.hold()`` is called every poll by the loop that needs a leader: the leader
checks that its connection (hence its lock) is still there, a standby tries to take the
lock. The lock goes with the session, so a leader that dies however it dies (``kill
-9``, OOM, pod eviction) leaves it at once: its kernel closes the socket and Postgres
ends the backend. A leader whose machine or network vanishes without closing the socket
is found by the session's TCP keepalives (set below; they apply to TCP connections
only) or by ``tcp_user_timeout``, within ``_KEEPALIVE_BOUND_S``.

A leader that cannot reach its connection any more steps down at its next poll; the
work it leads must stay safe with two leaders for that moment (the evaluator takes a
round lock of its own, notifications are claimed row by row).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Final

import psycopg

log = logging.getLogger(__name__)

# keepalive idle 10 s + 3 probes 5 s apart, and unacknowledged writes given up after 25 s
_KEEPALIVE_BOUND_S: Final = 25
_SESSION_SETTINGS: Final = (
    "SET tcp_keepalives_idle = 10",
    "SET tcp_keepalives_interval = 5",
    "SET tcp_keepalives_count = 3",
    f"SET tcp_user_timeout = {_KEEPALIVE_BOUND_S * 1000}",
)


class Leadership:
    """Whether this process holds advisory lock ``key`` (``name`` for the logs)."""

    def __init__(self, database_url: str, key: int, name: str) -> None:
        self._url = database_url
        self._key = key
        self._name = name
        self._conn: psycopg.Connection[Any] | None = None
        self._leading = False

    @property
    def leading(self) -> bool:
        """As of the last ``hold()`` (read from other threads)."""
        return self._leading

    def hold(self) -> bool:
        """Keep the lock or try to take it; True while this process leads. Never
        raises: a store that cannot be reached means not leading."""
        try:
            if self._conn is None:
                self._conn = psycopg.connect(
                    self._url,
                    autocommit=True,
                    connect_timeout=5,
                    application_name=f"b2c-leader-{self._name}",
                )
                for statement in _SESSION_SETTINGS:
                    self._conn.execute(statement)
            if self._leading:
                self._conn.execute("SELECT 1")
            else:
                row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self._key,)).fetchone()
                if row and row[0]:
                    self._leading = True
                    log.info("%s: this replica leads now", self._name)
        except psycopg.Error as exc:
            if self._leading:
                log.warning("%s: lost the lead (%s)", self._name, exc)
            self._drop()
        return self._leading

    def release(self) -> None:
        """Give the lead up (at a clean stop, so a standby takes it at its next poll)."""
        if self._leading:
            log.info("%s: giving up the lead", self._name)
        self._drop()

    def _drop(self) -> None:
        self._leading = False
        conn, self._conn = self._conn, None
        if conn is not None:
            # closing a broken connection: nothing left to free
            with contextlib.suppress(psycopg.Error):
                conn.close()
