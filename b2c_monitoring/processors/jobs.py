"""The job state machine: a pure function from (stored job, one report, now) to the new job.

The contract promises that the stored job is the same whatever order its reports
arrive in and however often each arrives. So every field is a merge that is
commutative, associative and idempotent over the set of reports:

- ``status``: pending < running < any terminal state. Among terminal reports the
  earliest wins (ties broken failed > cancelled > succeeded), so no later report
  moves a job out of a terminal state, and a late-arriving earlier terminal report
  gives the same answer as if it had arrived first.
- ``progress_percent``: the highest reported; a ``succeeded`` report counts as 100,
  so progress never goes down.
- ``created_at`` the earliest report, ``started_at`` the earliest ``running``
  report, ``completed_at`` the winning terminal report, ``last_report_at`` the latest.
- ``job_type``, ``retry_of``, ``service_name``: from the earliest report that has one;
  ``attempt``: the highest; ``metadata``: per key, the value of the latest report
  that set it. ``provenance`` keeps the report time behind each of these so the
  merge stays order-independent across export requests.

No clock, database or network here: ``now`` is passed in and only stamps
``updated_at``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

from b2c_monitoring.contract import JobState
from b2c_monitoring.frozen_init import fast_init

Scalar = str | bool | int | float

_RANK: Final = {
    JobState.PENDING: 0,
    JobState.RUNNING: 1,
    JobState.SUCCEEDED: 2,
    JobState.CANCELLED: 2,
    JobState.FAILED: 2,
}
# Among terminal reports at the same instant, the more alarming one wins.
_TERMINAL_TIEBREAK: Final = {JobState.FAILED: 0, JobState.CANCELLED: 1, JobState.SUCCEEDED: 2}


@fast_init
@dataclass(frozen=True)
class JobReport:
    """One job-state span, decoded and validated (``receivers/spans.py``)."""

    tenant_id: str
    job_id: str
    state: JobState
    at: datetime
    job_type: str | None = None
    progress: int | None = None
    attempt: int | None = None
    retry_of: str | None = None
    error_message: str | None = None
    service_name: str | None = None
    metadata: Mapping[str, Scalar] = field(default_factory=dict)


@fast_init
@dataclass(frozen=True)
class Job:
    """The stored job: the ADR's ``SchedulerJob`` plus what the merge needs."""

    tenant_id: str
    job_id: str
    job_type: str | None
    status: JobState
    progress_percent: int
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    error_message: str | None
    metadata: Mapping[str, Scalar]
    attempt: int
    retry_of: str | None
    service_name: str | None
    last_report_at: datetime
    # when it was last stored; not part of the job's value, so equality ignores it
    updated_at: datetime = field(compare=False)
    # report time (microseconds since the epoch) behind each "earliest wins" /
    # "latest wins" field; see module doc
    provenance: Mapping[str, int] = field(default_factory=dict)


@fast_init
@dataclass(frozen=True)
class JobChange:
    """A change of a job's status or progress: one row of its timeline."""

    tenant_id: str
    job_id: str
    status: JobState
    progress_percent: int
    at: datetime
    error_message: str | None


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)


def _stamp(at: datetime) -> int:
    """A report time as exact integer microseconds since the epoch (sortable, JSON-safe)."""
    return (at - _EPOCH) // _MICROSECOND


def _terminal_key(
    state: JobState, at: datetime, error: str | None
) -> tuple[datetime, int, int, str]:
    """Order of terminal reports: earliest first; at one instant the more alarming state,
    then one with an error message over one without, then the message itself."""
    return (at, _TERMINAL_TIEBREAK[state], 0 if error else 1, error or "")


def _reported_progress(report: JobReport) -> int:
    if report.state is JobState.SUCCEEDED:
        return 100
    return report.progress or 0


