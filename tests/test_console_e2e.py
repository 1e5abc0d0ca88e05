"""The admin console end to end: a real Chromium on the console served by an admin API
of this checkout, telemetry from the probes library through the real collector and
processor, actions that reach a real job runner, and the CLI reading what the console
did. Every page is checked with axe-core and its screenshot saved (the folder is
printed; ``B2C_SCREENSHOTS_DIR`` overrides it).
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import psycopg_pool
import pytest
from playwright.sync_api import Browser, Page, expect

from b2c_monitoring.auth import Role
from b2c_monitoring.contract import JobState
from b2c_monitoring.probes import JobRun, JobRunner, Probes, ProbeSettings
from b2c_monitoring.processors.jobs import Scalar
from b2c_monitoring.stack.local import LocalStack
from tests.api_process import api_process, cli, free_port
from tests.console_browser import (
    chromium,
    mark_document,
    same_document,
    screenshot,
    serious_violations,
    session_storage,
    signed_in,
)
from tests.polling import eventually
from tests.test_job_commands import seed_job
from tests.tokens import bearer, token

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

# the console waits for the pipeline: span end -> collector batch -> processor -> hub
LIVE_MS = 30_000


class RestartableApi:
    """An admin API process of this checkout at a fixed address, which a test can stop
    and start again (the console must survive it)."""

    def __init__(self, stack: LocalStack, log: Path) -> None:
        self.stack, self.log, self.port = stack, log, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._running: Any = None

    def start(self) -> None:
        self._running = api_process(self.stack, self.log, port=self.port)
        self._running.__enter__()

    def stop(self) -> None:
        if self._running is not None:
            self._running.__exit__(None, None, None)
            self._running = None


@pytest.fixture(scope="module")
def console_api(
    stack: LocalStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RestartableApi]:
    api = RestartableApi(stack, tmp_path_factory.mktemp("console-api") / "api.log")
    api.start()
    try:
        yield api
    finally:
        api.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


@pytest.fixture
def probes(stack: LocalStack, tenant: str) -> Iterator[Probes]:
    made = Probes(
        ProbeSettings(
            endpoint=f"http://127.0.0.1:{stack.layout.ports.otlp_grpc}",
            token=stack.probe_token,
            service_name=f"erp-connector-{uuid.uuid4().hex[:6]}",
            tenant_id=tenant,
            export_interval=0.2,
            metric_export_interval=1.0,
        )
    )
    yield made
    made.shutdown()


def _row(page: Page, job_id: str) -> Any:
    return page.locator(f'[data-testid="job-row"][data-job-id="{job_id}"]')


def _no_serious_violations(page: Page, what: str) -> None:
    found = serious_violations(page)
    assert found == [], f"axe-core on {what}: {json.dumps(found, indent=1)}"


# -- sign-in


def test_sign_in_keeps_the_token_in_the_session_only_and_a_revoked_token_signs_out(
    browser: Browser, console_api: RestartableApi, pool: psycopg_pool.ConnectionPool, tenant: str
) -> None:
    secret = token(pool, Role.VIEWER, [tenant])
    page = signed_in(browser, console_api.url, secret)
    assert secret in session_storage(page).values()
    assert page.evaluate("localStorage.length") == 0
    assert secret not in page.url
    _no_serious_violations(page, "the overview")
    screenshot(page, "overview")

    with httpx.Client(base_url=console_api.url) as api:
        token_id = api.get("/api/admin/me", headers=bearer(secret)).json()["tokenId"]
        admin = token(pool, Role.ADMIN, [tenant])
        assert api.delete(f"/api/admin/tokens/{token_id}", headers=bearer(admin)).status_code in (
            200,
            204,
        )
    page.get_by_role("link", name="Jobs").first.click()
    expect(page.get_by_test_id("sign-in-error")).to_be_visible(timeout=LIVE_MS)
    expect(page).to_have_url(re.compile(r"/console/sign-in"))
    assert secret not in session_storage(page).values()
    screenshot(page, "sign-in-after-revocation")

    # a wrong token is refused at the door with what to do
    page.get_by_label("API token").fill("not-a-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("sign-in-error")).to_contain_text("not valid")
    _no_serious_violations(page, "the sign-in page")
    page.context.close()


# -- jobs, live


def test_a_job_reported_through_the_collector_appears_moves_and_fails_without_a_reload(
    browser: Browser,
    console_api: RestartableApi,
    pool: psycopg_pool.ConnectionPool,
    probes: Probes,
    tenant: str,
) -> None:
    page = signed_in(browser, console_api.url, token(pool, Role.VIEWER, [tenant]), "jobs")
    expect(page.get_by_role("heading", name=re.compile("Jobs"))).to_be_visible()
    mark_document(page)
    go_on = threading.Event()
    job_id = f"console-{uuid.uuid4()}"

    def run() -> None:
        try:
            with probes.job_run("ERP_SYNC", job_id=job_id, tenant_id=tenant) as job:
                job.progress(10)
                go_on.wait(LIVE_MS / 1000)
                job.progress(60)
                go_on.wait(LIVE_MS / 1000)
                raise ConnectionError("enventa ERP answered 503 Service Unavailable")
        except ConnectionError:
            pass

    worker = threading.Thread(target=run)
    worker.start()
    try:
        row = _row(page, job_id)
        expect(row).to_have_attribute("data-status", "running", timeout=LIVE_MS)
        bar = row.get_by_role("progressbar")
        expect(bar).to_have_attribute("aria-valuenow", "10", timeout=LIVE_MS)
        go_on.set()
        expect(bar).to_have_attribute("aria-valuenow", "60", timeout=LIVE_MS)
        screenshot(page, "jobs-live")
    finally:
        go_on.set()
        worker.join()
    expect(row).to_have_attribute("data-status", "failed", timeout=LIVE_MS)
    expect(row).to_contain_text("503 Service Unavailable")
    assert same_document(page), "the jobs page reloaded"
    assert _row(page, job_id).count() == 1
    _no_serious_violations(page, "the jobs page")

    row.click()
    expect(page.get_by_test_id("job-status")).to_contain_text("failed")
    expect(page.get_by_test_id("job-error")).to_contain_text("503 Service Unavailable")
    _no_serious_violations(page, "a job's page")
    screenshot(page, "job-failed")
    page.context.close()


# -- retry and cancel from the console


class Connector:
    """A service with the probes library and a job runner that long-polls the API."""

    def __init__(self, stack: LocalStack, api_url: str, tenant: str, probe_token: str) -> None:
        self.service = f"pim-connector-{uuid.uuid4().hex[:6]}"
        self.probes = Probes(
            ProbeSettings(
                endpoint=f"http://127.0.0.1:{stack.layout.ports.otlp_grpc}",
                token=stack.probe_token,
                service_name=self.service,
                tenant_id=tenant,
                export_interval=0.2,
                metric_export_interval=1.0,
            )
        )
        self.runner: JobRunner = self.probes.job_runner(
            control_url=api_url, token=probe_token, poll_wait_s=2
        )
        self.runner.handler("PIM_IMPORT")(self._import)
        self.runner.handler("ERP_SYNC")(self._sync)

    def _import(self, job: JobRun, params: Mapping[str, Scalar]) -> None:
        job.progress(30)
        if job.attempt == 1:
            raise ConnectionError("PIM answered 503 Service Unavailable")

    def _sync(self, job: JobRun, params: Mapping[str, Scalar]) -> None:
        for step in range(3000):  # 60 s at most, so a broken test leaves no thread behind
            job.check_cancelled()
            if step % 50 == 0:
                job.progress(min(step // 30, 99))
            time.sleep(0.02)

    def close(self) -> None:
        self.runner.stop(5.0, cancel_running=True)
        self.probes.shutdown()


def _job_status(api: httpx.Client, secret: str, job_id: str, status: str) -> Any:
    def probe() -> dict[str, Any] | None:
        response = api.get(f"/api/admin/jobs/{job_id}", headers=bearer(secret))
        body: dict[str, Any] = response.json()
        return body if response.status_code == 200 and body["status"] == status else None

    return probe


def test_an_operator_retries_and_cancels_from_the_job_page_and_a_viewer_cannot(
    browser: Browser,
    console_api: RestartableApi,
    stack: LocalStack,
    pool: psycopg_pool.ConnectionPool,
    tenant: str,
) -> None:
    connector = Connector(stack, console_api.url, tenant, token(pool, Role.PROBE, [tenant]))
    viewer, operator = token(pool, Role.VIEWER, [tenant]), token(pool, Role.OPERATOR, [tenant])
    api = httpx.Client(base_url=console_api.url, timeout=15)
    try:
        failed = connector.runner.submit("PIM_IMPORT", tenant_id=tenant, params={"feed": "x"})
        eventually(_job_status(api, viewer, failed.job_id, "failed"), what="the job failed")

        # a viewer sees no action, and the API refuses it anyway
        page = signed_in(browser, console_api.url, viewer, f"jobs/{failed.job_id}")
        expect(page.get_by_test_id("job-status")).to_contain_text("failed")
        expect(page.get_by_role("button", name="Retry")).to_have_count(0)
        expect(page.get_by_role("button", name="Cancel")).to_have_count(0)
        refused = api.post(f"/api/admin/jobs/{failed.job_id}/retry", headers=bearer(viewer))
        assert refused.status_code == 403
        page.context.close()

        page = signed_in(browser, console_api.url, operator, f"jobs/{failed.job_id}")
        page.get_by_role("button", name="Retry").click()
        expect(page.get_by_test_id("command-outcome")).to_contain_text(
            re.compile("done|succeeded|completed", re.I), timeout=LIVE_MS
        )

        def attempt() -> dict[str, Any] | None:
            listed = api.get(
                "/api/admin/jobs", params={"tenant": tenant}, headers=bearer(viewer)
            ).json()
            again = [j for j in listed["items"] if j.get("retryOf") == failed.job_id]
            return again[0] if again and again[0]["status"] == "succeeded" else None

        second = eventually(attempt, what="the retry's attempt succeeded")
        assert second["attempt"] == 2
        # the console shows the new attempt: on the jobs list, and linked from the first
        page.reload()
        expect(page.locator(f'a[href*="{second["id"]}"]').first).to_be_visible(timeout=LIVE_MS)
        screenshot(page, "job-retried")

        running = connector.runner.submit("ERP_SYNC", tenant_id=tenant)
        eventually(_job_status(api, viewer, running.job_id, "running"), what="running")
        page.goto(f"{console_api.url}/console/jobs/{running.job_id}")
        expect(page.get_by_test_id("job-status")).to_contain_text("running")
        page.get_by_role("button", name="Cancel").click()
        expect(page.get_by_test_id("job-status")).to_contain_text("cancelled", timeout=LIVE_MS)
        screenshot(page, "job-cancelled")
        page.context.close()
    finally:
        api.close()
        connector.close()


def test_a_retry_no_runner_takes_shows_expired_live_with_what_to_do_next(
    browser: Browser,
    console_api: RestartableApi,
    pool: psycopg_pool.ConnectionPool,
    tenant: str,
) -> None:
    """The job's service runs no job runner (a Celery app without the integration): the
    operator's retry expires, and both the operator's page and a colleague's page on the
    same job (which only the hub tells) say so without a reload, with what to do next."""
    service = f"gone-{uuid.uuid4().hex[:8]}"
    job_id = seed_job(pool, tenant, JobState.FAILED, service)
    colleague = signed_in(
        browser, console_api.url, token(pool, Role.VIEWER, [tenant]), f"jobs/{job_id}"
    )
    page = signed_in(
        browser, console_api.url, token(pool, Role.OPERATOR, [tenant]), f"jobs/{job_id}"
    )
    for p in (page, colleague):
        expect(p.get_by_test_id("job-status")).to_contain_text("failed")
        mark_document(p)
    try:
        page.get_by_role("button", name="Retry").click()
        outcome = page.get_by_test_id("command-outcome")
        expect(outcome).to_contain_text("waiting for the job's runner", timeout=LIVE_MS)
        # as if it had been asked two minutes ago (the expiry is 60 s): the page's next
        # read of the job's commands expires it, and the hub tells the colleague's page
        with pool.connection() as conn:
            conn.execute(
                "UPDATE job_commands SET requested_at = requested_at - interval '2 minutes' "
                "WHERE tenant_id = %s AND job_id = %s",
                (tenant, job_id),
            )
        for p, who in ((page, ""), (colleague, "an operator can ")):
            shown = p.get_by_test_id("command-outcome")
            expect(shown).to_have_attribute("data-state", "expired", timeout=LIVE_MS)
            expect(shown).to_contain_text(f"no job runner of {service} took it within 60 s")
            expect(p.get_by_test_id("command-next-step")).to_have_text(
                f"Nothing was done to the job. Once {service}'s job runner is running, "
                f"{who}retry it again."
            )
            assert same_document(p)
        # and it may be asked again
        expect(page.get_by_role("button", name="Retry")).to_be_enabled()
        _no_serious_violations(page, "a job whose retry expired")
        screenshot(page, "job-command-expired")
        screenshot(colleague, "job-command-expired-colleague")
    finally:
        page.context.close()
        colleague.context.close()


# -- tenants


def test_another_tenants_jobs_services_and_alerts_never_appear(
    browser: Browser,
    console_api: RestartableApi,
    stack: LocalStack,
    pool: psycopg_pool.ConnectionPool,
    probes: Probes,
    tenant: str,
) -> None:
    other = f"{tenant}-b"
    theirs = Probes(
        ProbeSettings(
            endpoint=f"http://127.0.0.1:{stack.layout.ports.otlp_grpc}",
            token=stack.probe_token,
            service_name="their-connector",
            tenant_id=other,
            export_interval=0.2,
            metric_export_interval=1.0,
        )
    )
    secret = token(pool, Role.VIEWER, [tenant])
    try:
        with theirs.job_run("SECRET_SYNC", tenant_id=other) as job:
            job.progress(50)
        theirs.watch_service("their-erp", "ERP", lambda: False, every_s=1)
        page = signed_in(browser, console_api.url, secret, "jobs")
        mark_document(page)
        # live: their job, then ours; ours shows, theirs never did
        with theirs.job_run("SECRET_SYNC", tenant_id=other):
            pass
        theirs.force_flush()
        with probes.job_run("OUR_SYNC", tenant_id=tenant) as ours:
            pass
        probes.force_flush()
        expect(_row(page, ours.job_id)).to_be_visible(timeout=LIVE_MS)
        for path in ("jobs", "services", "alerts", ""):
            if path:
                page.goto(f"{console_api.url}/console/{path}")
            page.wait_for_load_state("networkidle")
            text = page.locator("main").inner_text()
            assert "SECRET_SYNC" not in text, path
            assert "their-erp" not in text, path
            assert other not in page.content(), path
    finally:
        theirs.shutdown()


# -- services and alerts


def test_a_service_going_down_turns_red_live_and_its_alert_is_acknowledged_from_the_console(
    browser: Browser,
    console_api: RestartableApi,
    pool: psycopg_pool.ConnectionPool,
    probes: Probes,
    tenant: str,
) -> None:
    operator = token(pool, Role.OPERATOR, [tenant])
    service = f"enventa-erp-{uuid.uuid4().hex[:6]}"
    with httpx.Client(base_url=console_api.url, headers=bearer(operator), timeout=15) as api:
        made = api.post(
            "/api/admin/alert-rules",
            json={
                "name": "erp down",
                "severity": "critical",
                "condition": {"kind": "service_down", "service": service, "checks": 3},
            },
        )
        assert made.status_code == 201, made.text
    answering = threading.Event()
    answering.set()
    probes.watch_service(service, "ERP", answering.is_set, every_s=1)
    services_page = signed_in(browser, console_api.url, operator, "services")
    row = services_page.locator(f'[data-testid="service-row"][data-service-name="{service}"]')
    expect(row).to_have_attribute("data-status", "up", timeout=LIVE_MS)
    overview = signed_in(browser, console_api.url, operator)
    down_count = overview.get_by_test_id("services-down").get_by_test_id("count")
    expect(down_count).to_have_text(re.compile(r"^\d+$"), timeout=LIVE_MS)  # not "…" (loading)
    down_before = int(down_count.inner_text())
    mark_document(services_page)
    mark_document(overview)

    answering.clear()
    expect(row).to_have_attribute("data-status", "down", timeout=LIVE_MS)
    expect(overview.get_by_test_id("services-down").get_by_test_id("count")).to_have_text(
        str(down_before + 1), timeout=LIVE_MS
    )
    # the tenant's one service is down: overall health is the worst of it and the components
    expect(overview.get_by_test_id("overall-health")).to_have_attribute("data-status", "unhealthy")
    assert same_document(services_page)
    assert same_document(overview)
    _no_serious_violations(services_page, "the services page")
    screenshot(services_page, "services-down")
    screenshot(overview, "overview-service-down")
    services_page.context.close()

    overview.get_by_test_id("firing-alerts").click()
    alert_row = overview.locator('[data-testid="alert-row"][data-state="firing"]').filter(
        has_text=service
    )
    expect(alert_row).to_be_visible(timeout=LIVE_MS)
    alert_id = alert_row.get_attribute("data-alert-id")
    assert alert_id
    _no_serious_violations(overview, "the alerts page")
    # unfiltered, so that the acknowledged alert stays in the list
    overview.get_by_label("State").select_option("")
    alert_row = overview.locator(f'[data-testid="alert-row"][data-alert-id="{alert_id}"]')
    alert_row.get_by_role("button", name="Acknowledge").click()
    expect(overview.locator(".error-note")).to_have_count(0)
    expect(
        overview.locator(f'[data-testid="alert-row"][data-alert-id="{alert_id}"]')
    ).to_have_attribute("data-state", "acknowledged", timeout=LIVE_MS)
    screenshot(overview, "alerts")
    shown = cli(console_api.url, operator, "alerts", "show", alert_id, "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["alert"]["state"] == "acknowledged"

    overview.goto(f"{console_api.url}/console/health")
    expect(overview.get_by_role("heading", name=re.compile("Health"))).to_be_visible()
    _no_serious_violations(overview, "the health page")
    screenshot(overview, "health")
    overview.context.close()


# -- the API restarts


def test_the_console_reconnects_after_an_api_restart_and_shows_each_job_once(
    browser: Browser,
    console_api: RestartableApi,
    pool: psycopg_pool.ConnectionPool,
    probes: Probes,
    tenant: str,
) -> None:
    page = signed_in(browser, console_api.url, token(pool, Role.VIEWER, [tenant]), "jobs")
    mark_document(page)
    with probes.job_run("ERP_SYNC", tenant_id=tenant) as before:
        pass
    probes.force_flush()
    expect(_row(page, before.job_id)).to_have_attribute("data-status", "succeeded", timeout=LIVE_MS)

    console_api.stop()
    expect(page.get_by_test_id("live-status")).not_to_have_attribute(
        "data-state", "live", timeout=LIVE_MS
    )
    # reported while the API is away: the console catches up with Resume
    with probes.job_run("ERP_SYNC", tenant_id=tenant) as during:
        pass
    probes.force_flush()
    console_api.start()
    expect(page.get_by_test_id("live-status")).to_have_attribute(
        "data-state", "live", timeout=LIVE_MS * 2
    )
    with probes.job_run("ERP_SYNC", tenant_id=tenant) as after:
        pass
    probes.force_flush()
    for job in (during, after):
        expect(_row(page, job.job_id)).to_have_attribute(
            "data-status", "succeeded", timeout=LIVE_MS
        )
    for job in (before, during, after):
        assert _row(page, job.job_id).count() == 1
    assert same_document(page)
    page.context.close()
