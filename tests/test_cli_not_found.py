"""What the CLI says when the API answers 404: what was not found, and which command
shows what the token can see; ``--json`` prints only what the API returned."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import psycopg_pool
import pytest

from b2c_monitoring.auth import Role
from b2c_monitoring.contract import JobState
from b2c_monitoring.processors.jobs import JobReport
from b2c_monitoring.storage.jobs import JobStore
from tests.api_process import cli
from tests.tokens import token

pytestmark = pytest.mark.integration

NO_ID = str(uuid.uuid4())

CASES = [
    (["jobs", "show", "no-such-job"], "job no-such-job", "`b2c jobs list` shows the jobs"),
    (["jobs", "logs", "no-such-job"], "job no-such-job", "`b2c jobs list` shows the jobs"),
    (["jobs", "cancel", "no-such-job"], "job no-such-job", "`b2c jobs list` shows the jobs"),
    (["alerts", "show", NO_ID], f"alert {NO_ID}", "`b2c alerts list` shows the alerts"),
    (["alerts", "ack", NO_ID], f"alert {NO_ID}", "`b2c alerts list` shows the alerts"),
    (
        ["alerts", "rules", "delete", NO_ID],
        f"alert rule {NO_ID}",
        "`b2c alerts rules list` shows the rules",
    ),
    (
        ["alerts", "maintenance", "end", NO_ID],
        f"maintenance window {NO_ID}",
        "`b2c alerts maintenance list` shows the windows",
    ),
    (
        ["monitor", "services", "--test", "no-such-service"],
        "service no-such-service",
        "`b2c monitor services` lists the services",
    ),
    (
        ["monitor", "services", "--errors", "no-such-service"],
        "service no-such-service",
        "`b2c monitor services` lists the services",
    ),
    (["admin", "tokens", "revoke", NO_ID], f"token {NO_ID}", "`b2c admin tokens list` shows"),
]


@pytest.mark.parametrize(("args", "what", "next_step"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_a_404_names_what_was_not_found_and_the_command_that_lists_it(
    api_url: str,
    pool: psycopg_pool.ConnectionPool,
    tenant: str,
    args: list[str],
    what: str,
    next_step: str,
) -> None:
    secret = token(pool, Role.ADMIN, [tenant])
    result = cli(api_url, secret, *args)
    assert result.returncode == 1, result.stdout
    assert result.stdout == ""
    assert "404" in result.stderr
    assert f"{what} not found in your tenants; {next_step}" in result.stderr
    # the general hint is replaced, not repeated
    assert "check the id or name" not in result.stderr


def test_another_tenants_job_is_not_found_like_an_absent_one_and_json_stays_the_api_body(
    api_url: str, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    now = datetime.now(UTC)
    JobStore(pool).apply([JobReport(f"{tenant}-other", "theirs", JobState.RUNNING, now)], now)
    secret = token(pool, Role.VIEWER, [tenant])
    hint = "job theirs not found in your tenants; `b2c jobs list` shows the jobs you can see"
    shown = cli(api_url, secret, "jobs", "show", "theirs")
    assert shown.returncode == 1
    assert hint in shown.stderr
    as_json = cli(api_url, secret, "jobs", "show", "theirs", "--json")
    assert as_json.returncode == 1
    assert as_json.stdout == ""  # nothing of ours on stdout: a program reads it
    assert hint in as_json.stderr
