"""Retry and cancel commands: which job may be asked what, and the command record (pure).

A command asks the service that runs a job (the job's ``service.name``) to act on it.
A job runner of that service claims it, acts, and marks it done or failed::

    pending --claim--> claimed --done--> done | failed
                          \\-- lease over, never marked: claimable again (at most
                              MAX_CLAIMS times, then failed: a poison command
                              cannot hold a runner for ever)

A retry runs the job again as a new job id with ``scheduler.job.retry_of`` and
``attempt + 1``, with the parameters of the failed run: the runner recorded them as
its metadata ``params.<name>``, so any runner of the service can retry a job that it
did not run itself, after a restart too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from b2c_monitoring.contract import JobState
from b2c_monitoring.processors.jobs import Job, Scalar

# metadata keys of a run that hold its parameters (``params.since`` -> ``since``)
PARAMS_PREFIX: Final = "params."
DEFAULT_DECLINE_WINDOW: Final = timedelta(seconds=10)
MAX_CLAIMS: Final = 5

_CANCELLABLE: Final = frozenset({JobState.PENDING, JobState.RUNNING})
_RETRYABLE: Final = frozenset({JobState.FAILED, JobState.CANCELLED})


class CommandKind(StrEnum):
    CANCEL = "cancel"
    RETRY = "retry"


class CommandState(StrEnum):
    PENDING = "pending"
    CLAIMED = "claimed"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class RetrySpec:
    """How to run a job again: fixed when the retry is requested, so a command that
    is delivered twice starts the same new job id, never two."""

    job_type: str
    new_job_id: str
    attempt: int
    params: Mapping[str, Scalar]


@dataclass(frozen=True)
class JobCommand:
    id: str
    tenant_id: str
    job_id: str
    kind: CommandKind
    service_name: str
    requested_by: str
    requested_by_token: str | None
    requested_at: datetime
    retry: RetrySpec | None = None
    state: CommandState = CommandState.PENDING
    claimed_by: str | None = None
    claimed_at: datetime | None = None
    claims: int = 0
    done_at: datetime | None = None
    result: Mapping[str, Scalar] | None = None
    # the runners (claimers) that declined it: it is not theirs to carry out
    declined_by: tuple[str, ...] = ()


def _unreachable(job: Job) -> str | None:
    if job.service_name is None:
        return f"job {job.job_id!r} reported no service.name, so no job runner can be asked to act on it"
    return None


def can_cancel(job: Job) -> str | None:
    """Why ``job`` cannot be cancelled, or None if it can."""
    if job.status not in _CANCELLABLE:
        return f"job {job.job_id!r} is {job.status.value}; only pending or running jobs can be cancelled"
    return _unreachable(job)


def can_retry(job: Job) -> str | None:
    """Why ``job`` cannot be retried, or None if it can."""
    if job.status not in _RETRYABLE:
        return f"job {job.job_id!r} is {job.status.value}; only failed or cancelled jobs can be retried"
    if job.job_type is None:
        return f"job {job.job_id!r} reported no job type, so no runner knows how to run it again"
    return _unreachable(job)


def run_params(metadata: Mapping[str, Scalar]) -> dict[str, Scalar]:
    """The parameters a runner recorded in a run's metadata."""
    return {
        key[len(PARAMS_PREFIX) :]: value
        for key, value in metadata.items()
        if key.startswith(PARAMS_PREFIX) and len(key) > len(PARAMS_PREFIX)
    }


def params_metadata(params: Mapping[str, Scalar]) -> dict[str, Scalar]:
    """The metadata that records a run's parameters (the inverse of ``run_params``)."""
    return {PARAMS_PREFIX + key: value for key, value in params.items()}


def new_command(
    kind: CommandKind,
    job: Job,
    *,
    command_id: str,
    requested_by: str,
    requested_by_token: str | None,
    now: datetime,
    new_job_id: str | None = None,
) -> JobCommand:
    """The command asking ``job``'s service to act; the caller checked ``can_cancel`` /
    ``can_retry``. A retry needs ``new_job_id``, the id its new run will have."""
    reason = can_cancel(job) if kind is CommandKind.CANCEL else can_retry(job)
    if reason is not None:
        raise ValueError(reason)
    assert job.service_name is not None  # can_* refused otherwise
    retry: RetrySpec | None = None
    if kind is CommandKind.RETRY:
        if new_job_id is None:
            raise ValueError("a retry needs the id of its new run")
        assert job.job_type is not None
        retry = RetrySpec(
            job_type=job.job_type,
            new_job_id=new_job_id,
            attempt=job.attempt + 1,
            params=run_params(job.metadata),
        )
    return JobCommand(
        id=command_id,
        tenant_id=job.tenant_id,
        job_id=job.job_id,
        kind=kind,
        service_name=job.service_name,
        requested_by=requested_by,
        requested_by_token=requested_by_token,
        requested_at=now,
        retry=retry,
    )
