"""Nothing the collector acknowledged is lost when a part of the stack fails under load
(issue 14): for each fault, every acknowledged job stored in its final state, every
acknowledged report a timeline row exactly once, every acknowledged log record
indexed exactly once.

The faults break parts of a stack of this module's own (its own home and ports,
beside the test stack), so nothing else is disturbed. ``bench/faults.py`` is the long
version with figures; this one is short: 300 spans a second, faults of 10 s.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from b2c_monitoring.stack.base import Ports, StackLayout, repo_root
from b2c_monitoring.stack.local import LocalStack
from tests.fault_load import run_fault

# a stack of its own starts in the first test (Elasticsearch included)
pytestmark = [pytest.mark.integration, pytest.mark.fault, pytest.mark.timeout(600)]

RATE = 300  # spans a second: held by the 2 shared cores beside the other sessions


def _say(line: str) -> None:
    print(f"[fault stack] {line}", flush=True)


@pytest.fixture(scope="module")
def fault_stack() -> Iterator[LocalStack]:
    home = Path(os.environ.get("B2C_TEST_HOME") or repo_root() / ".b2c-test").resolve()
    offset = int(os.environ.get("B2C_TEST_PORT_OFFSET", "1000")) + 500
    local = LocalStack(StackLayout(home=home / "faults", ports=Ports(offset)), fast_unsafe=True)
    local.up(_say)
    yield local
    if os.environ.get("B2C_TEST_KEEP_STACK") != "1":
        local.down(_say)


@pytest.mark.parametrize(
    ("fault", "logs_per_s"),
    [
        ("kill-processor", 0),
        ("stop-postgres", 0),
        ("stop-elasticsearch", 50),
        ("stop-collector-with-queue", 0),
        ("kill-collector", 0),
    ],
)
def test_nothing_acknowledged_is_lost(fault_stack: LocalStack, fault: str, logs_per_s: int) -> None:
    outcome = run_fault(
        fault_stack,
        fault,
        rate=RATE,
        before=5,
        fault_seconds=10,
        after=5,
        wait=180,
        logs_per_s=logs_per_s,
    )
    c = outcome.count
    assert c.acked_reports > 0, "the collector acknowledged nothing"
    assert c.acked_final_jobs > 0
    if logs_per_s:
        assert c.acked_logs > 0
    assert (c.missing_rows, c.duplicate_rows) == (0, 0), c
    assert c.jobs_not_final == 0, c
    assert (c.missing_logs, c.duplicate_logs) == (0, 0), c
