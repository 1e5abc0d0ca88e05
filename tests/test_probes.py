"""The probes library's own logic, against the SDK's in-memory exporters.

What reaches the exporter is exactly what the collector would receive, so these
pin the reports a job run sends; the pipeline behind the collector is tested
elsewhere. Only the last tests use the real OTLP exporter, aimed at a closed port.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
import types
from collections.abc import Iterator, Mapping, Sequence

import pytest
from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from opentelemetry.util.types import AnyValue

import b2c_monitoring.probes as probes_module
from b2c_monitoring import contract as c
from b2c_monitoring.contract import JobState
from b2c_monitoring.errors import ConfigError
from b2c_monitoring.probes import JobRun, Probes, ProbeSettings, configure


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


def memory_logs() -> InMemoryLogRecordExporter:
    return InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]


@pytest.fixture
def logs() -> InMemoryLogRecordExporter:
    return memory_logs()


@pytest.fixture
def probes(spans: InMemorySpanExporter, logs: InMemoryLogRecordExporter) -> Iterator[Probes]:
    settings = ProbeSettings(service_name="erp-connector", service_instance_id="erp-1")
    with Probes(settings, span_exporter=spans, log_exporter=logs) as p:
        yield p


def reports(probes: Probes, spans: InMemorySpanExporter) -> list[ReadableSpan]:
    assert probes.force_flush(5.0)
    return sorted(spans.get_finished_spans(), key=lambda s: s.end_time or 0)


def log_records(probes: Probes, logs: InMemoryLogRecordExporter) -> list[ReadableLogRecord]:
    assert probes.force_flush(5.0)
    return list(logs.get_finished_logs())


def attrs(span: ReadableSpan) -> Mapping[str, AnyValue]:
    assert span.attributes is not None
    return span.attributes


def log_attrs(record: ReadableLogRecord) -> Mapping[str, AnyValue]:
    assert record.log_record.attributes is not None
    return record.log_record.attributes


def states(sent: Sequence[ReadableSpan]) -> list[AnyValue]:
    return [attrs(s)[c.JOB_STATE] for s in sent]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# one run's reports


def test_a_succeeded_run_reports_running_then_succeeded_at_full_progress(
    probes: Probes, spans: InMemorySpanExporter
) -> None:
    with probes.job_run("ERP_SYNC", tenant_id="acme") as job:
        inside = job.state
    sent = reports(probes, spans)

    assert inside is JobState.RUNNING

    assert states(sent) == ["running", "succeeded"]
    assert [s.name for s in sent] == ["job ERP_SYNC running", "job ERP_SYNC succeeded"]
    final = attrs(sent[-1])
    assert final[c.JOB_ID] == job.job_id
    assert final[c.JOB_TYPE] == "ERP_SYNC"
    assert final[c.JOB_PROGRESS] == 100
    assert final[c.JOB_ATTEMPT] == 1
    assert final[c.TENANT_ID] == "acme"
    assert c.JOB_RETRY_OF not in final
    assert job.state is JobState.SUCCEEDED
    resource = sent[0].resource.attributes
    assert resource[c.SERVICE_NAME] == "erp-connector"
    assert resource[c.SERVICE_INSTANCE_ID] == "erp-1"


def test_every_report_is_a_short_span_ended_at_once(
    probes: Probes, spans: InMemorySpanExporter
) -> None:
    with probes.job_run("ERP_SYNC"):
        time.sleep(0.05)
    for span in reports(probes, spans):
        assert span.start_time is not None
        assert span.end_time is not None
        assert (
            span.end_time - span.start_time < 10_000_000
        )  # < 10 ms: the job's 50 ms are not in it


def test_a_failed_run_reports_the_message_and_an_exception_event_and_reraises(
    probes: Probes, spans: InMemorySpanExporter
) -> None:
    runs: list[JobRun] = []

    def sync() -> None:
        with probes.job_run("ERP_SYNC") as job:
            runs.append(job)
            job.progress(40)
            raise ConnectionError("enventa ERP answered 503 Service Unavailable")

    with pytest.raises(ConnectionError, match="503"):
        sync()
    failed = reports(probes, spans)[-1]
    (job,) = runs

    assert attrs(failed)[c.JOB_STATE] == "failed"
    assert attrs(failed)[c.JOB_PROGRESS] == 40
    assert attrs(failed)[c.ERROR_TYPE] == "ConnectionError"
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description == "enventa ERP answered 503 Service Unavailable"
    (event,) = failed.events
    assert event.name == c.EXCEPTION_EVENT
    assert event.attributes is not None
    assert event.attributes[c.EXCEPTION_MESSAGE] == "enventa ERP answered 503 Service Unavailable"
    assert job.state is JobState.FAILED
    assert job.error == "enventa ERP answered 503 Service Unavailable"


def test_an_exception_without_a_message_fails_with_its_type(
    probes: Probes, spans: InMemorySpanExporter
) -> None:
    with pytest.raises(KeyError), probes.job_run("PIM_IMPORT"):
        raise KeyError
    assert reports(probes, spans)[-1].status.description == "KeyError"


def test_fail_ends_the_run_failed_without_an_exception(
    probes: Probes, spans: InMemorySpanExporter
) -> None:
    with probes.job_run("PIM_IMPORT") as job:
        job.fail("PIM import: 12 products rejected: missing GTIN")
    failed = reports(probes, spans)[-1]
    assert attrs(failed)[c.JOB_STATE] == "failed"
    assert failed.status.description == "PIM import: 12 products rejected: missing GTIN"
    assert not failed.events


def test_progress_never_goes_down_and_stays_within_0_to_100(
    probes: Probes, spans: InMemorySpanExporter
) -> None:
    with probes.job_run("CRM_EXPORT") as job:
        job.progress(-5)
        job.progress(40)
        job.progress(20)  # lower: nothing new to report
        job.progress(20, batch=3)  # lower, but new metadata: reported at 40
        job.progress(150)
        job.progress(float("nan"))
        assert job.progress_percent == 100
    progress = [attrs(s).get(c.JOB_PROGRESS) for s in reports(probes, spans)]

    assert progress == [None, 0, 40, 40, 100, 100]


def test_metadata_becomes_prefixed_scalar_attributes(
    probes: Probes, spans: InMemorySpanExporter
) -> None:
    with probes.job_run("ERP_SYNC", metadata={"source_system": "enventa"}) as job:
        job.progress(50, records_processed=1200)
        job.set_metadata("dry_run", False)
        job.set_metadata("files", ["a.csv", "b.csv"])  # not a scalar: sent as text
        job.set_metadata("", "no key")
    final = attrs(reports(probes, spans)[-1])

    metadata = {k: v for k, v in final.items() if k.startswith(c.JOB_METADATA_PREFIX)}
    assert metadata == {
        "scheduler.job.metadata.source_system": "enventa",
        "scheduler.job.metadata.records_processed": 1200,
        "scheduler.job.metadata.dry_run": False,
        "scheduler.job.metadata.files": "['a.csv', 'b.csv']",
    }


def test_a_retry_carries_its_attempt_and_the_job_it_retries(
    probes: Probes, spans: InMemorySpanExporter
) -> None:
    with probes.job_run("ERP_SYNC", job_id="run-2", attempt=2, retry_of="run-1"):
        pass
    for span in reports(probes, spans):
        assert attrs(span)[c.JOB_ID] == "run-2"
        assert attrs(span)[c.JOB_ATTEMPT] == 2
        assert attrs(span)[c.JOB_RETRY_OF] == "run-1"


# traces


def test_all_reports_of_a_run_share_one_trace_and_each_run_has_its_own(
    probes: Probes, spans: InMemorySpanExporter
) -> None:
    for _ in range(2):
        with probes.job_run("ERP_SYNC") as job:
            job.progress(10)
            job.progress(90)
    sent = reports(probes, spans)
    by_job: dict[AnyValue, set[int]] = {}
    for span in sent:
        assert span.context is not None
        by_job.setdefault(attrs(span)[c.JOB_ID], set()).add(span.context.trace_id)

    assert len(by_job) == 2
    assert all(len(ids) == 1 for ids in by_job.values())
    first, second = by_job.values()
    assert first != second
    roots = [s for s in sent if s.parent is None]
    assert states(roots) == ["running", "running"]  # a real, exported root per run


def test_a_host_span_is_linked_not_made_the_parent(
    probes: Probes, spans: InMemorySpanExporter
) -> None:
    host_tracer = TracerProvider().get_tracer("host")
    with host_tracer.start_as_current_span("POST /sync") as request, probes.job_run("ERP_SYNC"):
        pass
    running = reports(probes, spans)[0]
    assert running.parent is None
    assert running.context is not None
    assert running.context.trace_id != request.get_span_context().trace_id
    assert [link.context for link in running.links] == [request.get_span_context()]


def test_host_spans_can_join_the_run_trace(probes: Probes, spans: InMemorySpanExporter) -> None:
    with probes.job_run("ERP_SYNC") as job:
        host_span = (
            TracerProvider().get_tracer("host").start_span("fetch orders", context=job.context)
        )
        host_span.end()
    running = reports(probes, spans)[0]
    assert running.context is not None
    assert host_span.get_span_context().trace_id == running.context.trace_id


def test_a_pending_job_starts_in_the_same_trace(
    probes: Probes, spans: InMemorySpanExporter
) -> None:
    pending = probes.job_pending(
        "PIM_IMPORT", tenant_id="globex", metadata={"file": "products.csv"}
    )
    with probes.start_pending(pending) as job:
        assert job.job_id == pending.job_id
    sent = reports(probes, spans)

    assert states(sent) == ["pending", "running", "succeeded"]
    assert {s.context.trace_id for s in sent if s.context is not None} == {
        int(str(pending.traceparent).split("-")[1], 16)
    }
    assert all(attrs(s)[c.TENANT_ID] == "globex" for s in sent)
    assert all(attrs(s)["scheduler.job.metadata.file"] == "products.csv" for s in sent)


# async, decorator, cancellation


def test_the_run_works_as_an_async_context_manager(
    probes: Probes, spans: InMemorySpanExporter
) -> None:
    async def main() -> str:
        async with probes.job_run("CRM_EXPORT") as job:
            await asyncio.sleep(0)
            job.progress(50)
        return job.job_id

    job_id = asyncio.run(main())
    sent = reports(probes, spans)
    assert states(sent) == ["running", "running", "succeeded"]
    assert {attrs(s)[c.JOB_ID] for s in sent} == {job_id}


def test_an_async_exception_fails_the_run_and_propagates(
    probes: Probes, spans: InMemorySpanExporter
) -> None:
    async def main() -> None:
        async with probes.job_run("CRM_EXPORT"):
            raise TimeoutError("CRM API did not answer within 30 s")

    with pytest.raises(TimeoutError):
        asyncio.run(main())
    assert reports(probes, spans)[-1].status.description == "CRM API did not answer within 30 s"


def test_a_cancelled_task_ends_the_run_cancelled(
    probes: Probes, spans: InMemorySpanExporter
) -> None:
    async def job_body() -> None:
        async with probes.job_run("ERP_SYNC"):
            await asyncio.sleep(10)

    async def main() -> None:
        task = asyncio.create_task(job_body())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    final = attrs(reports(probes, spans)[-1])
    assert final[c.JOB_STATE] == "cancelled"
    assert final["scheduler.job.metadata.cancel_reason"] == "asyncio.exceptions.CancelledError"


def test_the_decorator_runs_sync_and_async_functions_as_jobs(
    probes: Probes, spans: InMemorySpanExporter
) -> None:
    seen: list[JobRun] = []

    @probes.monitored_job("ERP_SYNC", tenant_id="acme")
    def sync_orders(batch: int, job: JobRun | None = None) -> int:
        assert job is not None
        seen.append(job)
        job.progress(50)
        return batch * 2

    @probes.monitored_job("PIM_IMPORT")
    async def import_products() -> str:
        return "done"

    @probes.monitored_job("CRM_EXPORT")
    def export_contacts() -> None:
        raise RuntimeError("CRM export: Salesforce API rate limit exceeded (HTTP 429)")

    assert sync_orders(21) == 42
    assert asyncio.run(import_products()) == "done"
    with pytest.raises(RuntimeError, match="429"):
        export_contacts()
    assert sync_orders.__name__ == "sync_orders"

    final = {
        attrs(s)[c.JOB_TYPE]: s
        for s in reports(probes, spans)
        if attrs(s)[c.JOB_STATE] != "running"
    }
    assert attrs(final["ERP_SYNC"])[c.JOB_ID] == seen[0].job_id
    assert attrs(final["ERP_SYNC"])[c.TENANT_ID] == "acme"
    assert attrs(final["PIM_IMPORT"])[c.JOB_STATE] == "succeeded"
    assert attrs(final["CRM_EXPORT"])[c.JOB_STATE] == "failed"


def test_cancel_is_seen_by_the_job_and_ends_it_cancelled(
    probes: Probes, spans: InMemorySpanExporter
) -> None:
    steps = 0
    with probes.job_run("ERP_SYNC") as job:
        threading.Thread(target=job.cancel, args=("stopped by operator",)).start()
        while not job.cancelled() and steps < 1000:
            steps += 1
            time.sleep(0.001)
    final = reports(probes, spans)[-1]

    assert job.cancelled()
    assert job.state is JobState.CANCELLED
    assert attrs(final)[c.JOB_STATE] == "cancelled"
    assert attrs(final)["scheduler.job.metadata.cancel_reason"] == "stopped by operator"
    assert final.status.status_code is StatusCode.UNSET


def test_an_error_raised_after_a_cancel_request_still_ends_cancelled(
    probes: Probes, spans: InMemorySpanExporter
) -> None:
    def stop() -> None:
        with probes.job_run("ERP_SYNC") as job:
            job.cancel()
            raise InterruptedError("stopping")

    with pytest.raises(InterruptedError):
        stop()
    assert attrs(reports(probes, spans)[-1])[c.JOB_STATE] == "cancelled"


def test_calls_after_the_run_ended_are_ignored(probes: Probes, spans: InMemorySpanExporter) -> None:
    with probes.job_run("ERP_SYNC") as job:
        pass
    job.progress(10)
    job.set_metadata("late", 1)
    assert states(reports(probes, spans)) == ["running", "succeeded"]


# job logs


def test_job_log_records_carry_the_job_id_tenant_and_trace(
    probes: Probes,
    spans: InMemorySpanExporter,
    logs: InMemoryLogRecordExporter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)  # the host's level must not hide job info lines
    with probes.job_run("ERP_SYNC", tenant_id="acme") as job:
        job.logger.info("fetched %d orders", 120)
        job.logger.warning("3 orders without customer number", extra={"skipped": 3})
        try:
            raise ValueError("bad date")
        except ValueError:
            job.logger.exception("order 17 rejected")
    records = log_records(probes, logs)
    running = reports(probes, spans)[0]

    assert [r.log_record.body for r in records] == [
        "fetched 120 orders",
        "3 orders without customer number",
        "order 17 rejected",
    ]
    assert [r.log_record.severity_number for r in records] == [
        SeverityNumber.INFO,
        SeverityNumber.WARN,
        SeverityNumber.ERROR,
    ]
    for record in records:
        assert log_attrs(record)[c.JOB_ID] == job.job_id
        assert log_attrs(record)[c.TENANT_ID] == "acme"
        assert running.context is not None
        assert record.log_record.trace_id == running.context.trace_id
        assert not any(key.startswith("_") for key in log_attrs(record))
    assert log_attrs(records[1])["skipped"] == 3
    assert log_attrs(records[2])[c.EXCEPTION_MESSAGE] == "bad date"


def test_host_logs_are_exported_only_when_the_host_asks(
    probes: Probes, logs: InMemoryLogRecordExporter
) -> None:
    host = logging.getLogger("host.app")
    host.warning("before instrumenting")
    handler = probes.instrument_logging(host)
    try:
        host.warning("after instrumenting")
        with probes.job_run("ERP_SYNC") as job:
            job.logger.info("a job line")
    finally:
        host.removeHandler(handler)
    bodies = [r.log_record.body for r in log_records(probes, logs)]

    assert bodies == ["after instrumenting", "a job line"]  # the job line once, not twice


def test_the_export_path_own_logs_are_never_exported(
    probes: Probes, logs: InMemoryLogRecordExporter
) -> None:
    handler = probes.instrument_logging()  # the root logger
    try:
        logging.getLogger("opentelemetry.exporter.otlp").warning("Failed to export traces")
        logging.getLogger("grpc._channel").warning("channel closed")
        logging.getLogger("grpcio_health").warning("a host logger that only looks alike")
    finally:
        logging.getLogger().removeHandler(handler)
    bodies = [r.log_record.body for r in log_records(probes, logs)]
    assert bodies == ["a host logger that only looks alike"]


def test_job_log_records_also_reach_the_host_handlers(
    probes: Probes, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.INFO, logger="b2c_monitoring.jobs"),
        probes.job_run("ERP_SYNC") as job,
    ):
        job.logger.info("visible to the host")
    assert [r.getMessage() for r in caplog.records if r.name == "b2c_monitoring.jobs"] == [
        "visible to the host"
    ]


# arguments and settings


def test_arguments_that_break_the_contract_are_refused_at_once(probes: Probes) -> None:
    with pytest.raises(ValueError, match="job_id"):
        probes.job_run("ERP_SYNC", job_id="x" * (c.JOB_ID_MAX_CHARS + 1))
    with pytest.raises(ValueError, match="attempt"):
        probes.job_run("ERP_SYNC", attempt=0)
    with pytest.raises(ValueError, match="job_type"):
        probes.monitored_job("")


def test_settings_come_from_arguments_then_the_standard_environment() -> None:
    environ = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317",
        "OTEL_SERVICE_NAME": "catalog",
        "B2C_TENANT_ID": "acme",
    }
    from_env = ProbeSettings.from_env(environ)
    assert (from_env.endpoint, from_env.service_name, from_env.tenant_id) == (
        "http://collector:4317",
        "catalog",
        "acme",
    )
    given = ProbeSettings.from_env(
        environ, endpoint="http://other:4317", service_name="pim", tenant_id="globex"
    )
    assert (given.endpoint, given.service_name, given.tenant_id) == (
        "http://other:4317",
        "pim",
        "globex",
    )
    bare = ProbeSettings.from_env({})
    assert bare.endpoint == "http://localhost:4317"
    assert bare.tenant_id is None
    assert bare.service_instance_id != ProbeSettings.from_env({}).service_instance_id
    with pytest.raises(ConfigError):
        ProbeSettings(max_queue_size=0)


def test_configure_reads_the_standard_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "catalog")
    monkeypatch.setenv("B2C_TENANT_ID", "acme")
    endpoint = f"http://127.0.0.1:{closed_port()}"
    probes = configure(endpoint, service_instance_id="cat-1")
    assert probes.shutdown(1.0)  # nothing queued: done at once
    settings = probes.settings
    assert (
        settings.endpoint,
        settings.service_name,
        settings.tenant_id,
        settings.service_instance_id,
    ) == (
        endpoint,
        "catalog",
        "acme",
        "cat-1",
    )


def test_a_configured_tenant_is_on_the_resource(spans: InMemorySpanExporter) -> None:
    settings = ProbeSettings(service_name="catalog", tenant_id="acme")
    with Probes(settings, span_exporter=spans, log_exporter=memory_logs()) as probes:
        with probes.job_run("PIM_IMPORT"):
            pass
        sent = reports(probes, spans)
    assert sent[0].resource.attributes[c.TENANT_ID] == "acme"
    assert c.TENANT_ID not in attrs(sent[0])  # per-job tenant only when given per job


def test_the_public_surface_is_complete() -> None:
    # the integrations (probes.celery, probes.apscheduler) are submodules, imported on
    # their own: once imported they are attributes of the package, not its surface
    public = {
        name
        for name, value in vars(probes_module).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    } - {"annotations"}
    assert set(probes_module.__all__) == public


# the host is never hurt by its telemetry


def test_reports_after_shutdown_are_ignored(spans: InMemorySpanExporter) -> None:
    probes = Probes(span_exporter=spans, log_exporter=memory_logs())
    probes.shutdown()
    with probes.job_run("ERP_SYNC") as job:
        job.progress(50)
        job.logger.info("nobody listens")
    assert job.state is JobState.SUCCEEDED
    assert probes.shutdown() is True
    assert spans.get_finished_spans() == ()


class _StuckExporter(SpanExporter):
    """Holds every export until released: a collector that does not answer."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.exported = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.release.wait(10)
        self.exported += len(spans)
        return SpanExportResult.SUCCESS


