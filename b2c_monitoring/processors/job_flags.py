"""Stalled and overdue jobs: flags computed from the stored job, its type's windows and ``now``.

- ``stalled``: a ``running`` job whose last report is older than its heartbeat window.
- ``overdue``: a ``pending`` job created longer ago than its start window.

Nothing is stored: a flag is a function of the job's own fields, so it clears by
itself when the job reports again (``last_report_at`` moves) or starts (``status``
moves). ``storage/jobs.py`` filters on the same rules in SQL; keep the two in step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from b2c_monitoring.contract import JobState
from b2c_monitoring.processors.jobs import Job


class JobFlag(StrEnum):
    STALLED = "stalled"
    OVERDUE = "overdue"

    @property
    def status(self) -> JobState:
        """The only status a job with this flag can be in."""
        return JobState.RUNNING if self is JobFlag.STALLED else JobState.PENDING


@dataclass(frozen=True)
class JobWindows:
    """How long a job of one type may stay silent while running, and wait before starting."""

    heartbeat: timedelta
    start: timedelta


@dataclass(frozen=True)
class TypeWindows:
    """Windows set for one job type; ``None`` falls back to the default."""

    job_type: str
    heartbeat: timedelta | None = None
    start: timedelta | None = None


@dataclass(frozen=True)
class WindowPolicy:
    default: JobWindows
    per_type: Mapping[str, TypeWindows] = field(default_factory=dict)

    def for_type(self, job_type: str | None) -> JobWindows:
        own = self.per_type.get(job_type) if job_type is not None else None
        if own is None:
            return self.default
        return JobWindows(
            heartbeat=own.heartbeat if own.heartbeat is not None else self.default.heartbeat,
            start=own.start if own.start is not None else self.default.start,
        )


def job_flags(job: Job, windows: JobWindows, now: datetime) -> frozenset[JobFlag]:
    """The flags of ``job`` at ``now``, given the windows of its type."""
    if job.status is JobState.RUNNING and now - job.last_report_at > windows.heartbeat:
        return frozenset({JobFlag.STALLED})
    if job.status is JobState.PENDING and now - job.created_at > windows.start:
        return frozenset({JobFlag.OVERDUE})
    return frozenset()
