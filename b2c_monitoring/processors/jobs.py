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


def _earliest(
    current: str | None, current_at: int | None, value: str | None, at: datetime
) -> tuple[str | None, int | None]:
    """Keep the value of the earliest report that has one (ties: the smaller value)."""
    if value is None:
        return current, current_at
    stamp = _stamp(at)
    if current is None or current_at is None or (stamp, value) < (current_at, current):
        return value, stamp
    return current, current_at


def _new_job(report: JobReport, now: datetime) -> Job:
    stamp = _stamp(report.at)
    provenance: dict[str, int] = {f"metadata.{key}": stamp for key in report.metadata}
    for name, value in (
        ("job_type", report.job_type),
        ("retry_of", report.retry_of),
        ("service_name", report.service_name),
    ):
        if value is not None:
            provenance[name] = stamp
    terminal = report.state.terminal
    return Job(
        tenant_id=report.tenant_id,
        job_id=report.job_id,
        job_type=report.job_type,
        status=report.state,
        progress_percent=_reported_progress(report),
        created_at=report.at,
        started_at=report.at if report.state is JobState.RUNNING else None,
        completed_at=report.at if terminal else None,
        error_message=report.error_message if terminal else None,
        metadata=dict(report.metadata),
        attempt=report.attempt or 1,
        retry_of=report.retry_of,
        service_name=report.service_name,
        last_report_at=report.at,
        updated_at=now,
        provenance=provenance,
    )


def _merge(job: Job, report: JobReport, now: datetime) -> Job:
    status, completed_at, error_message = job.status, job.completed_at, job.error_message
    if report.state.terminal:
        if not job.status.terminal or (
            job.completed_at is not None
            and _terminal_key(report.state, report.at, report.error_message)
            < _terminal_key(job.status, job.completed_at, job.error_message)
        ):
            status, completed_at, error_message = report.state, report.at, report.error_message
    elif not job.status.terminal and _RANK[report.state] > _RANK[job.status]:
        status = report.state

    started_at = job.started_at
    if report.state is JobState.RUNNING and (started_at is None or report.at < started_at):
        started_at = report.at

    provenance = dict(job.provenance)
    fields: dict[str, str | None] = {}
    for name, current, value in (
        ("job_type", job.job_type, report.job_type),
        ("retry_of", job.retry_of, report.retry_of),
        ("service_name", job.service_name, report.service_name),
    ):
        kept, kept_at = _earliest(current, provenance.get(name), value, report.at)
        fields[name] = kept
        if kept_at is not None:
            provenance[name] = kept_at

    metadata = dict(job.metadata)
    stamp = _stamp(report.at)
    for key, meta_value in report.metadata.items():
        seen = provenance.get(f"metadata.{key}")
        # latest report wins; at the same instant the larger value, so order cannot matter
        if seen is None or (stamp, repr(meta_value)) > (seen, repr(metadata.get(key))):
            metadata[key] = meta_value
            provenance[f"metadata.{key}"] = stamp

    return Job(
        tenant_id=job.tenant_id,
        job_id=job.job_id,
        job_type=fields["job_type"],
        status=status,
        progress_percent=max(job.progress_percent, _reported_progress(report)),
        created_at=min(job.created_at, report.at),
        started_at=started_at,
        completed_at=completed_at,
        error_message=error_message,
        metadata=metadata,
        attempt=max(job.attempt, report.attempt or 1),
        retry_of=fields["retry_of"],
        service_name=fields["service_name"],
        last_report_at=max(job.last_report_at, report.at),
        updated_at=now,
        provenance=provenance,
    )


def derive(job: Job | None, report: JobReport, now: datetime) -> tuple[Job, list[JobChange]]:
    """Apply one report to the stored job (``None`` if unknown so far).

    Returns the new job and the changes of status or progress it made; a duplicate
    or an outdated report returns the job unchanged (``updated_at`` included) and
    no change.
    """
    if job is None:
        new = _new_job(report, now)
        return new, [_change(new, report.at)]
    merged = _merge(job, report, now)
    if merged == job:
        return job, []
    if (merged.status, merged.progress_percent) == (job.status, job.progress_percent):
        return merged, []
    return merged, [_change(merged, report.at)]


def _change(job: Job, at: datetime) -> JobChange:
    return JobChange(
        tenant_id=job.tenant_id,
        job_id=job.job_id,
        status=job.status,
        progress_percent=job.progress_percent,
        at=at,
        error_message=job.error_message if job.status is JobState.FAILED else None,
    )


def derive_all(
    job: Job | None, reports: list[JobReport], now: datetime
) -> tuple[Job | None, list[JobChange]]:
    """Fold several reports of one job, in the order given."""
    changes: list[JobChange] = []
    for report in reports:
        job, more = derive(job, report, now)
        changes.extend(more)
    return job, changes
