"""The evaluator and the notifier against a real Postgres (a database of each test's own)
and real receivers on loopback: an HTTP server (webhook, Slack) and an SMTP server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg_pool
import pytest
from psycopg.types.json import Jsonb
from pydantic import TypeAdapter

from b2c_monitoring.alerting.channels import SIGNATURE_HEADER, TIMESTAMP_HEADER, ChannelKind, sign
from b2c_monitoring.alerting.rules import Condition, Rule, Severity
from b2c_monitoring.alerting.schedules import Schedule
from b2c_monitoring.alerting.service import Evaluator, Notifier, RetryPolicy
from b2c_monitoring.api.cursors import alert_cursor as encode_cursor
from b2c_monitoring.api.cursors import alert_key as decode_cursor
from b2c_monitoring.auth import Principal, Role
from b2c_monitoring.errors import InvalidCursor, NotFound
from b2c_monitoring.processors.job_flags import JobWindows
from b2c_monitoring.settings import load_settings
from b2c_monitoring.storage.alert_config import AlertConfigStore, WindowRecord
from b2c_monitoring.storage.alert_facts import CommunicationErrors
from b2c_monitoring.storage.alerts import AlertFilter, AlertStore
from b2c_monitoring.storage.db import make_pool
from b2c_monitoring.storage.logs import make_client
from b2c_monitoring.storage.maintenance import maintain
from b2c_monitoring.storage.metrics import policy_from
from b2c_monitoring.storage.notifications import NotificationStore
from b2c_monitoring.telemetry_metrics import NOTIFICATIONS
from tests.alert_receivers import HttpReceiver, SmtpReceiver
from tests.http_stub import closed_port

pytestmark = pytest.mark.integration

T = "acme"
OPS = Principal("tok-1", "ops", Role.ADMIN, (T,))
SECRET = "s3cret-hmac-key-0123456789"
T0 = datetime.now(UTC).replace(microsecond=0)
FAST = RetryPolicy(
    base=timedelta(seconds=1),
    cap=timedelta(seconds=8),
    max_age=timedelta(hours=1),
    lease=timedelta(seconds=30),
)


@pytest.fixture
def pool(fresh_db: str) -> Iterator[psycopg_pool.ConnectionPool]:
    p = make_pool(fresh_db, max_size=4, name="alerting-test")
    p.open(wait=True)
    yield p
    p.close()


def evaluator(pool: psycopg_pool.ConnectionPool) -> Evaluator:
    return Evaluator(pool, None, JobWindows(timedelta(minutes=10), timedelta(minutes=15)))


def add_rule(pool: psycopg_pool.ConnectionPool, condition: dict[str, Any], **kw: Any) -> Rule:
    rule = Rule(
        id=str(uuid.uuid4()),
        tenant_id=kw.get("tenant", T),
        name=kw.get("name", condition["kind"]),
        severity=kw.get("severity", Severity.CRITICAL),
        condition=TypeAdapter[Condition](Condition).validate_python(condition),
        cooldown=kw.get("cooldown", timedelta(minutes=5)),
    )
    # made an hour ago: a job_failed rule pages for failures after it was made
    return AlertConfigStore(pool).create_rule(rule, OPS, T0 - timedelta(hours=1))


def set_service(
    pool: psycopg_pool.ConnectionPool,
    name: str,
    status: str,
    observed: str,
    streak: int,
    latency: float | None = 0.05,
    tenant: str = T,
) -> None:
    with pool.connection() as conn:
        conn.execute(
            "INSERT INTO services (tenant_id, name, service_type, status, first_seen, "
            "last_checked, last_observed, streak, last_latency_s, updated_at) "
            "VALUES (%s, %s, 'ERP', %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (tenant_id, name) DO "
            "UPDATE SET status = excluded.status, last_observed = excluded.last_observed, "
            "streak = excluded.streak, last_latency_s = excluded.last_latency_s",
            (tenant, name, status, T0, T0, observed, streak, latency, T0),
        )


def add_job(
    pool: psycopg_pool.ConnectionPool,
    job_id: str,
    status: str,
    at: datetime,
    job_type: str = "ERP_SYNC",
) -> None:
    terminal = status in ("failed", "succeeded")
    with pool.connection() as conn:
        conn.execute(
            "INSERT INTO jobs (tenant_id, job_id, job_type, status, progress_percent, created_at, "
            "completed_at, error_message, last_report_at, updated_at) "
            "VALUES (%s, %s, %s, %s, 0, %s, %s, %s, %s, %s)",
            (
                T,
                job_id,
                job_type,
                status,
                at,
                at if terminal else None,
                "ERP timeout" if status == "failed" else None,
                at,
                at,
            ),
        )


def channel(
    pool: psycopg_pool.ConnectionPool,
    kind: ChannelKind,
    config: dict[str, Any],
    secret: str | None = None,
    name: str | None = None,
) -> None:
    AlertConfigStore(pool).create_channel(
        T, name or kind.value, kind, config, secret, Severity.INFO, OPS, T0
    )


def alerts(pool: psycopg_pool.ConnectionPool, **kw: Any) -> list[Any]:
    items, _ = AlertStore(pool).page(AlertFilter(tenants=[T], **kw), T0)
    return items


def test_service_down_fires_once_dedupes_resolves_and_notifies_every_channel(
    pool: psycopg_pool.ConnectionPool,
) -> None:
    hook, slack = HttpReceiver(), HttpReceiver()
    smtp = SmtpReceiver(closed_port())
    try:
        channel(pool, ChannelKind.WEBHOOK, {"url": hook.url}, SECRET)
        channel(pool, ChannelKind.SLACK, {"url": slack.url})
        channel(
            pool,
            ChannelKind.EMAIL,
            {
                "host": "127.0.0.1",
                "port": smtp.port,
                "from": "b2c@example.org",
                "to": ["ops@example.org"],
            },
        )
        add_rule(pool, {"kind": "service_down", "checks": 3})
        set_service(pool, "enventa-erp", "up", "down", 2)
        ev, notifier = evaluator(pool), Notifier(pool, FAST)
        ev.run_once(T0)
        assert alerts(pool) == []
        set_service(pool, "enventa-erp", "down", "down", 3)
        for minute in range(3):  # the same condition, evaluated again and again
            ev.run_once(T0 + timedelta(minutes=minute))
        (alert,) = alerts(pool)
        assert alert.state == "firing"
        assert alert.service_name == "enventa-erp"
        assert notifier.run_once(T0 + timedelta(minutes=3)) == {"sent": 3}
        set_service(pool, "enventa-erp", "up", "up", 2)
        ev.run_once(T0 + timedelta(minutes=4))
        (alert,) = alerts(pool)
        assert alert.state == "resolved"
        assert notifier.run_once(T0 + timedelta(minutes=4)) == {"sent": 3}
    finally:
        hook.stop()
        slack.stop()
        smtp.stop()
    # webhook: the alert record, HMAC-signed over timestamp and body
    assert [b["event"] for b in hook.bodies()] == ["fired", "resolved"]
    for request in hook.received:
        stamp = request.headers[TIMESTAMP_HEADER]
        assert request.headers[SIGNATURE_HEADER] == sign(SECRET, stamp, request.body)
    assert hook.bodies()[0]["alert"]["id"] == alert.id
    assert hook.bodies()[1]["alert"]["state"] == "resolved"
    # slack: a text a person reads
    texts = [b["text"] for b in slack.bodies()]
    assert "[FIRED critical] enventa-erp is down" in texts[0]
    assert "[RESOLVED critical]" in texts[1]
    # e-mail over SMTP
    assert [m[1] for m in smtp.mails] == [["ops@example.org"], ["ops@example.org"]]
    assert "Subject: [FIRED critical] enventa-erp is down" in smtp.mails[0][2]


def test_a_receiver_that_is_down_gets_the_notification_once_it_is_back(
    pool: psycopg_pool.ConnectionPool,
) -> None:
    port = closed_port()
    channel(pool, ChannelKind.WEBHOOK, {"url": f"http://127.0.0.1:{port}/hook"}, SECRET)
    add_rule(pool, {"kind": "component_unhealthy"})
    with pool.connection() as conn:
        conn.execute(
            "INSERT INTO components (tenant_id, name, status, reported_status, last_report_at, "
            "first_seen, updated_at) VALUES (%s, 'catalog', 'unhealthy', 'unhealthy', %s, %s, %s)",
            (T, T0, T0, T0),
        )
    evaluator(pool).run_once(T0)
    notifier = Notifier(pool, FAST)
    failed, sent = (NOTIFICATIONS.labels("webhook", o) for o in ("failed", "sent"))
    failed_before, sent_before = failed._value.get(), sent._value.get()
    assert notifier.run_once(T0) == {"pending": 1}
    assert notifier.run_once(T0 + timedelta(milliseconds=500)) == {}  # backing off
    assert notifier.run_once(T0 + timedelta(seconds=1)) == {"pending": 1}
    (alert,) = alerts(pool)
    (status,) = NotificationStore(pool).for_alert(alert.id)
    assert status.state == "pending"
    assert status.attempts == 2
    assert status.last_error is not None
    assert "cannot be reached" in status.last_error
    assert status.next_attempt_at == T0 + timedelta(seconds=3)  # 1 s, then 2 s
    receiver = HttpReceiver(port)
    try:
        assert notifier.run_once(T0 + timedelta(seconds=3)) == {"sent": 1}
    finally:
        receiver.stop()
    assert [b["alert"]["title"] for b in receiver.bodies()] == ["component catalog is unhealthy"]
    (status,) = NotificationStore(pool).for_alert(alert.id)
    assert (status.state, status.attempts) == ("sent", 3)
    # what the pipeline dashboard and its alert rules read
    assert (failed._value.get() - failed_before, sent._value.get() - sent_before) == (2, 1)


def test_a_refusing_receiver_is_given_up_at_once_and_recorded(
    pool: psycopg_pool.ConnectionPool,
) -> None:
    hook = HttpReceiver()
    hook.status = 400
    try:
        channel(pool, ChannelKind.WEBHOOK, {"url": hook.url}, SECRET)
        add_rule(pool, {"kind": "latency_above", "thresholdMs": 100})
        set_service(pool, "pim", "up", "up", 5, latency=0.5)
        evaluator(pool).run_once(T0)
        assert Notifier(pool, FAST).run_once(T0) == {"failed": 1}
    finally:
        hook.stop()
    (alert,) = alerts(pool)
    (status,) = NotificationStore(pool).for_alert(alert.id)
    assert status.state == "failed"
    assert status.last_error is not None
    assert "answered 400" in status.last_error


def test_failures_that_name_no_service_page_one_by_one(pool: psycopg_pool.ConnectionPool) -> None:
    """Without communication errors (no Elasticsearch here) a failure is not attributed to
    the outage; test_alerting_e2e drives the grouping through the collector."""
    add_rule(pool, {"kind": "service_down", "checks": 3})
    add_rule(pool, {"kind": "job_failed", "jobType": "ERP_SYNC", "groupingDelayS": 0})
    set_service(pool, "enventa-erp", "down", "down", 5)
    for i in range(3):
        add_job(pool, f"lonely-{i}", "failed", T0 - timedelta(minutes=2))
    ev = evaluator(pool)
    ev.run_once(T0)
    # no communication errors are known: each failure pages alone
    kinds = sorted(a.kind for a in alerts(pool))
    assert kinds == ["job_failed", "job_failed", "job_failed", "service_down"]


def test_cooldown_silence_acknowledge_and_maintenance(pool: psycopg_pool.ConnectionPool) -> None:
    hook = HttpReceiver()
    try:
        channel(pool, ChannelKind.WEBHOOK, {"url": hook.url}, SECRET)
        add_rule(pool, {"kind": "service_down", "checks": 1}, cooldown=timedelta(minutes=10))
        ev, notifier, store = evaluator(pool), Notifier(pool, FAST), AlertStore(pool)
        set_service(pool, "crm", "down", "down", 1)
        ev.run_once(T0)
        (alert,) = alerts(pool)
        acked = store.acknowledge(alert.id, OPS, T0)
        assert (acked.state, acked.acknowledged_by) == ("acknowledged", "ops")
        set_service(pool, "crm", "up", "up", 2)
        ev.run_once(T0 + timedelta(minutes=1))
        set_service(pool, "crm", "down", "down", 1)
        ev.run_once(T0 + timedelta(minutes=2))  # within the cool-down: the same alert again
        (again,) = alerts(pool)
        assert (again.id, again.state, again.fire_count) == (alert.id, "firing", 2)
        notifier.run_once(T0 + timedelta(minutes=2))
        assert [b["event"] for b in hook.bodies()] == ["fired", "resolved"]  # no second page
        silenced = store.silence(
            alert.id, OPS, timedelta(hours=1), "known", T0 + timedelta(minutes=2)
        )
        assert silenced.silenced_until == T0 + timedelta(hours=1, minutes=2)
        set_service(pool, "crm", "up", "up", 2)
        ev.run_once(T0 + timedelta(minutes=3))
        notifier.run_once(T0 + timedelta(minutes=3))
        assert len(hook.bodies()) == 2  # resolved while silenced: nobody paged
        # a maintenance window of the service: the condition does not fire while it lasts
        AlertConfigStore(pool).create_window(
            WindowRecord(
                str(uuid.uuid4()),
                T,
                "crm",
                None,
                T0 + timedelta(minutes=20),
                T0 + timedelta(minutes=40),
                "upgrade",
                "ops",
                T0,
            ),
            OPS,
            T0,
        )
        set_service(pool, "crm", "down", "down", 1)
        ev.run_once(T0 + timedelta(minutes=30))
        assert [a.state for a in alerts(pool)] == ["resolved"]
        ev.run_once(T0 + timedelta(minutes=41))
        assert sorted(a.state for a in alerts(pool)) == ["firing", "resolved"]
    finally:
        hook.stop()
    _, events = store.get(alert.id, [T], T0)
    assert [e.event for e in events] == [
        "fired",
        "acknowledged",
        "resolved",
        "refired",
        "silenced",
        "resolved",
    ]
    actions = _audit_actions(pool)
    assert "alert.acknowledge" in actions
    assert "alert.silence" in actions
    assert "maintenance_window.create" in actions


def test_another_tenants_alert_is_not_found(pool: psycopg_pool.ConnectionPool) -> None:
    add_rule(pool, {"kind": "service_down", "checks": 1}, tenant="other")
    set_service(pool, "erp", "down", "down", 1, tenant="other")
    evaluator(pool).run_once(T0)
    (theirs,) = AlertStore(pool).page(AlertFilter(tenants=["other"]), T0)[0]
    assert alerts(pool) == []
    with pytest.raises(NotFound):
        AlertStore(pool).acknowledge(theirs.id, OPS, T0)
    with pytest.raises(NotFound):
        AlertStore(pool).get(theirs.id, [T], T0)


def test_a_missed_run_fires_and_the_late_run_resolves_it(pool: psycopg_pool.ConnectionPool) -> None:
    AlertConfigStore(pool).put_schedule(
        T,
        Schedule(
            "PIM_IMPORT", "0 * * * *", "Europe/Berlin", timedelta(minutes=5), T0 - timedelta(days=1)
        ),
        OPS,
        T0,
    )
    hour = T0.replace(minute=0, second=0)
    add_job(pool, "previous", "succeeded", hour - timedelta(hours=1), job_type="PIM_IMPORT")
    ev = evaluator(pool)
    ev.run_once(hour + timedelta(minutes=4))
    assert alerts(pool) == []
    ev.run_once(hour + timedelta(minutes=6))
    (alert,) = alerts(pool)
    assert (alert.kind, alert.state, alert.job_type) == ("missed_run", "firing", "PIM_IMPORT")
    assert datetime.fromisoformat(alert.details["expectedAt"]) == hour
    add_job(pool, "late", "running", hour + timedelta(minutes=7), job_type="PIM_IMPORT")
    ev.run_once(hour + timedelta(minutes=8))
    (alert,) = alerts(pool)
    assert alert.state == "resolved"


def test_a_run_apscheduler_skipped_as_missed_does_not_count_as_a_run(
    pool: psycopg_pool.ConnectionPool,
) -> None:
    """EVENT_JOB_MISSED is reported as a cancelled job (apscheduler.skipped=missed): the
    expected run did not happen, so the missed-run alert fires all the same."""
    AlertConfigStore(pool).put_schedule(
        T,
        Schedule("ERP_SYNC", "0 * * * *", "UTC", timedelta(minutes=5), T0 - timedelta(days=1)),
        OPS,
        T0,
    )
    hour = T0.replace(minute=0, second=0)
    for minutes, (job_id, skipped) in enumerate(
        (("skipped", "missed"), ("busy", "max_instances")), start=6
    ):
        with pool.connection() as conn:
            conn.execute(
                "INSERT INTO jobs (tenant_id, job_id, job_type, status, progress_percent, "
                "created_at, completed_at, last_report_at, updated_at, metadata) "
                "VALUES (%s, %s, 'ERP_SYNC', 'cancelled', 0, %s, %s, %s, %s, %s)",
                (T, job_id, hour, hour, hour, hour, Jsonb({"apscheduler.skipped": skipped})),
            )
        evaluator(pool).run_once(hour + timedelta(minutes=minutes))
        fired = [a for a in alerts(pool) if a.kind == "missed_run" and a.state == "firing"]
        # skipped for max instances: the previous run still runs, so it is no missed run
        assert len(fired) == (1 if skipped == "missed" else 0), skipped


def test_two_notifiers_never_send_the_same_notification(pool: psycopg_pool.ConnectionPool) -> None:
    hook = HttpReceiver()
    try:
        channel(pool, ChannelKind.WEBHOOK, {"url": hook.url}, SECRET)
        add_rule(pool, {"kind": "service_down", "checks": 1})
        for i in range(10):
            set_service(pool, f"svc-{i}", "down", "down", 1)
        evaluator(pool).run_once(T0)
        store = NotificationStore(pool)
        first = store.claim(T0, timedelta(minutes=1))
        second = store.claim(T0, timedelta(minutes=1))
        assert len(first) == 10
        assert second == []
    finally:
        hook.stop()


def _audit_actions(pool: psycopg_pool.ConnectionPool) -> list[str]:
    with pool.connection() as conn:
        return [r[0] for r in conn.execute("SELECT action FROM audit_log ORDER BY seq").fetchall()]


def test_operator_changes_are_audited(pool: psycopg_pool.ConnectionPool) -> None:
    rule = add_rule(pool, {"kind": "service_down"})
    AlertConfigStore(pool).delete_rule(rule.id, OPS, T0)
    assert _audit_actions(pool) == ["alert_rule.create", "alert_rule.delete"]


def test_resource_above_fires_only_when_the_whole_duration_is_above(
    pool: psycopg_pool.ConnectionPool,
) -> None:
    maintain(pool, policy_from(load_settings()), T0)
    add_rule(
        pool, {"kind": "resource_above", "metric": "cpu", "thresholdPercent": 80, "durationS": 120}
    )
    add_rule(
        pool,
        {"kind": "resource_above", "metric": "memory", "thresholdPercent": 90, "durationS": 60},
        name="memory",
    )
    set_service(pool, "crm-db", "up", "up", 3)

    def sample(owner: str, ago_s: int, cpu: float, used: float = 1, limit: float = 100) -> None:
        with pool.connection() as conn:
            conn.execute(
                "INSERT INTO resource_samples (tenant_id, owner, at, cpu_ratio, memory_used, "
                "memory_limit) VALUES (%s, %s, %s, %s, %s, %s)",
                (T, owner, T0 - timedelta(seconds=ago_s), cpu, used, limit),
            )

    for ago in (150, 110, 70, 30):  # hot for longer than the duration
        sample("crm-db", ago, 0.95, used=95)
    for ago in (150, 110, 30):  # hot, but one dip inside the duration
        sample("pim-api", ago, 0.95)
    sample("pim-api", 70, 0.10)
    for ago in (50, 20):  # hot, but not reporting for as long as the duration
        sample("fresh", ago, 0.99)
    evaluator(pool).run_once(T0)
    fired = sorted((a.service_name, a.details["metric"]) for a in alerts(pool))
    assert fired == [("crm-db", "cpu"), ("crm-db", "memory")]
    (cpu,) = [a for a in alerts(pool) if a.details["metric"] == "cpu"]
    assert cpu.service_id is not None  # ResourceAlertTriggered(serviceId, alert)


def test_a_stalled_job_fires_and_resolves_when_it_reports_again(
    pool: psycopg_pool.ConnectionPool,
) -> None:
    add_rule(pool, {"kind": "job_stalled", "jobType": "ERP_SYNC"})
    add_job(pool, "slow", "running", T0 - timedelta(minutes=11))
    add_job(pool, "fine", "running", T0 - timedelta(minutes=1))
    add_job(pool, "waiting", "pending", T0 - timedelta(minutes=16))
    ev = evaluator(pool)
    ev.run_once(T0)
    firing = sorted((a.details["jobId"], a.details["flag"]) for a in alerts(pool))
    assert firing == [("slow", "stalled"), ("waiting", "overdue")]
    with pool.connection() as conn:
        conn.execute("UPDATE jobs SET last_report_at = %s WHERE job_id = 'slow'", (T0,))
    ev.run_once(T0 + timedelta(seconds=5))
    states = sorted((a.details["jobId"], a.state) for a in alerts(pool))
    assert states == [("slow", "resolved"), ("waiting", "firing")]


def _components(pool: psycopg_pool.ConnectionPool, status: str) -> None:
    with pool.connection() as conn:
        conn.execute(
            "INSERT INTO components (tenant_id, name, status, reported_status, last_report_at, "
            "first_seen, updated_at) VALUES (%s, 'search', %s, %s, %s, %s, %s) "
            "ON CONFLICT (tenant_id, name) DO UPDATE SET status = excluded.status",
            (T, status, "healthy" if status == "unknown" else status, T0, T0, T0),
        )


def _samples(pool: psycopg_pool.ConnectionPool, cpu: float, ago: tuple[int, ...]) -> None:
    with pool.connection() as conn:
        for s in ago:
            conn.execute(
                "INSERT INTO resource_samples (tenant_id, owner, at, cpu_ratio) "
                "VALUES (%s, 'erp', %s, %s)",
                (T, T0 - timedelta(seconds=s), cpu),
            )


def _finish_jobs(pool: psycopg_pool.ConnectionPool) -> None:
    with pool.connection() as conn:
        conn.execute("UPDATE jobs SET status = 'succeeded', completed_at = last_report_at")


# (condition, make it hold, make it clear) per rule kind read from Postgres
CASES: dict[str, tuple[dict[str, Any], Any, Any]] = {
    "service_down": (
        {"kind": "service_down", "checks": 2},
        lambda p: set_service(p, "erp", "down", "down", 2),
        lambda p: set_service(p, "erp", "up", "up", 2),
    ),
    "latency_above": (
        {"kind": "latency_above", "thresholdMs": 300},
        lambda p: set_service(p, "erp", "up", "up", 2, latency=0.9),
        lambda p: set_service(p, "erp", "up", "up", 2, latency=0.1),
    ),
    "component_unhealthy": (
        {"kind": "component_unhealthy"},
        lambda p: _components(p, "unhealthy"),
        lambda p: _components(p, "healthy"),
    ),
    "job_failed": (
        {"kind": "job_failed", "groupingDelayS": 0},
        lambda p: add_job(p, "j-failed", "failed", T0 - timedelta(minutes=1)),
        lambda p: add_job(p, "j-ok", "succeeded", T0 + timedelta(seconds=30)),
    ),
    "job_stalled": (
        {"kind": "job_stalled"},
        lambda p: add_job(p, "j-stalled", "running", T0 - timedelta(minutes=20)),
        lambda p: _finish_jobs(p),
    ),
    "resource_above": (
        {"kind": "resource_above", "metric": "cpu", "thresholdPercent": 80, "durationS": 60},
        lambda p: _samples(p, 0.9, (90, 50, 10)),
        lambda p: _samples(p, 0.2, (1,)),
    ),
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_each_rule_fires_dedupes_resolves_and_notifies(
    pool: psycopg_pool.ConnectionPool, kind: str
) -> None:
    condition, hold, clear = CASES[kind]
    maintain(pool, policy_from(load_settings()), T0)
    hook = HttpReceiver()
    try:
        channel(pool, ChannelKind.WEBHOOK, {"url": hook.url}, SECRET)
        add_rule(pool, condition)
        ev, notifier = evaluator(pool), Notifier(pool, FAST)
        hold(pool)
        for second in (0, 10, 20):
            ev.run_once(T0 + timedelta(seconds=second))
            notifier.run_once(T0 + timedelta(seconds=second))
        (alert,) = alerts(pool)
        assert (alert.kind, alert.state) == (kind, "firing")
        clear(pool)
        ev.run_once(T0 + timedelta(seconds=40))
        notifier.run_once(T0 + timedelta(seconds=40))
        (alert,) = alerts(pool)
        assert alert.state == "resolved"
    finally:
        hook.stop()
    assert [(b["event"], b["alert"]["id"]) for b in hook.bodies()] == [
        ("fired", alert.id),
        ("resolved", alert.id),
    ]


def test_with_elasticsearch_down_services_still_alert_and_log_alerts_are_held(
    pool: psycopg_pool.ConnectionPool,
) -> None:
    add_rule(pool, {"kind": "service_down", "checks": 1})
    add_rule(pool, {"kind": "job_failed", "groupingDelayS": 0}, name="failed")
    add_job(pool, "j1", "failed", T0 - timedelta(minutes=5))
    windows = JobWindows(timedelta(minutes=10), timedelta(minutes=15))
    evaluator(pool).run_once(T0)  # no Elasticsearch configured: the failure pages alone
    assert [a.kind for a in alerts(pool)] == ["job_failed"]
    unreachable = make_client(f"http://127.0.0.1:{closed_port()}", timeout=1)
    try:
        down = Evaluator(pool, CommunicationErrors(unreachable, "b2c-logs*", "default"), windows)
        add_job(pool, "j2", "failed", T0 - timedelta(minutes=4))
        set_service(pool, "erp", "down", "down", 1)
        report = down.run_once(T0 + timedelta(minutes=1))
    finally:
        unreachable.close()
    assert report.failed_tenants == 0
    by_kind = sorted((a.kind, a.state) for a in alerts(pool))
    # the service alert fires; j1's alert is held (not resolved); j2 waits for the logs
    assert by_kind == [("job_failed", "firing"), ("service_down", "firing")]


def _hub(pool: psycopg_pool.ConnectionPool) -> list[tuple[str, list[Any]]]:
    # the hub's outbox (migration 0007), in the order the hub delivers it
    with pool.connection() as conn:
        rows = conn.execute(
            "SELECT target, arguments FROM hub_events WHERE tenant_id = %s ORDER BY id", (T,)
        ).fetchall()
    return [(r[0], r[1]) for r in rows]


def test_alert_changes_and_maintenance_windows_are_pushed_on_the_hub(
    pool: psycopg_pool.ConnectionPool,
) -> None:
    maintain(pool, policy_from(load_settings()), T0)
    add_rule(
        pool, {"kind": "resource_above", "metric": "cpu", "thresholdPercent": 80, "durationS": 60}
    )
    set_service(pool, "erp", "up", "up", 3)
    _samples(pool, 0.9, (90, 50, 10))
    ev = evaluator(pool)
    ev.run_once(T0)
    (alert,) = alerts(pool)
    AlertStore(pool).acknowledge(alert.id, OPS, T0)
    events = _hub(pool)
    assert [(target, args[-1]["state"]) for target, args in events] == [
        ("AlertTriggered", "firing"),
        ("ResourceAlertTriggered", "firing"),
        ("AlertTriggered", "acknowledged"),
        ("ResourceAlertTriggered", "acknowledged"),
    ]
    assert events[1][1][0] == alert.service_id
    assert events[0][1][0]["id"] == alert.id
    window = AlertConfigStore(pool).create_window(
        WindowRecord(
            str(uuid.uuid4()),
            T,
            None,
            "ERP_SYNC",
            T0 + timedelta(minutes=1),
            T0 + timedelta(minutes=2),
            "deploy",
            "ops",
            T0,
        ),
        OPS,
        T0,
    )
    ev.run_once(T0 + timedelta(seconds=30))
    ev.run_once(T0 + timedelta(seconds=90))
    ev.run_once(T0 + timedelta(seconds=100))
    ev.run_once(T0 + timedelta(minutes=3))
    pushed = [
        args[0]
        for target, args in _hub(pool)
        if target == "AlertTriggered" and args[0]["kind"] == "maintenance_window"
    ]
    assert [(p["kind"], p["state"], p["window"]["id"]) for p in pushed] == [
        ("maintenance_window", "started", window.id),
        ("maintenance_window", "ended", window.id),
    ]


def test_alerts_page_newest_first_without_gaps_or_repeats(
    pool: psycopg_pool.ConnectionPool,
) -> None:
    add_rule(pool, {"kind": "service_down", "checks": 1})
    ev = evaluator(pool)
    for i in range(5):
        set_service(pool, f"svc-{i}", "down", "down", 1)
        ev.run_once(T0 + timedelta(seconds=i))
    store, seen, before = AlertStore(pool), [], None
    while True:
        page, before = store.page(AlertFilter(tenants=[T], before=before, limit=2), T0)
        seen += [a.service_name for a in page]
        if before is None:
            break
    assert seen == [f"svc-{i}" for i in reversed(range(5))]
    assert decode_cursor(encode_cursor((T0, alerts(pool)[0].id))) == (T0, alerts(pool)[0].id)
    with pytest.raises(InvalidCursor, match="cursor"):
        decode_cursor("bm90IGEgY3Vyc29y")
    only = store.page(AlertFilter(tenants=[T], service="svc-3", kinds=["service_down"]), T0)[0]
    assert [a.service_name for a in only] == ["svc-3"]


def _rows_of(pool: psycopg_pool.ConnectionPool, alert_id: str) -> tuple[int, int, int]:
    """The history, notification and delivery attempt rows of an alert."""
    with pool.connection() as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM alert_events WHERE alert_id = %(id)s), "
            "(SELECT count(*) FROM notifications WHERE alert_id = %(id)s), "
            "(SELECT count(*) FROM notification_attempts a JOIN notifications n "
            " ON n.id = a.notification_id WHERE n.alert_id = %(id)s)",
            {"id": alert_id},
        ).fetchone()
    assert row is not None
    return row[0], row[1], row[2]


def test_resolved_alerts_past_retention_are_deleted_with_their_rows_and_open_ones_never(
    pool: psycopg_pool.ConnectionPool,
) -> None:
    other = "globex"
    ops = Principal("tok-2", "ops", Role.ADMIN, (T, other))
    # a receiver of the other tenant stays unreachable and is tried for a year
    patient = Notifier(pool, replace(FAST, max_age=timedelta(days=365)))
    long_ago, ten_days_ago = T0 - timedelta(days=100), T0 - timedelta(days=10)
    hook = HttpReceiver()
    try:
        channel(pool, ChannelKind.WEBHOOK, {"url": hook.url}, SECRET)
        AlertConfigStore(pool).create_channel(
            other,
            "unreachable",
            ChannelKind.WEBHOOK,
            {"url": f"http://127.0.0.1:{closed_port()}/hook"},
            SECRET,
            Severity.INFO,
            ops,
            T0,
        )
        add_rule(pool, {"kind": "service_down", "checks": 1})
        add_rule(pool, {"kind": "service_down", "checks": 1}, tenant=other)
        for name in ("old", "recent", "open", "acked"):
            set_service(pool, name, "down", "down", 1)
        set_service(pool, "unsent", "down", "down", 1, tenant=other)
        ev = evaluator(pool)
        ev.run_once(long_ago)
        patient.run_once(long_ago)
        started = {a.service_name: a for a in alerts(pool)}
        AlertStore(pool).acknowledge(started["acked"].id, OPS, long_ago + timedelta(minutes=1))
        set_service(pool, "old", "up", "up", 1)
        set_service(pool, "unsent", "up", "up", 1, tenant=other)
        ev.run_once(long_ago + timedelta(minutes=2))
        set_service(pool, "recent", "up", "up", 1)
        ev.run_once(ten_days_ago)
        patient.run_once(ten_days_ago)
    finally:
        hook.stop()
    [unsent] = AlertStore(pool).page(AlertFilter(tenants=[other]), T0)[0]
    assert unsent.state == "resolved"
    assert [n.state for n in NotificationStore(pool).for_alert(unsent.id)] == ["pending"] * 2
    old = started["old"].id
    assert _rows_of(pool, old) == (2, 2, 2)  # fired and resolved: history, outbox, sent once

    report = maintain(pool, policy_from(load_settings()), T0)  # 90 days by default

    assert report.pruned_alerts == 1
    assert {a.service_name: a.state for a in alerts(pool)} == {
        "recent": "resolved",  # resolved 10 days ago, though it started 100 days ago
        "open": "firing",
        "acked": "acknowledged",
    }
    assert _rows_of(pool, old) == (0, 0, 0)
    # resolved 100 days ago, but its notifications are still being tried
    assert AlertStore(pool).page(AlertFilter(tenants=[other]), T0)[0] == [unsent]
    # B2C_ALERT_RETENTION_DAYS: a shorter retention reaches the recent one; open ones stay
    shorter = maintain(pool, policy_from(load_settings(alert_retention_days=7)), T0)
    assert shorter.pruned_alerts == 1
    assert {a.service_name: a.state for a in alerts(pool)} == {
        "open": "firing",
        "acked": "acknowledged",
    }