class _Draft:
    """A job being folded over reports: mutable inside ``derive_all`` only, so that a
    batch of reports builds one ``Job`` instead of one per report (the processor runs
    this for every job-state span)."""

    __slots__ = (
        "attempt",
        "completed_at",
        "created_at",
        "earliest",
        "error_message",
        "job_id",
        "last_report_at",
        "metadata",
        "progress_percent",
        "provenance",
        "started_at",
        "status",
        "tenant_id",
    )  # fmt: skip

    def __init__(self, job: Job) -> None:
        self.tenant_id = job.tenant_id
        self.job_id = job.job_id
        self.status = job.status
        self.progress_percent = job.progress_percent
        self.created_at = job.created_at
        self.started_at = job.started_at
        self.completed_at = job.completed_at
        self.error_message = job.error_message
        self.metadata = dict(job.metadata)
        self.attempt = job.attempt
        self.last_report_at = job.last_report_at
        self.provenance = dict(job.provenance)
        # the "earliest report wins" fields
        self.earliest: dict[str, str | None] = {
            "job_type": job.job_type,
            "retry_of": job.retry_of,
            "service_name": job.service_name,
        }

    @classmethod
    def new(cls, report: JobReport) -> _Draft:
        draft = cls.__new__(cls)
        stamp = _stamp(report.at)
        terminal = report.state.terminal
        draft.tenant_id = report.tenant_id
        draft.job_id = report.job_id
        draft.status = report.state
        draft.progress_percent = _reported_progress(report)
        draft.created_at = report.at
        draft.started_at = report.at if report.state is JobState.RUNNING else None
        draft.completed_at = report.at if terminal else None
        draft.error_message = report.error_message if terminal else None
        draft.metadata = dict(report.metadata)
        draft.attempt = report.attempt or 1
        draft.last_report_at = report.at
        draft.provenance = {f"metadata.{key}": stamp for key in report.metadata}
        draft.earliest = {
            "job_type": report.job_type,
            "retry_of": report.retry_of,
            "service_name": report.service_name,
        }
        for name, value in draft.earliest.items():
            if value is not None:
                draft.provenance[name] = stamp
        return draft

    def merge(self, report: JobReport) -> None:
        at = report.at
        state = report.state
        if state.terminal:
            if not self.status.terminal or (
                self.completed_at is not None
                and _terminal_key(state, at, report.error_message)
                < _terminal_key(self.status, self.completed_at, self.error_message)
            ):
                self.status, self.completed_at = state, at
                self.error_message = report.error_message
        elif not self.status.terminal and _RANK[state] > _RANK[self.status]:
            self.status = state

        if state is JobState.RUNNING and (self.started_at is None or at < self.started_at):
            self.started_at = at

        stamp = _stamp(at)
        provenance = self.provenance
        for name, value in (
            ("job_type", report.job_type),
            ("retry_of", report.retry_of),
            ("service_name", report.service_name),
        ):
            # the value of the earliest report that has one (ties: the smaller value)
            if value is None:
                continue
            current, current_at = self.earliest[name], provenance.get(name)
            if current is None or current_at is None or (stamp, value) < (current_at, current):
                self.earliest[name] = value
                provenance[name] = stamp

        metadata = self.metadata
        for key, meta_value in report.metadata.items():
            seen = provenance.get(f"metadata.{key}")
            # latest report wins; at the same instant the larger value, so order cannot matter
            if seen is None or (stamp, repr(meta_value)) > (seen, repr(metadata.get(key))):
                metadata[key] = meta_value
                provenance[f"metadata.{key}"] = stamp

        self.progress_percent = max(self.progress_percent, _reported_progress(report))
        self.created_at = min(self.created_at, at)
        self.attempt = max(self.attempt, report.attempt or 1)
        self.last_report_at = max(self.last_report_at, at)

    def change(self, at: datetime) -> JobChange:
        return JobChange(
            tenant_id=self.tenant_id,
            job_id=self.job_id,
            status=self.status,
            progress_percent=self.progress_percent,
            at=at,
            error_message=self.error_message if self.status is JobState.FAILED else None,
        )

    def freeze(self, now: datetime) -> Job:
        return Job(
            tenant_id=self.tenant_id,
            job_id=self.job_id,
            job_type=self.earliest["job_type"],
            status=self.status,
            progress_percent=self.progress_percent,
            created_at=self.created_at,
            started_at=self.started_at,
            completed_at=self.completed_at,
            error_message=self.error_message,
            metadata=self.metadata,
            attempt=self.attempt,
            retry_of=self.earliest["retry_of"],
            service_name=self.earliest["service_name"],
            last_report_at=self.last_report_at,
            updated_at=now,
            provenance=self.provenance,
        )


def timeline_entry(report: JobReport) -> JobChange:
    """The timeline row of one report: what that report said, at its own time.

    One row per distinct report whatever the order and however often it arrived
    (telemetry contract, "The job timeline"); unlike the derived changes, it does not
    depend on the reports stored before it. Progress is the report's own (a
    ``succeeded`` report counts as 100, one without progress as 0); the error message
    only on a ``failed`` report, as on the job.
    """
    return JobChange(
        tenant_id=report.tenant_id,
        job_id=report.job_id,
        status=report.state,
        progress_percent=_reported_progress(report),
        at=report.at,
        error_message=report.error_message if report.state is JobState.FAILED else None,
    )


def derive(job: Job | None, report: JobReport, now: datetime) -> tuple[Job, list[JobChange]]:
    """Apply one report to the stored job (``None`` if unknown so far).

    Returns the new job and the changes of status or progress it made; a duplicate
    or an outdated report returns the job unchanged (``updated_at`` included) and
    no change.
    """
    new, changes = derive_all(job, [report], now)
    assert new is not None
    return new, changes


def derive_all(
    job: Job | None, reports: list[JobReport], now: datetime
) -> tuple[Job | None, list[JobChange]]:
    """Fold several reports of one job in the order given: the same as ``derive`` on
    each in turn, one change per report that moved the status or the progress, and
    ``job`` itself back when no report changed it."""
    if not reports:
        return job, []
    changes: list[JobChange] = []
    if job is None:
        first, *rest = reports
        draft = _Draft.new(first)
        changes.append(draft.change(first.at))
    else:
        draft, rest = _Draft(job), reports
    for report in rest:
        before = (draft.status, draft.progress_percent)
        draft.merge(report)
        if (draft.status, draft.progress_percent) != before:
            changes.append(draft.change(report.at))
    after = draft.freeze(now)
    if job is not None and after == job:
        return job, []
    return after, changes
