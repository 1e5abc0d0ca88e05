"""Retry and cancel that reach the job, on the real test stack.

Jobs run under the probes library's job runner and report through the real
collector and processor into Postgres; operators ask through the admin API (httpx)
and the CLI (a subprocess); the runner long-polls the API's control endpoint. The API
is a process of this module's own (see ``OwnApi``) on the stack's Postgres. Each test
has a tenant and a service name of its own, so tests and engineers sharing the stack
never take each other's commands.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg_pool
import pytest

from b2c_monitoring.auth import Role
from b2c_monitoring.contract import JobState
from b2c_monitoring.errors import Conflict
from b2c_monitoring.probes import JobRun, JobRunner, Probes, ProbeSettings
from b2c_monitoring.processors.job_commands import (
    MAX_CLAIMS,
    CommandKind,
    CommandState,
    new_command,
)
from b2c_monitoring.processors.jobs import Job, JobReport, Scalar
from b2c_monitoring.stack.apps import Api
from b2c_monitoring.stack.base import Ports, StackLayout
from b2c_monitoring.stack.local import LocalStack
from b2c_monitoring.stack.supervisor import Supervisor
from b2c_monitoring.storage.db import make_pool
from b2c_monitoring.storage.job_commands import JobCommandStore
from b2c_monitoring.storage.jobs import JobStore
from tests.api_process import cli, free_port
from tests.hub_clients import HubClient
from tests.polling import eventually
from tests.tokens import bearer, token

pytestmark = pytest.mark.integration

LEASE = timedelta(seconds=30)


def _say(line: str) -> None:
    print(f"[own api] {line}", flush=True)


class OwnApi(Api):
    """The stack's API part, on a port and in a home of this module's own: the shared
    test stack's API may run older code, and restarting it would race other sessions
    that start it when they find it down (their start loses the bind and leaves the
    pid file naming a dead process)."""

    def __init__(self, layout: StackLayout, stack: LocalStack) -> None:
        super().__init__(layout, stack.postgres.url, stack.processor_token)
        self._stack_env = stack.api.base_env()

    def base_env(self) -> dict[str, str]:
        return {**self._stack_env, "B2C_API_URL": f"http://127.0.0.1:{self.layout.ports.api}"}


@dataclass(frozen=True)
class Served:
    stack: LocalStack
    supervisor: Supervisor
    api: OwnApi

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api.layout.ports.api}"


@pytest.fixture(scope="module")
def served(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """An admin API of this checkout, run by the real Supervisor (restartable)."""
    layout = StackLayout(
        home=tmp_path_factory.mktemp("own-api"), ports=Ports(free_port() - Ports().api)
    )
    api = OwnApi(layout, stack)
    supervisor = Supervisor(layout, [api])
    supervisor.start(api, _say)
    try:
        yield Served(stack, supervisor, api)
    finally:
        supervisor.stop(api, _say)


@pytest.fixture(scope="module")
def pool(served: Served) -> Iterator[psycopg_pool.ConnectionPool]:
    p = make_pool(served.stack.postgres.url, max_size=4, name="job-commands-test")
    p.open(wait=True)
    yield p
    p.close()


@pytest.fixture
def api(served: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=15) as client:
        yield client


@pytest.fixture
def service() -> str:
    return f"erp-connector-{uuid.uuid4().hex[:8]}"


def job_state(
    api: httpx.Client, secret: str, job_id: str, state: str
) -> Callable[[], dict[str, Any] | None]:
    def probe() -> dict[str, Any] | None:
        response = api.get(f"/api/admin/jobs/{job_id}", headers=bearer(secret))
        if response.status_code == 200 and response.json()["status"] == state:
            body: dict[str, Any] = response.json()
            return body
        return None

    return probe


def command_state(
    api: httpx.Client, secret: str, job_id: str, states: set[str]
) -> Callable[[], dict[str, Any] | None]:
    def probe() -> dict[str, Any] | None:
        response = api.get(f"/api/admin/jobs/{job_id}/commands", headers=bearer(secret))
        items = response.json()["items"] if response.status_code == 200 else []
        if items and items[0]["state"] in states:
            command: dict[str, Any] = items[0]
            return command
        return None

    return probe


class Connector:
    """A service with the probes library and a job runner, as a host would embed them."""

    def __init__(self, served: Served, service: str, tenant: str, probe_token: str | None) -> None:
        self.probes = Probes(
            ProbeSettings(
                endpoint=f"http://127.0.0.1:{served.stack.layout.ports.otlp_grpc}",
                token=served.stack.probe_token,
                service_name=service,
                tenant_id=tenant,
            )
        )
        self.runs: list[tuple[str, int, dict[str, Scalar]]] = []
        self.started = threading.Event()
        self.runner: JobRunner = self.probes.job_runner(
            control_url=served.url if probe_token else None,
            token=probe_token,
            poll_wait_s=2,
        )
        self.runner.handler("ERP_SYNC")(self._sync)
        self.runner.handler("PIM_IMPORT")(self._import)

    def _sync(self, job: JobRun, params: Mapping[str, Scalar]) -> None:
        """Runs until cancelled (30 s at most, so a broken test leaves no thread behind)."""
        self.started.set()
        for step in range(1500):
            job.check_cancelled()
            if step % 50 == 0:
                job.progress(min(step // 15, 99))
            time.sleep(0.02)

    def _import(self, job: JobRun, params: Mapping[str, Scalar]) -> None:
        """Fails on the first attempt, succeeds on a retry."""
        self.runs.append((job.job_id, job.attempt, dict(params)))
        job.progress(30)
        if job.attempt == 1:
            raise ConnectionError("PIM answered 503 Service Unavailable")

    def close(self) -> None:
        self.runner.stop(5.0, cancel_running=True)
        self.probes.shutdown()


@pytest.fixture
def connectors(served: Served) -> Iterator[list[Connector]]:
    made: list[Connector] = []
    yield made
    for connector in made:
        connector.close()


def seed_job(
    pool: psycopg_pool.ConnectionPool,
    tenant: str,
    state: JobState,
    service: str | None,
    job_id: str | None = None,
) -> str:
    job_id = job_id or f"seeded-{uuid.uuid4()}"
    now = datetime.now(UTC)
    JobStore(pool).apply(
        [
            JobReport(
                tenant, job_id, JobState.RUNNING, now, job_type="ERP_SYNC", service_name=service
            ),
            *(
                [JobReport(tenant, job_id, state, now + timedelta(seconds=1), service_name=service)]
                if state is not JobState.RUNNING
                else []
            ),
        ],
        now,
    )
    return job_id


# cancel and retry reach the job


@pytest.mark.parametrize("via", ["api", "cli"])
def test_cancelling_a_running_job_stops_it_and_it_is_reported_cancelled_within_2s(
    via: str,
    served: Served,
    api: httpx.Client,
    pool: psycopg_pool.ConnectionPool,
    connectors: list[Connector],
    tenant: str,
    service: str,
) -> None:
    connector = Connector(served, service, tenant, token(pool, Role.PROBE, [tenant]))
    connectors.append(connector)
    viewer, operator = token(pool, Role.VIEWER, [tenant]), token(pool, Role.OPERATOR, [tenant])
    pending = connector.runner.submit("ERP_SYNC", tenant_id=tenant, params={"since": "2026-11-01"})
    assert connector.started.wait(10)
    eventually(job_state(api, viewer, pending.job_id, "running"), timeout=30, what="running")

    if via == "api":
        response = api.post(f"/api/admin/jobs/{pending.job_id}/cancel", headers=bearer(operator))
        assert response.status_code == 202, response.text
        command = response.json()
    else:
        result = cli(served.url, operator, "jobs", "cancel", pending.job_id, "--json")
        assert result.returncode == 0, result.stderr
        command = json.loads(result.stdout)
    assert (command["kind"], command["jobId"], command["serviceName"]) == (
        "cancel",
        pending.job_id,
        service,
    )

    job = eventually(
        job_state(api, viewer, pending.job_id, "cancelled"), timeout=15, what="job cancelled"
    )
    latency = datetime.fromisoformat(job["completedAt"]) - datetime.fromisoformat(
        command["requestedAt"]
    )
    print(f"cancel latency ({via}): request to cancelled report {latency.total_seconds():.3f} s")
    assert timedelta(0) < latency < timedelta(seconds=2)
    assert job["metadata"]["cancel_reason"].startswith("cancelled by operator-")
    done = eventually(
        command_state(api, viewer, pending.job_id, {"done"}), timeout=10, what="command done"
    )
    assert done["id"] == command["id"]
    assert done["claimedBy"].startswith("probe-")
    assert pending.job_id not in connector.runner.active_jobs


@pytest.mark.parametrize("via", ["api", "cli"])
def test_retrying_a_failed_job_runs_it_again_as_a_new_attempt_in_any_runner(
    via: str,
    served: Served,
    api: httpx.Client,
    pool: psycopg_pool.ConnectionPool,
    connectors: list[Connector],
    tenant: str,
    service: str,
) -> None:
    probe_token = token(pool, Role.PROBE, [tenant])
    viewer, operator = token(pool, Role.VIEWER, [tenant]), token(pool, Role.OPERATOR, [tenant])
    # the first run, in a runner that is gone by the time of the retry (a restart)
    first = Connector(served, service, tenant, None)
    try:
        failed = first.runner.submit("PIM_IMPORT", tenant_id=tenant, params={"file": "items.csv"})
    finally:
        first.close()
    eventually(job_state(api, viewer, failed.job_id, "failed"), timeout=30, what="job failed")
    second = Connector(served, service, tenant, probe_token)
    connectors.append(second)

    if via == "api":
        response = api.post(f"/api/admin/jobs/{failed.job_id}/retry", headers=bearer(operator))
        assert response.status_code == 202, response.text
        command = response.json()
    else:
        result = cli(served.url, operator, "jobs", "retry", failed.job_id)
        assert result.returncode == 0, result.stderr
        assert "Retry of job" in result.stdout
        command = eventually(
            command_state(api, viewer, failed.job_id, {"pending", "claimed", "done"}),
            what="the retry command",
        )
        assert command["retry"]["newJobId"] in result.stdout
    new_job_id = command["retry"]["newJobId"]
    assert command["retry"]["attempt"] == 2
    assert command["retry"]["params"] == {"file": "items.csv"}

    retried = eventually(
        job_state(api, viewer, new_job_id, "succeeded"), timeout=30, what="the retry succeeded"
    )
    assert (retried["retryOf"], retried["attempt"], retried["jobType"]) == (
        failed.job_id,
        2,
        "PIM_IMPORT",
    )
    assert retried["metadata"]["params.file"] == "items.csv"
    assert second.runs == [(new_job_id, 2, {"file": "items.csv"})]
    done = eventually(command_state(api, viewer, failed.job_id, {"done"}), what="command done")
    assert done["result"] == {"newJobId": new_job_id}

    # asking again answers the same command: the job runs again once, not twice
    again = api.post(f"/api/admin/jobs/{failed.job_id}/retry", headers=bearer(operator))
    assert again.status_code == 202
    assert again.json()["id"] == command["id"]


def test_a_cancel_for_a_job_no_runner_has_is_declined_then_fails_with_the_reason(
    served: Served,
    api: httpx.Client,
    pool: psycopg_pool.ConnectionPool,
    connectors: list[Connector],
    tenant: str,
    service: str,
) -> None:
    job_id = seed_job(pool, tenant, JobState.RUNNING, service)
    connector = Connector(served, service, tenant, token(pool, Role.PROBE, [tenant]))
    connectors.append(connector)
    operator = token(pool, Role.OPERATOR, [tenant])
    assert api.post(f"/api/admin/jobs/{job_id}/cancel", headers=bearer(operator)).status_code == 202
    # the decline window (10 s) gives the service's other instances their chance first
    failed = eventually(
        command_state(api, operator, job_id, {"failed"}), timeout=30, what="command failed"
    )
    instance = connector.probes.settings.service_instance_id
    assert failed["result"]["error"] == "job not running here"
    assert failed["result"]["declinedBy"].endswith(f"/{instance}")
    assert [d.endswith(f"/{instance}") for d in failed["declinedBy"]] == [True]
    # a failed command does not block a new request
    again = api.post(f"/api/admin/jobs/{job_id}/cancel", headers=bearer(operator))
    assert again.status_code == 202
    assert again.json()["id"] != failed["id"]


def test_a_command_no_runner_takes_expires_and_the_api_and_cli_say_so(
    served: Served, api: httpx.Client, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    """Nothing of the job's service polls (a Celery app without the integration): the
    command must not stay pending for ever."""
    job_id = seed_job(pool, tenant, JobState.RUNNING, f"gone-{uuid.uuid4().hex[:8]}")
    operator = token(pool, Role.OPERATOR, [tenant])
    first = api.post(f"/api/admin/jobs/{job_id}/cancel", headers=bearer(operator)).json()
    assert first["state"] == "pending"
    # within the expiry (60 s) it is still pending
    listed = api.get(f"/api/admin/jobs/{job_id}/commands", headers=bearer(operator)).json()
    assert [c["state"] for c in listed["items"]] == ["pending"]
    with pool.connection() as conn:  # as if it had been requested two minutes ago
        conn.execute(
            "UPDATE job_commands SET requested_at = requested_at - interval '2 minutes' "
            "WHERE id = %s",
            (uuid.UUID(first["id"]),),
        )
    listed = api.get(f"/api/admin/jobs/{job_id}/commands", headers=bearer(operator)).json()
    (expired,) = listed["items"]
    assert expired["state"] == "expired"
    assert expired["doneAt"] is not None
    assert "no job runner of gone-" in expired["result"]["error"]
    shown = cli(served.url, operator, "jobs", "commands", job_id)
    assert shown.returncode == 0, shown.stderr
    assert "expired" in shown.stdout
    assert "no job runner of" in shown.stdout
    as_json = cli(served.url, operator, "jobs", "commands", job_id, "--json")
    assert json.loads(as_json.stdout)["items"][0]["state"] == "expired"
    # an expired command does not answer a new request: a new one is made
    again = api.post(f"/api/admin/jobs/{job_id}/cancel", headers=bearer(operator))
    assert again.status_code == 202
    assert again.json()["id"] != first["id"]
    assert again.json()["state"] == "pending"


def test_an_expired_command_is_said_so_on_the_hub(
    served: Served, api: httpx.Client, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    """A page about the job (a real @microsoft/signalr client subscribed to it) hears
    that its command expired, with the reason, instead of waiting for a runner."""
    job_id = seed_job(pool, tenant, JobState.FAILED, f"gone-{uuid.uuid4().hex[:8]}")
    operator = token(pool, Role.OPERATOR, [tenant])
    client = HubClient(served.url, token(pool, Role.VIEWER, [tenant]), "--job", job_id)
    try:
        client.wait_for("ready")
        asked = api.post(f"/api/admin/jobs/{job_id}/retry", headers=bearer(operator)).json()
        with pool.connection() as conn:  # as if it had been requested two minutes ago
            conn.execute(
                "UPDATE job_commands SET requested_at = requested_at - interval '2 minutes' "
                "WHERE id = %s",
                (uuid.UUID(asked["id"]),),
            )
        # any read of the job's commands (or the maintenance round) expires it
        api.get(f"/api/admin/jobs/{job_id}/commands", headers=bearer(operator))
        event = client.event("JobCommandExpired", timeout=30, args=[job_id, asked["id"]])
        _, _, kind, reason, _event_id = event["arguments"]
        assert kind == "retry"
        assert reason.startswith("no job runner of gone-")
        assert len(client.events("JobCommandExpired")) == 1
    finally:
        client.close()


def test_the_maintenance_round_expires_commands_nobody_reads(
    pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    store = JobCommandStore(pool, expiry=timedelta(seconds=60))
    now = datetime.now(UTC)
    service = f"gone-{uuid.uuid4().hex[:8]}"
    (job,) = JobStore(pool).get(seed_job(pool, tenant, JobState.RUNNING, service), [tenant])
    command = new_command(
        CommandKind.CANCEL,
        job,
        command_id=str(uuid.uuid4()),
        requested_by="test",
        requested_by_token=None,
        now=now - timedelta(seconds=61),
    )
    store.request(command)
    store.expire(now - timedelta(seconds=2))  # 59 s old then: not yet
    assert store.for_job(tenant, job.job_id)[0].state is CommandState.PENDING
    assert store.expire(now) == 1
    (stored,) = store.for_job(tenant, job.job_id)
    assert stored.state is CommandState.EXPIRED
    with pool.connection() as conn:  # announced on the hub in the same transaction
        announced = conn.execute(
            "SELECT arguments FROM hub_events WHERE tenant_id = %s AND target = "
            "'JobCommandExpired' AND job_id = %s",
            (tenant, job.job_id),
        ).fetchall()
    assert [row[0][:3] for row in announced] == [[job.job_id, stored.id, "cancel"]]
    # a runner polling after the expiry is not handed it
    assert store.claim(service, [tenant], "late", now, lease=LEASE) == []


# refusals


def test_states_roles_and_tenants_that_forbid_the_request(
    served: Served, api: httpx.Client, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    succeeded = seed_job(pool, tenant, JobState.SUCCEEDED, "erp-connector")
    running = seed_job(pool, tenant, JobState.RUNNING, "erp-connector")
    operator = token(pool, Role.OPERATOR, [tenant])

    response = api.post(f"/api/admin/jobs/{succeeded}/cancel", headers=bearer(operator))
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == (
        f"job {succeeded!r} is succeeded; only pending or running jobs can be cancelled"
    )
    response = api.post(f"/api/admin/jobs/{running}/retry", headers=bearer(operator))
    assert response.status_code == 409
    assert "is running; only failed or cancelled jobs can be retried" in response.json()["detail"]

    result = cli(served.url, operator, "jobs", "cancel", succeeded)
    assert result.returncode == 1
    assert "only pending or running jobs can be cancelled" in result.stderr

    outsider = token(pool, Role.OPERATOR, [tenant + "-other"])
    hidden = api.post(f"/api/admin/jobs/{running}/cancel", headers=bearer(outsider))
    absent = api.post("/api/admin/jobs/never-existed/cancel", headers=bearer(outsider))
    assert hidden.status_code == absent.status_code == 404
    assert hidden.json()["type"] == absent.json()["type"]

    viewer = token(pool, Role.VIEWER, [tenant])
    for action in ("cancel", "retry"):
        assert (
            api.post(f"/api/admin/jobs/{running}/{action}", headers=bearer(viewer)).status_code
            == 403
        )

    probe = token(pool, Role.PROBE, [tenant])
    for method, path in (
        ("GET", f"/api/admin/jobs/{running}"),
        ("GET", "/api/admin/jobs"),
        ("POST", f"/api/admin/jobs/{running}/cancel"),
        ("GET", "/api/admin/audit"),
    ):
        assert api.request(method, path, headers=bearer(probe)).status_code == 403, path
    admin = token(pool, Role.ADMIN, [tenant])
    for secret in (viewer, operator, admin):
        answer = api.get(
            "/api/probes/commands", params={"service": "erp-connector"}, headers=bearer(secret)
        )
        assert answer.status_code == 403
        assert "needs the probe role" in answer.json()["detail"]

    # nothing was asked of the service
    assert api.get(f"/api/admin/jobs/{running}/commands", headers=bearer(viewer)).json() == {
        "items": []
    }


def test_a_second_cancel_while_the_first_is_pending_answers_the_first(
    served: Served, api: httpx.Client, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    job_id = seed_job(pool, tenant, JobState.RUNNING, f"nobody-{uuid.uuid4().hex[:8]}")
    operator = token(pool, Role.OPERATOR, [tenant])
    first = api.post(f"/api/admin/jobs/{job_id}/cancel", headers=bearer(operator))
    second = api.post(f"/api/admin/jobs/{job_id}/cancel", headers=bearer(operator))
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()
    assert first.json()["state"] == "pending"
    commands = api.get(f"/api/admin/jobs/{job_id}/commands", headers=bearer(operator)).json()
    assert [c["id"] for c in commands["items"]] == [first.json()["id"]]


# durability


def test_a_command_survives_an_api_restart_and_reaches_a_runner_started_meanwhile(
    served: Served,
    api: httpx.Client,
    pool: psycopg_pool.ConnectionPool,
    connectors: list[Connector],
    tenant: str,
    service: str,
) -> None:
    viewer, operator = token(pool, Role.VIEWER, [tenant]), token(pool, Role.OPERATOR, [tenant])
    first = Connector(served, service, tenant, None)
    try:
        failed = first.runner.submit("PIM_IMPORT", tenant_id=tenant, params={"batch": 7})
        # closing first would cancel the job on a slow machine before it has run
        eventually(lambda: True if not first.runner.active_jobs else None, what="the run")
    finally:
        first.close()
    eventually(job_state(api, viewer, failed.job_id, "failed"), timeout=30, what="job failed")
    response = api.post(f"/api/admin/jobs/{failed.job_id}/retry", headers=bearer(operator))
    assert response.status_code == 202
    new_job_id = response.json()["retry"]["newJobId"]

    supervisor = served.supervisor
    try:
        supervisor.stop(served.api, _say)
        assert not served.api.healthy()
        # the runner starts while the API is down: it backs off, never raising
        runner_side = Connector(served, service, tenant, token(pool, Role.PROBE, [tenant]))
        connectors.append(runner_side)
        time.sleep(1.5)
        supervisor.start(served.api, _say)
    finally:
        if not served.api.healthy():
            supervisor.start(served.api, _say)
    assert served.api.healthy()

    retried = eventually(
        job_state(api, viewer, new_job_id, "succeeded"), timeout=30, what="the retry succeeded"
    )
    assert (retried["retryOf"], retried["attempt"]) == (failed.job_id, 2)
    assert runner_side.runs == [(new_job_id, 2, {"batch": 7})]


def _command(tenant: str, service: str, now: datetime) -> Any:
    job = Job(
        tenant_id=tenant,
        job_id=f"j-{uuid.uuid4()}",
        job_type="ERP_SYNC",
        status=JobState.RUNNING,
        progress_percent=0,
        created_at=now,
        started_at=now,
        completed_at=None,
        error_message=None,
        metadata={},
        attempt=1,
        retry_of=None,
        service_name=service,
        last_report_at=now,
        updated_at=now,
    )
    return new_command(
        CommandKind.CANCEL,
        job,
        command_id=str(uuid.uuid4()),
        requested_by="ops",
        requested_by_token=None,
        now=now,
    )


def test_an_expired_claim_is_handed_out_again_and_given_up_after_max_claims(
    pool: psycopg_pool.ConnectionPool, tenant: str, service: str
) -> None:
    store = JobCommandStore(pool)
    t0 = datetime.now(UTC)
    command, created = store.request(_command(tenant, service, t0))
    assert created

    def claim(by: str, at: datetime) -> list[Any]:
        return store.claim(service, [tenant], by, at, lease=LEASE)

    [taken] = claim("runner-a", t0)
    assert (taken.id, taken.state, taken.claimed_by, taken.claims) == (
        command.id,
        CommandState.CLAIMED,
        "runner-a",
        1,
    )
    assert claim("runner-b", t0 + timedelta(seconds=10)) == []  # within the lease
    [again] = claim("runner-b", t0 + timedelta(seconds=31))  # runner-a died
    assert (again.id, again.claimed_by, again.claims) == (command.id, "runner-b", 2)
    assert claim("runner-c", t0 + timedelta(seconds=40)) == []

    # a command that is never marked is given up, not handed out for ever
    at = t0 + timedelta(seconds=31)
    for _ in range(MAX_CLAIMS - 2):
        at += timedelta(seconds=31)
        assert [c.id for c in claim("runner-x", at)] == [command.id]
    assert claim("runner-x", at + timedelta(seconds=31)) == []
    [gone] = store.for_job(tenant, command.job_id)
    assert gone.state is CommandState.FAILED
    assert gone.result == {"error": f"claimed {MAX_CLAIMS} times and never marked done"}


def test_a_declined_command_goes_to_the_other_runners_only_and_fails_when_none_takes_it(
    pool: psycopg_pool.ConnectionPool, tenant: str, service: str
) -> None:
    store = JobCommandStore(pool)
    t0 = datetime.now(UTC)
    window = timedelta(seconds=10)
    command, _ = store.request(_command(tenant, service, t0))

    def claim(by: str, at: datetime) -> list[str]:
        taken = store.claim(service, [tenant], by, at, lease=LEASE, decline_window=window)
        return [c.id for c in taken]

    assert claim("a", t0) == [command.id]
    with pytest.raises(Conflict):
        store.decline(command.id, [tenant], "b", "not mine", t0)  # a holds the claim
    declined = store.decline(command.id, [tenant], "a", "job not running here", t0)
    assert (declined.state, declined.claims, declined.declined_by) == (
        CommandState.PENDING,
        0,
        ("a",),
    )
    # an answer lost on the way: declining again answers it as it is
    assert store.decline(command.id, [tenant], "a", "job not running here", t0) == declined
    assert claim("a", t0 + timedelta(seconds=1)) == []  # never again to the decliner
    assert claim("b", t0 + timedelta(seconds=2)) == [command.id]
    store.decline(command.id, [tenant], "b", "job not running here", t0 + timedelta(seconds=3))
    assert claim("c", t0 + timedelta(seconds=4)) == [command.id]
    done = store.complete(command.id, [tenant], ok=True, result={}, now=t0 + timedelta(seconds=5))
    assert (done.state, done.declined_by) == (CommandState.DONE, ("a", "b"))

    # declined by every runner that polls: given up after the window, with the reason
    other, _ = store.request(_command(tenant, service, t0))
    assert claim("a", t0) == [other.id]
    store.decline(other.id, [tenant], "a", "job not running here", t0)
    assert claim("a", t0 + timedelta(seconds=9)) == []
    assert store.for_job(tenant, other.job_id)[0].state is CommandState.PENDING
    assert claim("a", t0 + timedelta(seconds=11)) == []
    [gone] = store.for_job(tenant, other.job_id)
    assert (gone.state, gone.result) == (
        CommandState.FAILED,
        {"error": "job not running here", "declinedBy": "a"},
    )


def test_a_cancel_reaches_the_instance_that_runs_the_job_when_another_polls_too(
    served: Served,
    api: httpx.Client,
    pool: psycopg_pool.ConnectionPool,
    connectors: list[Connector],
    tenant: str,
    service: str,
) -> None:
    probe_token = token(pool, Role.PROBE, [tenant])
    viewer, operator = token(pool, Role.VIEWER, [tenant]), token(pool, Role.OPERATOR, [tenant])
    # two replicas of one connector service; the job runs in the first
    running, idle = (Connector(served, service, tenant, probe_token) for _ in range(2))
    connectors.extend([running, idle])
    pending = running.runner.submit("ERP_SYNC", tenant_id=tenant)
    assert running.started.wait(10)
    eventually(job_state(api, viewer, pending.job_id, "running"), timeout=30, what="running")

    assert (
        api.post(f"/api/admin/jobs/{pending.job_id}/cancel", headers=bearer(operator)).status_code
        == 202
    )
    eventually(job_state(api, viewer, pending.job_id, "cancelled"), timeout=15, what="cancelled")
    done = eventually(
        command_state(api, viewer, pending.job_id, {"done"}), timeout=10, what="command done"
    )
    mine = running.probes.settings.service_instance_id
    assert done["claimedBy"].endswith(f"/{mine}")
    # whichever replica claimed first, the other one never failed it
    assert all(
        d.endswith(f"/{idle.probes.settings.service_instance_id}") for d in done["declinedBy"]
    )


def test_a_late_mark_of_an_expired_claim_still_counts_once(
    pool: psycopg_pool.ConnectionPool, tenant: str, service: str
) -> None:
    store = JobCommandStore(pool)
    t0 = datetime.now(UTC)
    command, _ = store.request(_command(tenant, service, t0))
    store.claim(service, [tenant], "a", t0, lease=LEASE)
    store.claim(service, [tenant], "b", t0 + timedelta(seconds=31), lease=LEASE)
    done = store.complete(command.id, [tenant], ok=True, result={}, now=t0 + timedelta(seconds=32))
    assert done.state is CommandState.DONE
    repeated = store.complete(
        command.id, [tenant], ok=False, result={"error": "x"}, now=t0 + timedelta(seconds=33)
    )
    assert repeated == done
    assert store.claim(service, [tenant], "c", t0 + timedelta(minutes=5), lease=LEASE) == []


def test_two_runners_never_claim_the_same_command(
    pool: psycopg_pool.ConnectionPool, tenant: str, service: str
) -> None:
    store = JobCommandStore(pool)
    now = datetime.now(UTC)
    ids = {store.request(_command(tenant, service, now))[0].id for _ in range(24)}
    claimed: list[list[str]] = [[] for _ in range(3)]

    def work(slot: int) -> None:
        while batch := store.claim(service, [tenant], f"r{slot}", now, lease=LEASE, limit=2):
            claimed[slot].extend(c.id for c in batch)

    threads = [threading.Thread(target=work, args=(slot,)) for slot in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    every = [command_id for slot in claimed for command_id in slot]
    assert sorted(every) == sorted(ids)  # each exactly once


def test_a_probe_marks_only_commands_of_its_tenants(
    served: Served, api: httpx.Client, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    service = f"svc-{uuid.uuid4().hex[:8]}"
    command, _ = JobCommandStore(pool).request(_command(tenant, service, datetime.now(UTC)))
    outsider = token(pool, Role.PROBE, [tenant + "-other"])
    probe = token(pool, Role.PROBE, [tenant])
    nothing = api.get("/api/probes/commands", params={"service": service}, headers=bearer(outsider))
    assert nothing.json() == {"items": []}
    refused = api.post(
        f"/api/probes/commands/{command.id}/done", json={"ok": True}, headers=bearer(outsider)
    )
    assert refused.status_code == 404
    [claimed] = api.get(
        "/api/probes/commands",
        params={"service": service, "instance": "i-1"},
        headers=bearer(probe),
    ).json()["items"]
    assert claimed["id"] == command.id
    assert claimed["claimedBy"].endswith("/i-1")
    failed = api.post(
        f"/api/probes/commands/{command.id}/done",
        json={"ok": False, "error": "job not running here"},
        headers=bearer(probe),
    )
    assert failed.status_code == 200
    assert (failed.json()["state"], failed.json()["result"]) == (
        "failed",
        {"error": "job not running here"},
    )
    invalid = api.post(
        f"/api/probes/commands/{command.id}/done", json={"ok": False}, headers=bearer(probe)
    )
    assert invalid.status_code == 422


def test_a_long_poll_answers_as_soon_as_a_command_is_requested(
    served: Served, api: httpx.Client, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    service = f"svc-{uuid.uuid4().hex[:8]}"
    job_id = seed_job(pool, tenant, JobState.RUNNING, service)
    probe, operator = token(pool, Role.PROBE, [tenant]), token(pool, Role.OPERATOR, [tenant])
    answered: list[tuple[float, Any]] = []

    def poll() -> None:
        started = time.monotonic()
        with httpx.Client(base_url=served.url, timeout=30) as client:
            response = client.get(
                "/api/probes/commands",
                params={"service": service, "wait": 20},
                headers=bearer(probe),
            )
        answered.append((time.monotonic() - started, response.json()))

    poller = threading.Thread(target=poll)
    poller.start()
    time.sleep(1.0)
    requested = time.monotonic()
    assert api.post(f"/api/admin/jobs/{job_id}/cancel", headers=bearer(operator)).status_code == 202
    poller.join(25)
    [(took, body)] = answered
    assert [c["jobId"] for c in body["items"]] == [job_id]
    assert took < 20  # woken by the notification, not by the end of the wait
    print(f"long poll woken {time.monotonic() - requested:.3f} s after the request")


# the audit log


def test_the_audit_log_says_who_asked_what_and_when_to_admins_only(
    served: Served, api: httpx.Client, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    running = seed_job(pool, tenant, JobState.RUNNING, f"nobody-{uuid.uuid4().hex[:8]}")
    failed = seed_job(pool, tenant, JobState.FAILED, f"nobody-{uuid.uuid4().hex[:8]}")
    operator = token(pool, Role.OPERATOR, [tenant])
    before = datetime.now(UTC)
    cancel = api.post(f"/api/admin/jobs/{running}/cancel", headers=bearer(operator)).json()
    api.post(f"/api/admin/jobs/{running}/cancel", headers=bearer(operator))
    retry = api.post(f"/api/admin/jobs/{failed}/retry", headers=bearer(operator)).json()
    assert api.post(f"/api/admin/jobs/{failed}/cancel", headers=bearer(operator)).status_code == 409
    after = datetime.now(UTC)

    admin = token(pool, Role.ADMIN, [tenant])
    page = api.get("/api/admin/audit", headers=bearer(admin))
    assert page.status_code == 200
    entries = page.json()["items"]
    assert [(e["action"], e["target"], e["details"]["outcome"]) for e in entries] == [
        ("job.cancel", failed, "refused"),
        ("job.retry", failed, "requested"),
        ("job.cancel", running, "repeated"),
        ("job.cancel", running, "requested"),
    ]
    assert {e["actorName"] for e in entries} == {cancel["requestedBy"]}
    assert {e["tenantId"] for e in entries} == {tenant}
    assert all(before <= datetime.fromisoformat(e["at"]) <= after for e in entries)
    assert entries[1]["details"]["commandId"] == retry["id"]
    assert entries[3]["details"]["commandId"] == entries[2]["details"]["commandId"] == cancel["id"]
    assert "only pending or running" in entries[0]["details"]["reason"]

    # a page at a time, and filtered
    first = api.get("/api/admin/audit", params={"limit": 3}, headers=bearer(admin)).json()
    rest = api.get(
        "/api/admin/audit",
        params={"limit": 3, "cursor": first["nextCursor"]},
        headers=bearer(admin),
    ).json()
    assert [e["seq"] for e in first["items"] + rest["items"]] == [e["seq"] for e in entries]
    assert rest["nextCursor"] is None
    retries = api.get(
        "/api/admin/audit", params={"action": "job.retry"}, headers=bearer(admin)
    ).json()
    assert [e["target"] for e in retries["items"]] == [failed]

    # another tenant's admin sees none of it; viewers and operators see nothing at all
    other = token(pool, Role.ADMIN, [tenant + "-other"])
    assert api.get("/api/admin/audit", headers=bearer(other)).json()["items"] == []
    for role in (Role.VIEWER, Role.OPERATOR):
        denied = api.get("/api/admin/audit", headers=bearer(token(pool, role, [tenant])))
        assert denied.status_code == 403

    result = cli(served.url, admin, "audit", "list", "--action", "job.cancel")
    assert result.returncode == 0, result.stderr
    assert running in result.stdout
    assert "refused" in result.stdout
    denied_cli = cli(served.url, operator, "audit", "list")
    assert denied_cli.returncode == 1


def test_the_openapi_document_describes_the_commands_and_their_problems(
    api: httpx.Client,
) -> None:
    doc = api.get("/openapi.json").json()
    for path in ("/api/admin/jobs/{job_id}/cancel", "/api/admin/jobs/{job_id}/retry"):
        operation = doc["paths"][path]["post"]
        assert set(operation["responses"]) >= {"202", "401", "403", "404", "409", "422"}
    assert "/api/probes/commands" in doc["paths"]
    assert "/api/admin/audit" in doc["paths"]
    command = doc["components"]["schemas"]["JobCommand"]
    assert {"id", "kind", "jobId", "state", "requestedBy", "requestedAt", "retry"} <= set(
        command["properties"]
    )
