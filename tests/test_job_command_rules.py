"""Which job may be cancelled or retried, and what the command carries (pure)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from b2c_monitoring.auth import Principal, Role
from b2c_monitoring.contract import JobState
from b2c_monitoring.errors import Forbidden
from b2c_monitoring.processors.job_commands import (
    CommandKind,
    CommandState,
    can_cancel,
    can_retry,
    new_command,
    params_metadata,
    run_params,
)
from b2c_monitoring.processors.jobs import Job, Scalar

T = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)

JOB = Job(
    tenant_id="acme",
    job_id="j-1",
    job_type="ERP_SYNC",
    status=JobState.RUNNING,
    progress_percent=40,
    created_at=T,
    started_at=T,
    completed_at=None,
    error_message=None,
    metadata={"params.since": "2026-11-01", "params.full": True, "rows": 7},
    attempt=1,
    retry_of=None,
    service_name="erp-connector",
    last_report_at=T,
    updated_at=T,
)


@pytest.mark.parametrize("status", [JobState.PENDING, JobState.RUNNING])
def test_pending_and_running_jobs_can_be_cancelled_not_retried(status: JobState) -> None:
    job = replace(JOB, status=status)
    assert can_cancel(job) is None
    reason = can_retry(job)
    assert reason == (f"job 'j-1' is {status.value}; only failed or cancelled jobs can be retried")


@pytest.mark.parametrize("status", [JobState.FAILED, JobState.CANCELLED])
def test_failed_and_cancelled_jobs_can_be_retried_not_cancelled(status: JobState) -> None:
    job = replace(JOB, status=status)
    assert can_retry(job) is None
    assert can_cancel(job) == (
        f"job 'j-1' is {status.value}; only pending or running jobs can be cancelled"
    )


def test_a_succeeded_job_can_be_neither_cancelled_nor_retried() -> None:
    job = replace(JOB, status=JobState.SUCCEEDED)
    assert can_cancel(job) is not None
    assert can_retry(job) is not None
    assert "succeeded" in (can_cancel(job) or "")


def test_a_job_without_a_service_cannot_be_reached() -> None:
    running, failed = (
        replace(JOB, service_name=None),
        replace(JOB, service_name=None, status=JobState.FAILED),
    )
    assert "service.name" in (can_cancel(running) or "")
    assert "service.name" in (can_retry(failed) or "")


def test_a_job_without_a_type_cannot_be_retried() -> None:
    assert "job type" in (can_retry(replace(JOB, job_type=None, status=JobState.FAILED)) or "")


def test_a_retry_runs_the_next_attempt_with_the_recorded_parameters() -> None:
    failed = replace(JOB, status=JobState.FAILED, attempt=2)
    command = new_command(
        CommandKind.RETRY,
        failed,
        command_id="c-1",
        requested_by="ops",
        requested_by_token="tok-1",
        now=T,
        new_job_id="j-2",
    )
    assert command.state is CommandState.PENDING
    assert (command.tenant_id, command.job_id, command.service_name) == (
        "acme",
        "j-1",
        "erp-connector",
    )
    assert command.retry is not None
    assert command.retry.new_job_id == "j-2"
    assert command.retry.attempt == 3
    assert command.retry.job_type == "ERP_SYNC"
    assert command.retry.params == {"since": "2026-11-01", "full": True}


def test_a_cancel_carries_no_run_and_a_refused_command_is_never_built() -> None:
    cancel = new_command(
        CommandKind.CANCEL, JOB, command_id="c", requested_by="ops", requested_by_token=None, now=T
    )
    assert cancel.retry is None
    with pytest.raises(ValueError, match="only failed or cancelled"):
        new_command(
            CommandKind.RETRY,
            JOB,
            command_id="c",
            requested_by="ops",
            requested_by_token=None,
            now=T,
            new_job_id="x",
        )


def test_parameters_round_trip_through_metadata() -> None:
    params: dict[str, Scalar] = {"since": "2026-11-01", "limit": 500, "full": False, "ratio": 0.5}
    assert run_params({**params_metadata(params), "other": 1, "params.": "x"}) == params


def _principal(role: Role) -> Principal:
    return Principal(token_id="t", name="n", role=role, tenants=None)


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        (Role.VIEWER, {Role.VIEWER}),
        (Role.OPERATOR, {Role.VIEWER, Role.OPERATOR}),
        (Role.ADMIN, {Role.VIEWER, Role.OPERATOR, Role.ADMIN}),
        (Role.PROBE, {Role.PROBE}),
    ],
)
def test_roles_allow_what_they_always_did_and_a_probe_only_probe_endpoints(
    role: Role, allowed: set[Role]
) -> None:
    principal = _principal(role)
    for needed in Role:
        if needed in allowed:
            principal.require(needed)
        else:
            with pytest.raises(Forbidden, match=f"needs the {needed.value} role"):
                principal.require(needed)
