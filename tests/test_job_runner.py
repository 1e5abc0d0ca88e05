"""The probes library's job runner on its own, against the SDK's in-memory exporters.

Retry and cancel through the admin API are in test_job_commands.py (the real stack);
here the runner runs, queues, cancels and refuses without one.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Iterator, Mapping

import httpx
import pytest
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from b2c_monitoring import contract as c
from b2c_monitoring.contract import JobState
from b2c_monitoring.errors import ConfigError
from b2c_monitoring.probes import JobCancelled, JobRun, Probes, ProbeSettings
from b2c_monitoring.probes._runner import _Control, _ControlError
from b2c_monitoring.processors.jobs import Scalar
from tests.http_stub import StubServer


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def probes(spans: InMemorySpanExporter) -> Iterator[Probes]:
    settings = ProbeSettings(service_name="erp-connector", service_instance_id="erp-1")
    logs = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
    with Probes(settings, span_exporter=spans, log_exporter=logs) as p:
        yield p


def reports_of(probes: Probes, spans: InMemorySpanExporter, job_id: str) -> list[ReadableSpan]:
    assert probes.force_flush(5.0)
    return sorted(
        (s for s in spans.get_finished_spans() if (s.attributes or {}).get(c.JOB_ID) == job_id),
        key=lambda s: s.end_time or 0,
    )


def states(sent: list[ReadableSpan]) -> list[object]:
    return [(s.attributes or {})[c.JOB_STATE] for s in sent]


def test_a_submitted_job_runs_its_handler_with_the_params_recorded_as_metadata(
    probes: Probes, spans: InMemorySpanExporter
) -> None:
    seen: list[tuple[str, Mapping[str, Scalar]]] = []
    with probes.job_runner() as runner:

        @runner.handler("ERP_SYNC")
        def sync(job: JobRun, params: Mapping[str, Scalar]) -> None:
            seen.append((job.job_id, dict(params)))
            job.progress(50)

        pending = runner.submit("ERP_SYNC", tenant_id="acme", params={"since": "2026-11-01"})
    sent = reports_of(probes, spans, pending.job_id)

    assert seen == [(pending.job_id, {"since": "2026-11-01"})]
    assert states(sent) == ["pending", "running", "running", "succeeded"]
    final = sent[-1].attributes or {}
    assert final["scheduler.job.metadata.params.since"] == "2026-11-01"
    assert final[c.TENANT_ID] == "acme"


def test_check_cancelled_ends_the_run_cancelled_and_stops_there(
    probes: Probes, spans: InMemorySpanExporter
) -> None:
    after: list[str] = []
    with probes.job_run("ERP_SYNC") as job:
        job.cancel("stopped by ops")
        job.check_cancelled()
        after.append("not reached")
    assert after == []
    final = reports_of(probes, spans, job.job_id)[-1].attributes or {}
    assert final[c.JOB_STATE] == "cancelled"
    assert final["scheduler.job.metadata.cancel_reason"] == "stopped by ops"


def test_a_job_cancelled_in_the_queue_never_starts_its_handler(
    probes: Probes, spans: InMemorySpanExporter
) -> None:
    release = threading.Event()
    ran: list[str] = []
    with probes.job_runner(max_workers=1) as runner:

        @runner.handler("PIM_IMPORT")
        def load(job: JobRun, params: Mapping[str, Scalar]) -> None:
            ran.append(job.job_id)
            release.wait(5)

        first = runner.submit("PIM_IMPORT")
        queued = runner.submit("PIM_IMPORT")
        assert runner.cancel(queued.job_id, "not needed")
        release.set()
    assert ran == [first.job_id]
    assert states(reports_of(probes, spans, queued.job_id))[-1] == "cancelled"
    assert not runner.cancel(queued.job_id)  # ended: nothing left to cancel


def test_a_failing_handler_is_reported_failed_and_the_runner_goes_on(
    probes: Probes, spans: InMemorySpanExporter
) -> None:
    with probes.job_runner() as runner:

        @runner.handler("CRM_EXPORT")
        def export(job: JobRun, params: Mapping[str, Scalar]) -> None:
            if params.get("fail"):
                raise ConnectionError("CRM answered 503")

        bad = runner.submit("CRM_EXPORT", params={"fail": True})
        good = runner.submit("CRM_EXPORT", params={"fail": False})
        # leaving the block stops the runner, which cancels what has not started yet
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all(
            states(reports_of(probes, spans, j.job_id))[-1:] in (["failed"], ["succeeded"])
            for j in (bad, good)
        ):
            time.sleep(0.05)
    assert states(reports_of(probes, spans, bad.job_id))[-1] == "failed"
    assert states(reports_of(probes, spans, good.job_id))[-1] == "succeeded"


def test_an_async_handler_runs_and_can_be_cancelled(
    probes: Probes, spans: InMemorySpanExporter
) -> None:
    started = threading.Event()
    with probes.job_runner() as runner:

        @runner.handler("ERP_SYNC")
        async def sync(job: JobRun, params: Mapping[str, Scalar]) -> None:
            started.set()
            for _ in range(500):
                job.check_cancelled()
                await asyncio.sleep(0.01)

        pending = runner.submit("ERP_SYNC")
        assert started.wait(5)
        runner.cancel(pending.job_id, "enough")
    assert states(reports_of(probes, spans, pending.job_id))[-1] == "cancelled"


def test_bad_submissions_are_refused_at_once(probes: Probes) -> None:
    release = threading.Event()
    with probes.job_runner(max_workers=1, max_queued=1) as runner:

        @runner.handler("ERP_SYNC")
        def sync(job: JobRun, params: Mapping[str, Scalar]) -> None:
            release.wait(5)

        with pytest.raises(ValueError, match="no handler"):
            runner.submit("UNKNOWN")
        with pytest.raises(ValueError, match="parameter 'rows'"):
            runner.submit("ERP_SYNC", params={"rows": [1, 2]})
        runner.submit("ERP_SYNC")
        runner.submit("ERP_SYNC")
        with pytest.raises(RuntimeError, match="full"):
            runner.submit("ERP_SYNC")
        release.set()
    with pytest.raises(RuntimeError, match="stopped"):
        runner.submit("ERP_SYNC")


def test_stopping_ends_queued_jobs_cancelled(probes: Probes, spans: InMemorySpanExporter) -> None:
    release = threading.Event()
    runner = probes.job_runner(max_workers=1)

    @runner.handler("ERP_SYNC")
    def sync(job: JobRun, params: Mapping[str, Scalar]) -> None:
        release.wait(5)

    running = runner.submit("ERP_SYNC")
    queued = runner.submit("ERP_SYNC")
    threading.Timer(0.2, release.set).start()
    assert runner.stop(5.0)
    assert states(reports_of(probes, spans, running.job_id))[-1] == "succeeded"
    queued_final = reports_of(probes, spans, queued.job_id)[-1].attributes or {}
    assert queued_final[c.JOB_STATE] == "cancelled"
    assert "stopped before the job started" in str(
        queued_final["scheduler.job.metadata.cancel_reason"]
    )


def test_an_unreachable_admin_api_never_hurts_the_host(
    probes: Probes, spans: InMemorySpanExporter
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    runner = probes.job_runner(control_url=f"http://127.0.0.1:{port}", token="b2c_x", poll_wait_s=1)

    @runner.handler("ERP_SYNC")
    def sync(job: JobRun, params: Mapping[str, Scalar]) -> None:
        pass

    time.sleep(1.0)  # the poller fails and backs off meanwhile
    pending = runner.submit("ERP_SYNC")
    started = time.monotonic()
    assert runner.stop(5.0)
    assert time.monotonic() - started < 3
    assert states(reports_of(probes, spans, pending.job_id))[-1] == "succeeded"


def test_the_runner_acts_for_the_service_its_jobs_report(probes: Probes) -> None:
    with pytest.raises(ConfigError, match="differs"):
        probes.job_runner(service_name="pim-connector")
    with pytest.raises(ConfigError, match="probe token"):
        probes.job_runner(control_url="http://127.0.0.1:9")
    anonymous = Probes(span_exporter=InMemorySpanExporter())
    try:
        with pytest.raises(ConfigError, match="service_name"):
            anonymous.job_runner(control_url="http://127.0.0.1:9", token="t")
    finally:
        anonymous.shutdown()


def test_job_cancelled_raised_by_the_code_itself_is_a_cancel(
    probes: Probes, spans: InMemorySpanExporter
) -> None:
    with probes.job_run("ERP_SYNC") as job:
        raise JobCancelled("the upstream withdrew the batch")
    final = reports_of(probes, spans, job.job_id)[-1].attributes or {}
    assert final[c.JOB_STATE] == JobState.CANCELLED.value
    assert final["scheduler.job.metadata.cancel_reason"] == "the upstream withdrew the batch"


def test_the_command_poll_adds_no_httpx_line_to_the_hosts_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A host logging at INFO gets httpx's line for its own requests, not one per
    long poll of the probes' command poller (every few seconds, forever)."""
    with StubServer() as stub:
        base = f"http://127.0.0.1:{stub.port}"
        control = _Control(base, "token", service="svc", instance="i-1", wait_s=0.0)
        with caplog.at_level(logging.INFO, logger="httpx"):
            with pytest.raises(_ControlError):
                control.claim()  # the stub answers "ok", not commands: the request was made
            httpx.get(stub.url)  # the host's own request, to the same server
    lines = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert stub.requests == 2
    assert len(lines) == 1, lines
    assert "/health" in lines[0]
