"""Windows of stalled and overdue jobs per job type (table ``job_type_windows``, 0003)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Final

import psycopg_pool

from b2c_monitoring.auth import Principal
from b2c_monitoring.processors.job_flags import (
    RULES,
    JobFlag,
    JobWindows,
    TypeWindows,
    WindowPolicy,
)
from b2c_monitoring.storage import audit
from b2c_monitoring.storage.db import translate_errors

WINDOWS_JOIN: Final = "LEFT JOIN job_type_windows w ON w.job_type = j.job_type"


def flag_condition(flag: JobFlag, *, job: str = "j", windows: str = "w") -> str:
    """``RULES[flag]`` in SQL, over ``jobs`` as ``job`` LEFT JOINed to
    ``job_type_windows`` as ``windows`` on the job type (``WINDOWS_JOIN``: a type
    without its own window has the default); its parameters are ``flag_params``."""
    rule = RULES[flag]
    return (
        f"{job}.status = '{rule.status.value}' AND {job}.{rule.clock} < "
        f"%(flag_now)s - coalesce({windows}.{rule.window}_window, %(flag_{rule.window})s)"
    )


def flag_params(default: JobWindows, now: datetime) -> dict[str, Any]:
    return {"flag_now": now, "flag_heartbeat": default.heartbeat, "flag_start": default.start}


def _seconds(window: timedelta | None) -> float | None:
    return None if window is None else window.total_seconds()


class JobWindowStore:
    def __init__(self, pool: psycopg_pool.ConnectionPool) -> None:
        self._pool = pool

    def all(self) -> dict[str, TypeWindows]:
        with translate_errors(), self._pool.connection() as conn:
            rows = conn.execute(
                "SELECT job_type, heartbeat_window, start_window FROM job_type_windows "
                "ORDER BY job_type"
            ).fetchall()
        return {row[0]: TypeWindows(row[0], row[1], row[2]) for row in rows}

    def policy(self, default: JobWindows) -> WindowPolicy:
        return WindowPolicy(default, self.all())

    def put(self, windows: TypeWindows, *, actor: Principal, now: datetime) -> TypeWindows:
        """Set both windows of a type (``None``: the default), audited as ``actor``'s."""
        with translate_errors(), self._pool.connection() as conn:
            conn.execute(
                "INSERT INTO job_type_windows (job_type, heartbeat_window, start_window) "
                "VALUES (%s, %s, %s) ON CONFLICT (job_type) DO UPDATE "
                "SET heartbeat_window = excluded.heartbeat_window, start_window = excluded.start_window",
                (windows.job_type, windows.heartbeat, windows.start),
            )
            audit.record(
                conn,
                audit.AuditEntry.by(
                    actor,
                    "job_type.windows",
                    windows.job_type,
                    at=now,
                    # the windows apply to the type in every tenant
                    tenant_id=None,
                    details={
                        "heartbeatSeconds": _seconds(windows.heartbeat),
                        "startSeconds": _seconds(windows.start),
                    },
                ),
            )
        return windows
