"""A crashed processor leaves nothing behind: its workers end with their front, and the
stack ends what a crashed part left before starting a new one.

The processor here is the stack's own part, run by the real Supervisor in a home and on
ports of this module's own, beside the shared test stack, on a database of its own
(``fresh_db``), so its Postgres connections can be counted without the test stack's.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import psycopg
import pytest

from b2c_monitoring.stack.apps import Processor
from b2c_monitoring.stack.base import StackLayout
from b2c_monitoring.stack.local import LocalStack
from b2c_monitoring.stack.postgres import PROCESSOR_ROLE
from b2c_monitoring.stack.supervisor import MARK, Supervisor
from tests.free_ports import free_ports
from tests.polling import eventually

pytestmark = pytest.mark.integration

WORKERS = 3


def _say(line: str) -> None:
    print(f"[own processor] {line}", flush=True)


class OwnProcessor(Processor):
    """The processor part with three workers, on a database of the test's own."""

    def base_env(self) -> dict[str, str]:
        return {**super().base_env(), "B2C_PROCESSOR_PROCESSES": str(WORKERS)}


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _children(pid: int) -> list[tuple[int, str]]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid:
            found.append((int(entry.name), cmdline))
    return found


def _worker_connections(admin_url: str, database: str) -> int:
    with psycopg.connect(admin_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = %s AND application_name = 'b2c-processor-worker'",
            (database,),
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_killed_processor_takes_its_workers_along_and_up_leaves_exactly_its_own(
    stack: LocalStack, fresh_db: str, tmp_path: Path
) -> None:
    database = fresh_db.rsplit("/", 1)[1]
    ports = free_ports(range(44000, 56000, 1000), "processor_grpc", "processor_metrics")
    layout = StackLayout(home=tmp_path / "home", ports=ports)
    part = OwnProcessor(
        layout,
        stack.postgres.url_for(PROCESSOR_ROLE, database),
        stack.processor_token,
        migration_database_url=fresh_db,
        elasticsearch_url=stack.elasticsearch.processor_url,
    )
    supervisor = Supervisor(layout, [part])
    admin = stack.postgres.admin_url()
    supervisor.start(part, _say, timeout=180)
    try:
        front = supervisor.pid(part)
        assert front is not None
        workers = [pid for pid, cmd in _children(front) if "spawn_main" in cmd]
        tracker = [pid for pid, cmd in _children(front) if "resource_tracker" in cmd]
        assert len(workers) == WORKERS, _children(front)
        assert len(tracker) == 1
        eventually(
            lambda: True if _worker_connections(admin, database) == WORKERS else None,
            timeout=30,
            what=f"{WORKERS} worker connections",
        )

        # a stopped worker runs no code of its own: the kernel's death signal still ends it
        os.kill(workers[0], signal.SIGSTOP)
        os.kill(front, signal.SIGKILL)
        eventually(
            lambda: True if not any(_alive(p) for p in workers + tracker) else None,
            timeout=15,
            what="the workers and the resource tracker ending with their front",
        )
        eventually(
            lambda: True if _worker_connections(admin, database) == 0 else None,
            timeout=15,
            what="the dead workers' connections closing",
        )

        # something of the crashed part that does not end by itself (marked as the
        # supervisor marks every process of a part): the next start ends it
        leftover = subprocess.Popen(
            ["sleep", "600"],
            env={**os.environ, MARK: supervisor.mark(part)},
            start_new_session=True,
        )
        assert supervisor.leftovers(part) == [leftover.pid]
        supervisor.start(part, _say, timeout=180)
        assert leftover.wait(timeout=15) == -signal.SIGTERM
        eventually(
            lambda: True if _worker_connections(admin, database) == WORKERS else None,
            timeout=30,
            what=f"{WORKERS} worker connections after the restart",
        )
        front = supervisor.pid(part)
        assert front is not None
        assert len([p for p, cmd in _children(front) if "spawn_main" in cmd]) == WORKERS
        assert _worker_connections(admin, database) == WORKERS
    finally:
        supervisor.stop(part, _say)
    assert supervisor.leftovers(part) == []
    eventually(
        lambda: True if _worker_connections(admin, database) == 0 else None,
        timeout=15,
        what="no worker connection after stop",
    )
