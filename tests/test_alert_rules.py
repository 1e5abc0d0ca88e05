"""Alert rules, outage grouping, the alert lifecycle and missed runs: pure, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from b2c_monitoring.alerting.channels import backoff, sign
from b2c_monitoring.alerting.lifecycle import (
    AlertStatus,
    ChangeKind,
    Context,
    Window,
    acknowledge,
    derive,
    in_maintenance,
)
from b2c_monitoring.alerting.rules import (
    AlertKind,
    CalledService,
    ComponentFact,
    ComponentUnhealthy,
    Condition,
    DesiredAlert,
    ErrorRateAbove,
    Facts,
    FailedJob,
    FlaggedJob,
    JobFailed,
    JobStalled,
    LatencyAbove,
    ResourceAbove,
    ResourceFact,
    Rule,
    ServiceDown,
    ServiceFact,
    Severity,
    evaluate,
)
from b2c_monitoring.alerting.schedules import (
    CRON_PATTERN,
    InvalidSchedule,
    Schedule,
    missed_slot,
    next_expected,
    validate,
)
from b2c_monitoring.errors import Conflict

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def rule(condition: object, rid: str = "r1", cooldown: timedelta = timedelta(minutes=5)) -> Rule:
    cond = TypeAdapter[Condition](Condition).validate_python(condition)
    return Rule(rid, "t1", f"rule {rid}", Severity.CRITICAL, cond, cooldown)


def svc(
    name: str,
    status: str = "up",
    observed: str | None = "up",
    streak: int = 1,
    latency: float | None = 0.1,
) -> ServiceFact:
    return ServiceFact(name, f"id-{name}", status, observed, streak, latency, NOW)


def failed(
    job_id: str,
    *called: tuple[str, str],
    ago: timedelta = timedelta(minutes=5),
    job_type: str = "ERP_SYNC",
) -> FailedJob:
    return FailedJob(
        job_id,
        job_type,
        NOW - ago,
        "boom",
        tuple(CalledService(n, s, f"id-{n}") for n, s in called),
    )


# ---- rule specs ------------------------------------------------------------------------


def test_an_unknown_rule_kind_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ValidationError) as err:
        TypeAdapter[Condition](Condition).validate_python({"kind": "cpu_too_hot"})
    assert "service_down" in str(err.value)
    assert "cpu_too_hot" in str(err.value)


def test_a_rule_with_a_missing_threshold_or_unknown_field_is_refused() -> None:
    adapter = TypeAdapter[Condition](Condition)
    with pytest.raises(ValidationError):
        adapter.validate_python({"kind": "latency_above"})
    with pytest.raises(ValidationError):
        adapter.validate_python({"kind": "service_down", "chekcs": 3})


# ---- each rule fires on its condition and not otherwise -------------------------------


def test_service_down_fires_after_n_failed_checks() -> None:
    r = rule({"kind": "service_down", "checks": 3})
    two = Facts(services={"erp": svc("erp", "up", "down", 2)})
    three = Facts(services={"erp": svc("erp", "down", "down", 3)})
    assert evaluate([r], two, NOW) == {}
    (alert,) = evaluate([r], three, NOW).values()
    assert alert.kind is AlertKind.SERVICE_DOWN
    assert alert.service_name == "erp"
    assert alert.service_id == "id-erp"


def test_latency_fires_above_threshold_only_for_answering_services() -> None:
    r = rule({"kind": "latency_above", "thresholdMs": 500})
    facts = Facts(
        services={
            "a": svc("a", latency=0.6),
            "b": svc("b", latency=0.4),
            "c": svc("c", "down", "down", 5, latency=2.0),
        }
    )
    assert [a.service_name for a in evaluate([r], facts, NOW).values()] == ["a"]


def test_resource_fires_only_when_the_whole_duration_is_above() -> None:
    r = rule({"kind": "resource_above", "metric": "cpu", "thresholdPercent": 90, "durationS": 60})
    facts = Facts(
        resources={
            ("hot", "cpu", 60): ResourceFact("hot", "cpu", 60, 95.0, True),
            ("dip", "cpu", 60): ResourceFact("dip", "cpu", 60, 50.0, True),
            ("new", "cpu", 60): ResourceFact("new", "cpu", 60, 99.0, False),
            ("mem", "memory", 60): ResourceFact("mem", "memory", 60, 99.0, True),
        }
    )
    assert [a.service_name for a in evaluate([r], facts, NOW).values()] == ["hot"]


def test_error_rate_fires_above_errors_per_minute() -> None:
    r = rule({"kind": "error_rate_above", "thresholdPerMinute": 2, "windowS": 300})
    facts = Facts(error_counts={("erp", 300): 11, ("pim", 300): 10, ("crm", 60): 100})
    assert [a.service_name for a in evaluate([r], facts, NOW).values()] == ["erp"]


def test_component_unhealthy_and_optionally_degraded() -> None:
    comps = [
        ComponentFact("a", "unhealthy", None),
        ComponentFact("b", "degraded", None),
        ComponentFact("c", "healthy", None),
    ]
    strict = rule({"kind": "component_unhealthy"})
    loose = rule({"kind": "component_unhealthy", "includeDegraded": True}, "r2")
    assert len(evaluate([strict], Facts(components=comps), NOW)) == 1
    assert len(evaluate([loose], Facts(components=comps), NOW)) == 2


def test_stalled_and_overdue_jobs_fire_per_job_of_the_type() -> None:
    r = rule({"kind": "job_stalled", "jobType": "ERP_SYNC"})
    facts = Facts(
        flagged_jobs=[
            FlaggedJob("j1", "ERP_SYNC", "running", "stalled", NOW),
            FlaggedJob("j2", "ERP_SYNC", "pending", "overdue", NOW),
            FlaggedJob("j3", "PIM_IMPORT", "running", "stalled", NOW),
        ]
    )
    assert sorted(a.details["jobId"] for a in evaluate([r], facts, NOW).values()) == ["j1", "j2"]


def test_a_failed_job_pages_alone_after_the_grouping_delay() -> None:
    r = rule({"kind": "job_failed", "groupingDelayS": 60})
    early = Facts(failed_jobs=[failed("j1", ago=timedelta(seconds=10))])
    late = Facts(failed_jobs=[failed("j1", ago=timedelta(seconds=61))])
    assert evaluate([r], early, NOW) == {}
    (alert,) = evaluate([r], late, NOW).values()
    assert alert.kind is AlertKind.JOB_FAILED
    assert alert.details["job"]["jobId"] == "j1"


def test_a_disabled_rule_fires_nothing() -> None:
    r = rule({"kind": "service_down", "checks": 1})
    off = Rule(r.id, r.tenant_id, r.name, r.severity, r.condition, r.cooldown, enabled=False)
    assert evaluate([off], Facts(services={"erp": svc("erp", "down", "down", 9)}), NOW) == {}


# ---- outages point at their cause ------------------------------------------------------


def test_fifty_jobs_failing_in_an_outage_are_one_alert_with_the_jobs() -> None:
    rules = [
        rule({"kind": "service_down", "checks": 3}, "down"),
        rule({"kind": "job_failed", "jobType": "ERP_SYNC"}, "failed"),
    ]
    jobs = [failed(f"j{i:02}", ("enventa-erp", "up" if i < 10 else "down")) for i in range(50)]
    facts = Facts(services={"enventa-erp": svc("enventa-erp", "down", "down", 4)}, failed_jobs=jobs)
    desired = evaluate(rules, facts, NOW)
    (alert,) = desired.values()
    assert alert.kind is AlertKind.SERVICE_DOWN
    assert alert.details["affectedJobCount"] == 50
    first = alert.details["affectedJobs"][0]
    assert first["calledServices"] == [
        {
            "name": "enventa-erp",
            "serviceId": "id-enventa-erp",
            "statusAtFailure": "up",
            "statusNow": "down",
        }
    ]


def test_without_a_service_down_rule_the_job_rule_groups_by_service() -> None:
    r = rule({"kind": "job_failed"})
    jobs = [failed(f"j{i}", ("erp", "down")) for i in range(5)] + [failed("other", ("pim", "up"))]
    facts = Facts(
        services={"erp": svc("erp", "down", "down", 3), "pim": svc("pim")}, failed_jobs=jobs
    )
    desired = evaluate([r], facts, NOW)
    assert sorted(desired) == ["r1:job:other", "r1:outage:erp"]
    assert desired["r1:outage:erp"].details["affectedJobCount"] == 5


def test_jobs_of_an_outage_that_ended_do_not_page_one_by_one() -> None:
    r = rule({"kind": "job_failed"})
    facts = Facts(services={"erp": svc("erp")}, failed_jobs=[failed("j1", ("erp", "down"))])
    assert evaluate([r], facts, NOW) == {}
    attributed = Facts(
        services={"erp": svc("erp")},
        failed_jobs=[failed("j1", ("erp", "up"))],
        attributed_jobs=frozenset({"j1"}),
    )
    assert evaluate([r], attributed, NOW) == {}


# ---- the lifecycle -----------------------------------------------------------------------


def _ctx(now: datetime = NOW, *, silenced: bool = False, in_maintenance: bool = False) -> Context:
    return Context(now, "t1", f"a-{now.timestamp()}", silenced, in_maintenance)


def _desired() -> DesiredAlert:
    r = rule({"kind": "service_down", "checks": 1})
    (alert,) = evaluate([r], Facts(services={"erp": svc("erp", "down", "down", 1)}), NOW).values()
    return alert


def test_fire_dedupe_resolve() -> None:
    want = _desired()
    fired, changes = derive(None, want, _ctx())
    assert fired is not None
    assert fired.status is AlertStatus.FIRING
    assert [(c.kind, c.notify) for c in changes] == [(ChangeKind.FIRED, True)]
    again, changes = derive(fired, want, _ctx(NOW + timedelta(minutes=1)))
    assert again == fired
    assert changes == []
    resolved, changes = derive(fired, None, _ctx(NOW + timedelta(minutes=2)))
    assert resolved is not None
    assert resolved.status is AlertStatus.RESOLVED
    assert [(c.kind, c.notify) for c in changes] == [(ChangeKind.RESOLVED, True)]


def test_refiring_within_the_cooldown_reopens_without_paging() -> None:
    want = _desired()
    fired, _ = derive(None, want, _ctx())
    assert fired is not None
    resolved, _ = derive(fired, None, _ctx(NOW + timedelta(minutes=1)))
    reopened, changes = derive(resolved, want, _ctx(NOW + timedelta(minutes=3)))
    assert reopened is not None
    assert reopened.id == fired.id
    assert reopened.fire_count == 2
    assert [(c.kind, c.notify) for c in changes] == [(ChangeKind.REFIRED, False)]
    fresh, changes = derive(resolved, want, _ctx(NOW + timedelta(minutes=7)))
    assert fresh is not None
    assert fresh.id != fired.id
    assert [(c.kind, c.notify) for c in changes] == [(ChangeKind.FIRED, True)]


def test_a_silenced_alert_fires_and_resolves_without_paging() -> None:
    want = _desired()
    fired, changes = derive(None, want, _ctx(silenced=True))
    assert [(c.kind, c.notify) for c in changes] == [(ChangeKind.FIRED, False)]
    _, changes = derive(fired, None, _ctx(NOW + timedelta(minutes=1)))
    assert [(c.kind, c.notify) for c in changes] == [(ChangeKind.RESOLVED, False)]


def test_maintenance_keeps_a_condition_from_firing() -> None:
    want = _desired()
    window = Window("w", "erp", None, NOW - timedelta(minutes=1), NOW + timedelta(hours=1))
    assert in_maintenance(want, [window], NOW)
    assert not in_maintenance(want, [window], NOW + timedelta(hours=2))
    assert derive(None, want, _ctx(in_maintenance=True)) == (None, [])


def test_acknowledge_once_and_never_a_resolved_alert() -> None:
    fired, _ = derive(None, _desired(), _ctx())
    assert fired is not None
    acked, _changes = acknowledge(fired, "ops", NOW)
    assert acked.status is AlertStatus.ACKNOWLEDGED
    assert acked.acknowledged_by == "ops"
    assert acknowledge(acked, "other", NOW) == (acked, [])
    resolved, _ = derive(acked, None, _ctx())
    assert resolved is not None
    assert resolved.status is AlertStatus.RESOLVED
    with pytest.raises(Conflict):
        acknowledge(resolved, "ops", NOW)


def test_an_outage_gathering_a_job_is_updated_not_paged_again() -> None:
    rules = [rule({"kind": "service_down", "checks": 1}, "d"), rule({"kind": "job_failed"}, "f")]
    services = {"erp": svc("erp", "down", "down", 2)}
    one = evaluate(rules, Facts(services=services), NOW)["d:service:erp"]
    two = evaluate(
        rules, Facts(services=services, failed_jobs=[failed("j", ("erp", "down"))]), NOW
    )["d:service:erp"]
    fired, _ = derive(None, one, _ctx())
    updated, changes = derive(fired, two, _ctx())
    assert [(c.kind, c.notify) for c in changes] == [(ChangeKind.UPDATED, False)]
    assert updated is not None
    assert updated.details["affectedJobCount"] == 1


# ---- missed runs -------------------------------------------------------------------------

BERLIN = "Europe/Berlin"


def test_next_expected_over_spring_forward_runs_once_after_the_gap() -> None:
    before = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
    first = next_expected("30 2 * * *", BERLIN, before)
    assert first.astimezone(UTC) == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # 03:00 CEST
    second = next_expected("30 2 * * *", BERLIN, first)
    assert second.astimezone(UTC) == datetime(2026, 3, 30, 0, 30, tzinfo=UTC)


def test_next_expected_over_fall_back_runs_once_in_the_repeated_hour() -> None:
    first = next_expected("30 2 * * *", BERLIN, datetime(2026, 10, 24, 12, 0, tzinfo=UTC))
    assert first.astimezone(UTC) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 02:30 CEST
    second = next_expected("30 2 * * *", BERLIN, first)
    assert second.astimezone(UTC) == datetime(2026, 10, 26, 1, 30, tzinfo=UTC)  # 02:30 CET


def test_a_run_missing_past_grace_is_missed_and_one_arriving_resolves() -> None:
    s = Schedule("ERP_SYNC", "0 * * * *", "UTC", timedelta(minutes=5), NOW - timedelta(days=1))
    at = datetime(2026, 11, 28, 12, 4, tzinfo=UTC)
    assert missed_slot(s, NOW - timedelta(hours=1), at) is None  # within grace
    at = datetime(2026, 11, 28, 12, 6, tzinfo=UTC)
    assert missed_slot(s, NOW - timedelta(hours=1), at) == NOW
    assert missed_slot(s, NOW + timedelta(minutes=6), at) is None
    assert missed_slot(s, NOW - timedelta(minutes=2), at) is None  # a little early counts


def test_no_run_is_expected_before_the_schedule_existed() -> None:
    s = Schedule("ERP_SYNC", "0 * * * *", "UTC", timedelta(minutes=5), NOW + timedelta(minutes=1))
    assert missed_slot(s, None, NOW + timedelta(minutes=30)) is None


def test_missed_run_alert_from_a_schedule() -> None:
    s = Schedule("ERP_SYNC", "0 * * * *", "UTC", timedelta(minutes=5), NOW - timedelta(days=1))
    desired = evaluate([], Facts(schedules=[s]), NOW + timedelta(minutes=6))
    (alert,) = desired.values()
    assert alert.kind is AlertKind.MISSED_RUN
    assert alert.details["expectedAt"] == NOW.isoformat()


def test_invalid_schedules_are_refused_with_what_is_wrong() -> None:
    with pytest.raises(InvalidSchedule, match="cron"):
        validate("61 * * * *", "UTC")
    with pytest.raises(InvalidSchedule, match="time zone"):
        validate("0 * * * *", "Mars/Olympus")


# ---- notification helpers ---------------------------------------------------------------


def test_backoff_doubles_and_is_capped() -> None:
    base, cap = timedelta(seconds=1), timedelta(seconds=30)
    assert [backoff(n, base, cap).total_seconds() for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


def test_signature_covers_timestamp_and_body() -> None:
    assert sign("k", "1", b"{}") != sign("k", "2", b"{}")
    assert sign("k", "1", b"{}") != sign("k", "1", b"{ }")
    assert sign("k", "1", b"{}").startswith("sha256=")


def test_conditions_round_trip_through_json() -> None:
    adapter = TypeAdapter[Condition](Condition)
    for cond in (
        JobFailed(),
        JobStalled(),
        ServiceDown(),
        LatencyAbove(threshold_ms=5),
        ResourceAbove(metric="memory", threshold_percent=80),
        ErrorRateAbove(threshold_per_minute=1),
        ComponentUnhealthy(),
    ):
        assert adapter.validate_python(cond.model_dump(mode="json", by_alias=True)) == cond


def test_a_job_failed_rule_does_not_page_failures_from_before_it_was_made() -> None:
    r = rule({"kind": "job_failed", "groupingDelayS": 0})
    made = Rule(
        r.id,
        r.tenant_id,
        r.name,
        r.severity,
        r.condition,
        r.cooldown,
        created_at=NOW - timedelta(minutes=3),
    )
    facts = Facts(
        failed_jobs=[
            failed("old", ago=timedelta(minutes=5)),
            failed("new", ago=timedelta(minutes=1)),
        ]
    )
    assert [a.details["job"]["jobId"] for a in evaluate([made], facts, NOW).values()] == ["new"]


def test_without_the_logs_no_failure_pages_alone() -> None:
    r = rule({"kind": "job_failed", "groupingDelayS": 0})
    facts = Facts(failed_jobs=[failed("j1")], logs_available=False)
    assert evaluate([r], facts, NOW) == {}


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.from_regex(CRON_PATTERN, fullmatch=True))
def test_every_cron_the_document_allows_is_accepted_and_has_a_next_run(cron: str) -> None:
    # the API's document gives this pattern for a schedule's cron (the fuzz trusts it)
    validate(cron, "UTC")
    assert next_expected(cron, "UTC", datetime(2026, 1, 1, tzinfo=UTC)) > datetime(
        2026, 1, 1, tzinfo=UTC
    )


@pytest.mark.parametrize("cron", ["0 0 30 2 *", "0 0 31 4 *"])
def test_a_cron_that_names_no_date_is_refused_by_name_not_left_to_fail_later(cron: str) -> None:
    with pytest.raises(InvalidSchedule, match="names no date"):
        validate(cron, "UTC")
