"""Reports handed off by Celery's per-task handlers (probes/_report_handoff.py) reach
the exporter in the order they were left, behind the failure that follows them, and
a full hand-off counts what it drops instead of growing: eager Celery tasks in this
process, the probes' real span pipeline, an in-memory exporter at its end."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from b2c_monitoring import contract as c
from b2c_monitoring.contract import JobState
from b2c_monitoring.probes import Probes, ProbeSettings
from b2c_monitoring.probes._jobs import JobIdentity
from b2c_monitoring.probes._report_handoff import ReportHandoff
from b2c_monitoring.probes.celery import CeleryMonitor, instrument_celery


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def probes(spans: InMemorySpanExporter) -> Iterator[Probes]:
    settings = ProbeSettings(service_name="handoff", tenant_id="acme", token="unused")
    probes = Probes(settings, span_exporter=spans)
    yield probes
    probes.shutdown(5.0)


@pytest.fixture
def app(probes: Probes) -> Iterator[tuple[Celery, CeleryMonitor]]:
    app = Celery("handoff", broker="memory://", backend="cache+memory://")
    app.conf.task_always_eager = True
    app.conf.task_store_eager_result = False
    monitor = instrument_celery(
        app, probes.settings, keep_args=False, probes_factory=lambda: probes
    )
    yield app, monitor
    monitor.uninstall()


def _states(spans: InMemorySpanExporter, job_id: str) -> list[str]:
    return [
        str(span.attributes[c.JOB_STATE])
        for span in spans.get_finished_spans()
        if span.attributes is not None and span.attributes.get(c.JOB_ID) == job_id
    ]


def test_a_tasks_reports_arrive_after_a_flush_in_order_with_its_metadata(
    app: tuple[Celery, CeleryMonitor], probes: Probes, spans: InMemorySpanExporter
) -> None:
    celery, _ = app

    @celery.task(name="erp.sync")  # type: ignore[untyped-decorator]
    def sync() -> None:
        return None

    ids = [sync.apply().id for _ in range(3)]
    assert probes.force_flush(5.0)
    for task_id in ids:
        assert _states(spans, task_id) == ["running", "succeeded"]
    running = next(
        s
        for s in spans.get_finished_spans()
        if s.attributes is not None and s.attributes.get(c.JOB_STATE) == "running"
    )
    assert running.attributes is not None
    assert running.attributes[c.JOB_METADATA_PREFIX + "celery.task"] == "erp.sync"
    assert running.attributes[c.TENANT_ID] == "acme"
    assert probes.stats.spans.exported == 6


def test_a_failure_follows_the_running_report_it_ends(
    app: tuple[Celery, CeleryMonitor], probes: Probes, spans: InMemorySpanExporter
) -> None:
    """The failure goes the SDK's way (its exception event), the running report through
    the hand-off: the failure's handler drains the hand-off first."""
    celery, _ = app

    @celery.task(name="erp.broken")  # type: ignore[untyped-decorator]
    def broken() -> None:
        raise RuntimeError("the ERP said no")

    result = broken.apply()
    assert probes.force_flush(5.0)
    assert _states(spans, result.id) == ["running", "failed"]


def test_a_full_hand_off_counts_what_it_drops_and_keeps_the_rest(probes: Probes) -> None:
    made: list[int] = []
    handoff = ReportHandoff(lambda report: None, probes._span_ledger, capacity=3, interval_s=60)

    def make(entry: Any, state: JobState, time_ns: int) -> None:
        made.append(entry)

    for n in range(5):
        handoff.leave(make, n, JobState.RUNNING, n)
    handoff.drain()
    assert made == [0, 1, 2]
    assert probes.stats.spans.dropped == 2


def test_an_entry_that_cannot_be_made_loses_only_its_own_report(
    probes: Probes, spans: InMemorySpanExporter
) -> None:
    direct, handoff = probes._emitter.direct, probes._emitter.handoff

    def make(entry: Any, state: JobState, time_ns: int) -> Any:
        if entry == "bad":
            raise ValueError("a request Celery never makes")
        return direct.report_of(JobIdentity(entry, "ERP_SYNC", None, 1, None), state, time_ns)

    for entry in ("a", "bad", "b"):
        handoff.leave(make, entry, JobState.RUNNING, 1)
    assert probes.force_flush(5.0)
    assert _states(spans, "a") == ["running"]
    assert _states(spans, "b") == ["running"]
    probes.shutdown(5.0)
    handoff.leave(make, "c", JobState.RUNNING, 1)  # after shutdown: ignored, not counted
    assert probes.stats.spans.dropped == 0
