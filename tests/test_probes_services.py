"""Service checks, health checks and resources of the probes library.

Against the SDK's ``InMemoryMetricReader``: what it collects is exactly what the
collector would receive, so these pin names, types, units and attributes as the
telemetry contract spells them. The last test follows one service check through
the real collector into the test stack's Prometheus.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.metrics.export import Gauge, InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from b2c_monitoring import contract as c
from b2c_monitoring.errors import ConfigError
from b2c_monitoring.probes import (
    CheckResult,
    CheckSpec,
    HealthCheckResult,
    PoolUsage,
    Probes,
    ProbeSettings,
    Watch,
    configure,
)
from b2c_monitoring.probes._metrics import GAUGE_DELTA
from b2c_monitoring.stack.local import LocalStack
from tests.http_stub import StubServer, closed_port
from tests.polling import eventually


@dataclass(frozen=True)
class Sample:
    metric: str
    unit: str
    value: int | float
    attributes: dict[str, Any]
    resource: dict[str, Any]


class Collected:
    """Every data point the reader collected so far (delta gauges: each point once)."""

    def __init__(self, reader: InMemoryMetricReader) -> None:
        self._reader = reader
        self.samples: list[Sample] = []

    def collect(self) -> list[Sample]:
        data = self._reader.get_metrics_data()
        new: list[Sample] = []
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    assert isinstance(metric.data, Gauge), f"{metric.name} is not a gauge"
                    new.extend(
                        Sample(
                            metric.name,
                            metric.unit or "",
                            point.value,
                            dict(point.attributes or {}),
                            dict(rm.resource.attributes),
                        )
                        for point in metric.data.data_points
                    )
        self.samples.extend(new)
        return new

    def of(self, metric: str, **match: str) -> list[Sample]:
        self.collect()
        return [
            s
            for s in self.samples
            if s.metric == metric and all(s.attributes.get(k) == v for k, v in match.items())
        ]


def rounds(watch: Watch[Any], count: int) -> None:
    """Wait until ``watch`` has done ``count`` rounds in all."""
    eventually(
        lambda: True if watch.rounds >= count else None,
        timeout=10,
        every=0.02,
        what=f"{count} rounds of {watch.name}",
    )


def more_rounds(watch: Watch[Any], count: int) -> None:
    """Wait for ``count`` rounds after the current one (a watch with a short interval)."""
    rounds(watch, watch.rounds + count + 1)


@pytest.fixture
def reader() -> InMemoryMetricReader:
    return InMemoryMetricReader(preferred_temporality=GAUGE_DELTA)


@pytest.fixture
def logs() -> InMemoryLogRecordExporter:
    return InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]


@pytest.fixture
def probes(reader: InMemoryMetricReader, logs: InMemoryLogRecordExporter) -> Iterator[Probes]:
    settings = ProbeSettings(service_name="erp-connector", tenant_id="acme")
    with Probes(
        settings, span_exporter=InMemorySpanExporter(), log_exporter=logs, metric_reader=reader
    ) as p:
        yield p


@pytest.fixture
def metrics(reader: InMemoryMetricReader) -> Collected:
    return Collected(reader)


@pytest.fixture
def server() -> Iterator[StubServer]:
    with StubServer() as stub:
        yield stub


def erp_attributes() -> dict[str, str]:
    return {
        c.CONNECTED_SERVICE_NAME: "enventa-erp",
        c.CONNECTED_SERVICE_TYPE: "ERP",
        c.SERVER_ADDRESS: "127.0.0.1",
    }


# connected services


def test_a_watched_service_reports_up_and_its_check_duration_as_the_contract_says(
    probes: Probes, metrics: Collected, server: StubServer
) -> None:
    watch = probes.watch_service("enventa-erp", "ERP", CheckSpec("http", server.url), every_s=60)
    rounds(watch, 1)
    [up] = metrics.of(c.SERVICE_UP)
    assert (up.unit, up.value, type(up.value)) == ("", 1, int)
    assert up.attributes == erp_attributes()
    assert up.resource[c.SERVICE_NAME] == "erp-connector"
    assert up.resource[c.TENANT_ID] == "acme"
    [duration] = metrics.of(c.SERVICE_CHECK_DURATION)
    assert duration.unit == "s"
    assert duration.attributes == erp_attributes()
    assert isinstance(duration.value, float)
    assert 0 < duration.value < 1
    assert watch.last is not None
    assert watch.last.status == "up"
    assert duration.value == watch.last.latency_s


def test_each_check_is_one_data_point_and_nothing_is_repeated_between_checks(
    probes: Probes, metrics: Collected, server: StubServer
) -> None:
    """Delta gauges: a probe that stops checking stops reporting (the monitor sees it
    go stale) instead of repeating its last value."""
    watch = probes.watch_service("enventa-erp", "ERP", CheckSpec("http", server.url), every_s=3600)
    rounds(watch, 1)
    assert len([s for s in metrics.collect() if s.metric == c.SERVICE_UP]) == 1
    assert metrics.collect() == []
    watch.run_once()
    assert [s.metric for s in metrics.collect()] == [c.SERVICE_UP, c.SERVICE_CHECK_DURATION]


def test_a_slow_service_is_degraded_and_still_up_with_its_latency(
    probes: Probes, metrics: Collected, server: StubServer
) -> None:
    server.delay_s = 0.2
    spec = CheckSpec("http", server.url, degraded_after_s=0.05)
    watch = probes.watch_service("akeneo-pim", "PIM", spec, every_s=60)
    rounds(watch, 1)
    assert watch.last is not None
    assert watch.last.status == "degraded"
    assert [s.value for s in metrics.of(c.SERVICE_UP)] == [1]
    [duration] = metrics.of(c.SERVICE_CHECK_DURATION)
    assert duration.value >= 0.2


def test_a_service_that_stops_answering_reports_0_without_a_duration_and_recovers(
    probes: Probes,
    metrics: Collected,
    server: StubServer,
    logs: InMemoryLogRecordExporter,
) -> None:
    watch = probes.watch_service(
        "enventa-erp", "ERP", CheckSpec("tcp", f"127.0.0.1:{server.port}"), every_s=0.05
    )
    rounds(watch, 1)
    server.stop()
    more_rounds(watch, 2)
    metrics.collect()
    down = metrics.of(c.SERVICE_UP)[-1]
    assert down.value == 0
    assert down.attributes == erp_attributes()
    durations = len(metrics.of(c.SERVICE_CHECK_DURATION))

    with StubServer() as again:  # the service back, on a new port: watch that one
        watch.stop()
        watch2 = probes.watch_service(
            "enventa-erp", "ERP", CheckSpec("tcp", f"127.0.0.1:{again.port}"), every_s=60
        )
        rounds(watch2, 1)
    assert metrics.of(c.SERVICE_UP)[-1].value == 1
    assert len(metrics.of(c.SERVICE_CHECK_DURATION)) == durations + 1

    probes.force_flush()
    [error] = [
        r.log_record
        for r in logs.get_finished_logs()
        if (r.log_record.attributes or {}).get(c.EVENT_NAME) == c.COMMUNICATION_ERROR_EVENT
    ]  # one record for the whole outage, not one per failed check
    attributes = dict(error.attributes or {})
    assert attributes[c.CONNECTED_SERVICE_NAME] == "enventa-erp"
    assert attributes[c.SERVER_ADDRESS] == "127.0.0.1"
    assert "Connection refused" in str(attributes[c.EXCEPTION_MESSAGE])


def test_a_failed_postgres_check_names_the_host_and_keeps_the_password_secret(
    probes: Probes, metrics: Collected, logs: InMemoryLogRecordExporter
) -> None:
    conninfo = f"postgresql://crm:hunter2@127.0.0.1:{closed_port()}/crm"
    watch = probes.watch_service(
        "crm-db", "database", CheckSpec("postgres", conninfo, timeout_s=1), every_s=60
    )
    rounds(watch, 1)
    [down] = metrics.of(c.SERVICE_UP)
    assert down.attributes == {
        c.CONNECTED_SERVICE_NAME: "crm-db",
        c.CONNECTED_SERVICE_TYPE: "Database",  # spelled as in the contract
        c.SERVER_ADDRESS: "127.0.0.1",
    }
    probes.force_flush()
    assert "hunter2" not in repr([r.log_record.attributes for r in logs.get_finished_logs()])


def test_custom_checks_return_a_bool_or_a_result_and_their_failures_are_down(
    probes: Probes, metrics: Collected
) -> None:
    def raises() -> bool:
        raise ConnectionError("SAP RFC: password=hunter2 refused")

    cases: dict[str, Callable[[], CheckResult | bool]] = {
        "true": lambda: True,
        "false": lambda: False,
        "result": lambda: CheckResult("degraded", 0.7, None),
        "raises": raises,
    }
    watches = {
        name: probes.watch_service(name, "Other", fn, every_s=60, address="sap.internal")
        for name, fn in cases.items()
    }
    for watch in watches.values():
        rounds(watch, 1)
    assert {name: w.last.status for name, w in watches.items() if w.last} == {
        "true": "up",
        "false": "down",
        "result": "degraded",
        "raises": "down",
    }
    raised = watches["raises"].last
    assert raised is not None
    assert raised.error == "ConnectionError: SAP RFC: password=*** refused"
    ups = {s.attributes[c.CONNECTED_SERVICE_NAME]: s.value for s in metrics.of(c.SERVICE_UP)}
    assert ups == {"true": 1, "false": 0, "result": 1, "raises": 0}
    assert {s.attributes[c.SERVER_ADDRESS] for s in metrics.of(c.SERVICE_UP)} == {"sap.internal"}
    [latency] = metrics.of(c.SERVICE_CHECK_DURATION, **{c.CONNECTED_SERVICE_NAME: "result"})
    assert latency.value == 0.7


def test_a_hanging_custom_check_is_down_after_its_timeout_and_costs_one_thread(
    probes: Probes,
) -> None:
    release = threading.Event()
    calls = 0

    def hangs() -> bool:
        nonlocal calls
        calls += 1
        return release.wait(30)

    watch = probes.watch_service("legacy", "Other", hangs, every_s=0.05, timeout_s=0.1)
    try:
        rounds(watch, 3)
        assert watch.last == CheckResult(
            "down", None, "the previous check has not returned after 0.1 s"
        )
        assert calls == 1
    finally:
        release.set()


def test_arguments_that_break_the_contract_are_refused_at_once(probes: Probes) -> None:
    spec = CheckSpec("tcp", "127.0.0.1:1")
    with pytest.raises(ValueError, match="service type"):
        probes.watch_service("erp", "Mainframe", spec)
    with pytest.raises(ValueError, match="name"):
        probes.watch_service("", "ERP", spec)
    with pytest.raises(ValueError, match="every_s"):
        probes.watch_service("erp", "ERP", spec, every_s=0)
    with pytest.raises(ValueError, match="component"):
        probes.health_check("", lambda: True)


# component health


def test_health_checks_report_2_1_0_with_component_and_description(
    probes: Probes, metrics: Collected
) -> None:
    results = {
        "catalog": HealthCheckResult.healthy("index fresh"),
        "search": HealthCheckResult.degraded("index 12 min behind"),
        "checkout": HealthCheckResult.unhealthy("payment provider unreachable"),
    }

    def answering(result: HealthCheckResult) -> Callable[[], HealthCheckResult]:
        return lambda: result

    watches = [
        probes.health_check(name, answering(result), every_s=60) for name, result in results.items()
    ]
    for watch in watches:
        rounds(watch, 1)
    samples = metrics.of(c.COMPONENT_HEALTH_STATUS)
    assert {s.unit for s in samples} == {""}
    reported = {s.attributes[c.COMPONENT_NAME]: s for s in samples}
    assert {name: s.value for name, s in reported.items()} == {
        "catalog": 2,
        "search": 1,
        "checkout": 0,
    }
    for name, result in results.items():
        assert reported[name].attributes == {
            c.COMPONENT_NAME: name,
            c.COMPONENT_HEALTH_DESCRIPTION: result.description,
        }


def test_a_health_check_without_description_has_no_description_attribute(
    probes: Probes, metrics: Collected
) -> None:
    rounds(probes.health_check("catalog", lambda: True, every_s=60), 1)
    [sample] = metrics.of(c.COMPONENT_HEALTH_STATUS)
    assert sample.attributes == {c.COMPONENT_NAME: "catalog"}
    assert sample.value == 2


def test_a_raising_health_check_is_unhealthy_with_its_message(
    probes: Probes, metrics: Collected
) -> None:
    def broken() -> HealthCheckResult:
        raise RuntimeError("index postgresql://search:hunter2@db/search unreachable")

    rounds(probes.health_check("search", broken, every_s=60), 1)
    [sample] = metrics.of(c.COMPONENT_HEALTH_STATUS)
    assert sample.value == 0
    assert sample.attributes[c.COMPONENT_HEALTH_DESCRIPTION] == (
        "RuntimeError: index postgresql://search:***@db/search unreachable"
    )


def test_a_slow_health_check_is_unhealthy_after_its_timeout_and_not_called_twice(
    probes: Probes, metrics: Collected
) -> None:
    release = threading.Event()
    calls = 0

    def slow() -> HealthCheckResult:
        nonlocal calls
        calls += 1
        release.wait(30)
        return HealthCheckResult.healthy()

    started = time.monotonic()
    watch = probes.health_check("search", slow, every_s=0.05, timeout_s=0.1)
    try:
        rounds(watch, 3)
        descriptions = [
            s.attributes[c.COMPONENT_HEALTH_DESCRIPTION]
            for s in metrics.of(c.COMPONENT_HEALTH_STATUS)
        ]
        assert descriptions[0] == "health check timed out after 0.1 s"
        assert set(descriptions[1:]) == {"the previous health check has not returned after 0.1 s"}
        assert calls == 1
        assert time.monotonic() - started < 2
    finally:
        release.set()
    more_rounds(watch, 2)
    assert watch.last == HealthCheckResult.healthy()


def test_a_long_description_is_cut_and_collapsed(probes: Probes, metrics: Collected) -> None:
    text = "lag\n" + "x" * 1000
    rounds(probes.health_check("search", lambda: HealthCheckResult.degraded(text), every_s=60), 1)
    [sample] = metrics.of(c.COMPONENT_HEALTH_STATUS)
    description = sample.attributes[c.COMPONENT_HEALTH_DESCRIPTION]
    assert len(description) == 256
    assert description.startswith("lag xxx")
    assert description.endswith("…")


# resources


def test_resources_of_the_process_with_pool_and_queue_belong_to_the_owner(
    probes: Probes, metrics: Collected
) -> None:
    watch = probes.watch_resources(
        owner="crm-db",
        every_s=60,
        pool=lambda: PoolUsage(used=3, idle=5, max=10),
        queue_depth=lambda: 7,
    )
    rounds(watch, 1)
    samples = metrics.collect()
    owner = {c.CONNECTED_SERVICE_NAME: "crm-db"}
    by_metric = {(s.metric, s.attributes.get(c.DB_CLIENT_CONNECTION_STATE)): s for s in samples}
    units = {metric: s.unit for (metric, _), s in by_metric.items()}
    assert units == {
        c.PROCESS_CPU_UTILIZATION: "1",
        c.PROCESS_MEMORY_USAGE: "By",
        c.SYSTEM_MEMORY_LIMIT: "By",
        c.PROCESS_THREAD_COUNT: "{thread}",
        c.DB_CLIENT_CONNECTION_COUNT: "{connection}",
        c.DB_CLIENT_CONNECTION_MAX: "{connection}",
        c.SCHEDULER_QUEUE_DEPTH: "{job}",
    }
    cpu = by_metric[c.PROCESS_CPU_UTILIZATION, None]
    assert 0.0 <= cpu.value <= 1.0
    assert cpu.attributes == owner
    memory = by_metric[c.PROCESS_MEMORY_USAGE, None].value
    limit = by_metric[c.SYSTEM_MEMORY_LIMIT, None].value
    assert isinstance(memory, int)
    assert 10 * 2**20 < memory < limit
    assert by_metric[c.PROCESS_THREAD_COUNT, None].value >= 2  # main + the probe's
    assert by_metric[c.DB_CLIENT_CONNECTION_COUNT, "used"].value == 3
    assert by_metric[c.DB_CLIENT_CONNECTION_COUNT, "idle"].value == 5
    assert by_metric[c.DB_CLIENT_CONNECTION_COUNT, "idle"].attributes == {
        **owner,
        c.DB_CLIENT_CONNECTION_STATE: "idle",
    }
    assert by_metric[c.DB_CLIENT_CONNECTION_MAX, None].value == 10
    assert by_metric[c.SCHEDULER_QUEUE_DEPTH, None].value == 7
    assert all(s.attributes.get(c.CONNECTED_SERVICE_NAME) == "crm-db" for s in samples)


def test_resources_without_an_owner_belong_to_the_emitting_service(
    probes: Probes, metrics: Collected
) -> None:
    rounds(probes.watch_resources(every_s=60), 1)
    samples = metrics.collect()
    assert {s.metric for s in samples} == {
        c.PROCESS_CPU_UTILIZATION,
        c.PROCESS_MEMORY_USAGE,
        c.SYSTEM_MEMORY_LIMIT,
        c.PROCESS_THREAD_COUNT,
    }
    assert all(c.CONNECTED_SERVICE_NAME not in s.attributes for s in samples)
    assert {s.resource[c.SERVICE_NAME] for s in samples} == {"erp-connector"}


def test_a_failing_callback_leaves_out_its_metric_only(probes: Probes, metrics: Collected) -> None:
    def broken_pool() -> PoolUsage:
        raise RuntimeError("pool closed")

    watch = probes.watch_resources(
        "crm-db", every_s=60, pool=broken_pool, queue_depth=lambda: -3, process=False
    )
    rounds(watch, 1)
    assert metrics.collect() == []  # a negative depth is left out too
    watch2 = probes.watch_resources("crm-db", every_s=60, queue_depth=lambda: 2, process=False)
    rounds(watch2, 1)
    assert [(s.metric, s.value) for s in metrics.collect()] == [(c.SCHEDULER_QUEUE_DEPTH, 2)]


# lifecycle


def probe_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("b2c-probes-")]


def test_shutdown_stops_every_probe_and_later_ones_never_start(
    reader: InMemoryMetricReader, server: StubServer
) -> None:
    probes = Probes(
        span_exporter=InMemorySpanExporter(),
        log_exporter=InMemoryLogRecordExporter(),  # type: ignore[no-untyped-call]
        metric_reader=reader,
    )
    watches: list[Watch[Any]] = [
        probes.watch_service("erp", "ERP", CheckSpec("http", server.url), every_s=0.05),
        probes.health_check("catalog", lambda: True, every_s=0.05),
        probes.watch_resources(every_s=0.05),
    ]
    for watch in watches:
        rounds(watch, 1)
    started = time.monotonic()
    assert probes.shutdown(2.0)
    assert time.monotonic() - started < 2.0
    assert not any(w.running for w in watches)
    eventually(
        lambda: True if not probe_threads() else None,
        timeout=10,
        every=0.02,
        what="the probe threads to end",
    )
    late = probes.watch_service("erp", "ERP", CheckSpec("http", server.url), every_s=0.05)
    time.sleep(0.1)
    assert late.rounds == 0
    assert not late.running


def test_an_unreachable_collector_neither_fails_nor_stalls_the_probes(server: StubServer) -> None:
    probes = configure(
        f"http://127.0.0.1:{closed_port()}",
        service_name="erp-connector",
        metric_export_interval=0.1,
        export_timeout=0.3,
    )
    watch = probes.watch_service("erp", "ERP", CheckSpec("http", server.url), every_s=0.05)
    rounds(watch, 5)  # checks go on while exports fail
    eventually(
        lambda: True if probes.stats.metrics.failed > 0 else None,
        timeout=10,
        every=0.02,
        what="a failed metric export",
    )
    started = time.monotonic()
    probes.shutdown(timeout=1.0)
    assert time.monotonic() - started < 3.0
    assert probes.stats.metrics.exported == 0


def test_the_metric_export_interval_comes_from_arguments_then_the_environment() -> None:
    assert ProbeSettings.from_env({}).metric_export_interval == 2.0
    environ = {"OTEL_METRIC_EXPORT_INTERVAL": "500"}
    assert ProbeSettings.from_env(environ).metric_export_interval == 0.5
    assert ProbeSettings.from_env(environ, metric_export_interval=3).metric_export_interval == 3
    with pytest.raises(ConfigError):
        ProbeSettings.from_env({"OTEL_METRIC_EXPORT_INTERVAL": "soon"})
    with pytest.raises(ConfigError):
        ProbeSettings(metric_export_interval=0)


def test_a_host_that_only_reports_jobs_runs_no_metric_thread() -> None:
    before = {t.ident for t in threading.enumerate()}
    probes = configure(f"http://127.0.0.1:{closed_port()}", metric_export_interval=0.05)
    with probes.job_run("ERP_SYNC"):
        pass
    new = [t.name for t in threading.enumerate() if t.ident not in before]
    probes.shutdown(1.0)
    assert not any("Metric" in name or "metric" in name for name in new), new


# end to end


def prometheus_value(stack: LocalStack, query: str) -> Mapping[str, Any] | None:
    response = httpx.get(
        f"{stack.prometheus.url}/api/v1/query", params={"query": query}, timeout=10
    )
    result = response.json()["data"]["result"]
    return result[0] if result else None


@pytest.mark.integration
def test_a_watched_service_reaches_prometheus_through_the_collector(
    stack: LocalStack, tenant: str, server: StubServer
) -> None:
    name = f"erp-{uuid.uuid4().hex[:8]}"
    probes = Probes(
        ProbeSettings(
            endpoint=f"http://127.0.0.1:{stack.layout.ports.otlp_grpc}",
            token=stack.probe_token,
            service_name="erp-connector",
            tenant_id=tenant,
            metric_export_interval=0.5,
        )
    )
    try:
        probes.watch_service(name, "ERP", CheckSpec("http", server.url), every_s=1)
        up = eventually(
            lambda: prometheus_value(
                stack, f'connected_service_up{{connected_service_name="{name}"}}'
            ),
            timeout=60,
            what="connected_service_up in Prometheus",
        )
        duration = eventually(
            lambda: prometheus_value(
                stack,
                f'connected_service_check_duration_seconds{{connected_service_name="{name}"}}',
            ),
            timeout=30,
            what="connected_service_check_duration_seconds in Prometheus",
        )
    finally:
        probes.shutdown()
    assert up["value"][1] == "1"
    assert up["metric"]["connected_service_type"] == "ERP"
    assert up["metric"]["server_address"] == "127.0.0.1"
    assert up["metric"]["tenant_id"] == tenant
    assert up["metric"]["service_name"] == "erp-connector"
    assert 0 < float(duration["value"][1]) < 1