def test_a_full_queue_drops_and_counts_instead_of_blocking() -> None:
    exporter = _StuckExporter()
    settings = ProbeSettings(max_queue_size=4)
    probes = Probes(settings, span_exporter=exporter, log_exporter=memory_logs())
    try:
        started = time.monotonic()
        with probes.job_run("ERP_SYNC") as job:
            for percent in range(1, 50):
                job.progress(percent)
        assert time.monotonic() - started < 1.0
        assert probes.dropped > 0
    finally:
        exporter.release.set()
        probes.shutdown(5.0)
    stats = probes.stats.spans
    assert stats.exported == exporter.exported
    assert stats.exported + stats.dropped == 51  # running, 49 progress steps, succeeded
    assert stats.failed == 0


def test_an_unreachable_collector_neither_fails_nor_stalls_the_host() -> None:
    started = time.monotonic()
    probes = configure(f"http://127.0.0.1:{closed_port()}", service_name="erp-connector")
    with probes.job_run("ERP_SYNC", tenant_id="acme") as job:
        job.logger.info("syncing")
        job.progress(50, records_processed=10)
    with pytest.raises(RuntimeError, match="host error"), probes.job_run("ERP_SYNC"):
        raise RuntimeError("host error")  # the host's own exception still propagates
    assert time.monotonic() - started < 1.0
    assert job.state is JobState.SUCCEEDED

    time.sleep(0.5)  # let the exporters try the closed port, and back off
    probes.shutdown(timeout=1.0)
    assert time.monotonic() - started < 4.0
    assert probes.stats.spans.exported == 0
    assert probes.stats.spans.failed + probes.stats.spans.dropped == 5


def test_the_context_manager_on_probes_shuts_down_within_its_bound() -> None:
    started = time.monotonic()
    with configure(f"http://127.0.0.1:{closed_port()}") as probes, probes.job_run("ERP_SYNC"):
        pass
    assert time.monotonic() - started < probes.settings.shutdown_timeout + 2.0
    assert not isinstance(trace.get_tracer_provider(), TracerProvider)  # never installed globally
