"""Stalled and overdue jobs: flags computed from the stored job, its type's windows and ``now``.

- ``stalled``: a ``running`` job whose last report is older than its heartbeat window.
- ``overdue``: a ``pending`` job created longer ago than its start window.

Nothing is stored: a flag is a function of the job's own fields, so it clears by
itself when the job reports again (``last_report_at`` moves) or starts (``status``
moves). ``RULES`` is the one definition: ``job_flags`` reads it here, and
``storage/job_windows.flag_condition`` renders it as SQL for the job list's filter and
the alert facts (tests/test_job_flags_sql.py holds the two to the same answers).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final, Literal

from b2c_monitoring.contract import JobState
from b2c_monitoring.processors.jobs import Job


class JobFlag(StrEnum):
    STALLED = "stalled"
    OVERDUE = "overdue"

    @property
    def status(self) -> JobState:
        """The only status a job with this flag can be in."""
        return RULES[self].status


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


@dataclass(frozen=True)
class FlagRule:
    """A job in ``status`` whose ``clock`` field is older than its type's ``window``."""

    flag: JobFlag
    status: JobState
    clock: Literal["last_report_at", "created_at"]
    window: Literal["heartbeat", "start"]

    def window_of(self, windows: JobWindows) -> timedelta:
        return windows.heartbeat if self.window == "heartbeat" else windows.start

    def clock_of(self, job: Job) -> datetime:
        return job.last_report_at if self.clock == "last_report_at" else job.created_at

    def holds(self, job: Job, windows: JobWindows, now: datetime) -> bool:
        return job.status is self.status and now - self.clock_of(job) > self.window_of(windows)


RULES: Final[dict[JobFlag, FlagRule]] = {
    JobFlag.STALLED: FlagRule(JobFlag.STALLED, JobState.RUNNING, "last_report_at", "heartbeat"),
    JobFlag.OVERDUE: FlagRule(JobFlag.OVERDUE, JobState.PENDING, "created_at", "start"),
}


def job_flags(job: Job, windows: JobWindows, now: datetime) -> frozenset[JobFlag]:
    """The flags of ``job`` at ``now``, given the windows of its type."""
    return frozenset(flag for flag, rule in RULES.items() if rule.holds(job, windows, now))
