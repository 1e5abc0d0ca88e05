"""Alert rules and their evaluation: which alerts should be open, from facts and ``now``.

A rule is a tenant's condition (``Condition``, one typed model per ``kind``) with a
severity and a cool-down. ``evaluate(rules, facts, now)`` answers the *desired* alerts,
keyed by a dedup key: the same condition on the same subject always has the same key,
so however often it is evaluated it is one alert (``lifecycle.derive`` does the rest).

Outages point at their cause: a failed job whose communication errors name a
connected service that is down does not page on its own. It is attached to that
service's outage alert (a ``service_down`` rule's alert for the service, else one
outage alert of the ``job_failed`` rule per service), with the state of every service
it called at the time of its failure. A failed job that names no down service pages on
its own only after ``groupingDelayS``, so that a service turning down a few checks
after its jobs failed still gathers them. A job once attached to an outage is never
paged on its own later (``Facts.attributed_jobs``).

Missed runs are not rules: a job type's expected schedule (``schedules.py``) raises a
``missed_run`` alert by itself.

No clock, database or network here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from b2c_monitoring.alerting.schedules import Schedule, missed_slot


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RANKS[self]


_RANKS: Final = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


class AlertKind(StrEnum):
    JOB_FAILED = "job_failed"
    JOB_STALLED = "job_stalled"  # stalled (running, silent) or overdue (pending, not started)
    SERVICE_DOWN = "service_down"
    LATENCY_ABOVE = "latency_above"
    RESOURCE_ABOVE = "resource_above"
    ERROR_RATE_ABOVE = "error_rate_above"
    COMPONENT_UNHEALTHY = "component_unhealthy"
    MISSED_RUN = "missed_run"  # from a job schedule, not a rule


def _kind_required(schema: dict[str, Any]) -> None:
    # ``kind`` has a default (a condition built in code names itself), but in a request
    # it is the union's tag and must be there
    required = schema.setdefault("required", [])
    if "kind" not in required:
        required.insert(0, "kind")


class _Condition(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        extra="forbid",
        json_schema_extra=_kind_required,
    )


_JobType = Annotated[str | None, Field(default=None, max_length=64, examples=["ERP_SYNC"])]
_Name = Annotated[str | None, Field(default=None, max_length=128)]


class JobFailed(_Condition):
    """A job failed and no later run of its type has succeeded (within ``lookbackS``)."""

    kind: Literal["job_failed"] = "job_failed"
    job_type: _JobType
    lookback_s: int = Field(default=86400, ge=60, le=30 * 86400)
    grouping_delay_s: int = Field(
        default=60,
        ge=0,
        le=3600,
        description="a failure that names no down service pages after this long, so that an "
        "outage found a few checks later still gathers it",
    )


class JobStalled(_Condition):
    """A running job is stalled or a pending job is overdue (its type's windows)."""

    kind: Literal["job_stalled"] = "job_stalled"
    job_type: _JobType


class ServiceDown(_Condition):
    """A connected service failed ``checks`` consecutive checks."""

    kind: Literal["service_down"] = "service_down"
    service: _Name = None
    checks: int = Field(default=3, ge=1, le=100)


class LatencyAbove(_Condition):
    """The latest check of an answering service took longer than ``thresholdMs``."""

    kind: Literal["latency_above"] = "latency_above"
    service: _Name = None
    threshold_ms: float = Field(gt=0, le=3_600_000)


class ResourceAbove(_Condition):
    """CPU or memory (% of limit) of an owner stayed above the threshold for ``durationS``."""

    kind: Literal["resource_above"] = "resource_above"
    owner: _Name = Field(default=None, description="a connected service or service.name")
    metric: Literal["cpu", "memory"]
    threshold_percent: float = Field(gt=0, le=100)
    duration_s: int = Field(default=300, ge=10, le=86400)


class ErrorRateAbove(_Condition):
    """Communication errors of a service per minute, over ``windowS``, above the threshold."""

    kind: Literal["error_rate_above"] = "error_rate_above"
    service: _Name = None
    threshold_per_minute: float = Field(gt=0, le=1_000_000)
    window_s: int = Field(default=300, ge=60, le=86400)


class ComponentUnhealthy(_Condition):
    """A component reports unhealthy (or degraded, with ``includeDegraded``)."""

    kind: Literal["component_unhealthy"] = "component_unhealthy"
    component: _Name = None
    include_degraded: bool = False


Condition = Annotated[
    JobFailed
    | JobStalled
    | ServiceDown
    | LatencyAbove
    | ResourceAbove
    | ErrorRateAbove
    | ComponentUnhealthy,
    Field(discriminator="kind"),
]


@dataclass(frozen=True)
class Rule:
    id: str
    tenant_id: str
    name: str
    severity: Severity
    condition: Condition
    cooldown: timedelta
    enabled: bool = True
    # a job_failed rule pages for failures after it was made, not the day before it
    created_at: datetime | None = None

    @property
    def kind(self) -> AlertKind:
        return AlertKind(self.condition.kind)


# ---- facts: what the evaluator read, for one tenant -------------------------------------


@dataclass(frozen=True)
class ServiceFact:
    name: str
    service_id: str
    status: str  # up degraded down unknown (the damped status)
    last_observed: str | None  # what the latest check observed
    streak: int  # how many checks in a row observed last_observed
    last_latency_s: float | None
    last_checked: datetime | None

    @property
    def down(self) -> bool:
        return self.status == "down" or self.last_observed == "down"


@dataclass(frozen=True)
class CalledService:
    """A service a job's communication errors name, and its state when the job failed."""

    name: str
    status_at_failure: str  # unknown when it had no status then
    service_id: str | None = None


@dataclass(frozen=True)
class FailedJob:
    job_id: str
    job_type: str | None
    completed_at: datetime
    error_message: str | None
    called: tuple[CalledService, ...] = ()


@dataclass(frozen=True)
class FlaggedJob:
    job_id: str
    job_type: str | None
    status: str
    flag: str  # stalled or overdue
    last_report_at: datetime


@dataclass(frozen=True)
class ComponentFact:
    name: str
    status: str
    description: str | None


@dataclass(frozen=True)
class ResourceFact:
    """The lowest value of a metric over the last ``window`` and whether samples cover it."""

    owner: str
    metric: str  # cpu | memory
    window_s: int
    min_percent: float | None
    covered: bool  # the owner reported since before the window began


@dataclass(frozen=True)
class Facts:
    services: Mapping[str, ServiceFact] = field(default_factory=dict)
    failed_jobs: Sequence[FailedJob] = ()
    flagged_jobs: Sequence[FlaggedJob] = ()
    components: Sequence[ComponentFact] = ()
    resources: Mapping[tuple[str, str, int], ResourceFact] = field(default_factory=dict)
    # communication errors per (service, window_s)
    error_counts: Mapping[tuple[str, int], int] = field(default_factory=dict)
    schedules: Sequence[Schedule] = ()
    # the latest run (earliest report) of each job type
    last_runs: Mapping[str, datetime] = field(default_factory=dict)
    attributed_jobs: frozenset[str] = frozenset()
    # False when the logs (communication errors) could not be read this round: no
    # failure is known to name a service, so none pages alone until they can be
    logs_available: bool = True


@dataclass(frozen=True)
class DesiredAlert:
    """An alert that should be open now."""

    dedup_key: str
    rule_id: str | None
    kind: AlertKind
    severity: Severity
    title: str
    cooldown: timedelta
    service_name: str | None = None
    service_id: str | None = None
    job_type: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    # maintenance of any of these services silences the alert too
    related_services: tuple[str, ...] = ()


def _iso(at: datetime) -> str:
    return at.isoformat()


def _matches(wanted: str | None, actual: str | None) -> bool:
    return wanted is None or wanted == actual


def _rule_alert(
    rule: Rule,
    key: str,
    *,
    title: str,
    kind: AlertKind | None = None,
    service_name: str | None = None,
    service_id: str | None = None,
    job_type: str | None = None,
    details: Mapping[str, Any] | None = None,
    related_services: tuple[str, ...] = (),
) -> DesiredAlert:
    """The alert ``rule`` raises under the dedup ``key``, with the rule's severity and
    cooldown (and kind, unless the rule raises another)."""
    return DesiredAlert(
        dedup_key=key,
        rule_id=rule.id,
        kind=kind or rule.kind,
        severity=rule.severity,
        title=title,
        cooldown=rule.cooldown,
        service_name=service_name,
        service_id=service_id,
        job_type=job_type,
        details={} if details is None else details,
        related_services=related_services,
    )


def _job_entry(job: FailedJob, services: Mapping[str, ServiceFact]) -> dict[str, Any]:
    return {
        "jobId": job.job_id,
        "jobType": job.job_type,
        "failedAt": _iso(job.completed_at),
        "errorMessage": job.error_message,
        "calledServices": [
            {
                "name": c.name,
                "serviceId": c.service_id,
                "statusAtFailure": c.status_at_failure,
                "statusNow": services[c.name].status if c.name in services else "unknown",
            }
            for c in job.called
        ],
    }


def _service_alerts(rules: Iterable[Rule], facts: Facts) -> dict[str, DesiredAlert]:
    out: dict[str, DesiredAlert] = {}
    for rule in rules:
        cond = rule.condition
        for svc in facts.services.values():
            if isinstance(cond, ServiceDown):
                if not _matches(cond.service, svc.name):
                    continue
                if not (svc.last_observed == "down" and svc.streak >= cond.checks):
                    continue
                title = f"{svc.name} is down"
                details: dict[str, Any] = {"checks": cond.checks, "affectedJobs": []}
            elif isinstance(cond, LatencyAbove):
                if not _matches(cond.service, svc.name) or svc.down or svc.last_latency_s is None:
                    continue
                latency_ms = svc.last_latency_s * 1000
                if latency_ms <= cond.threshold_ms:
                    continue
                title = f"{svc.name} answers slower than {cond.threshold_ms:g} ms"
                details = {"latencyMs": round(latency_ms, 3), "thresholdMs": cond.threshold_ms}
            else:
                continue
            key = f"{rule.id}:service:{svc.name}"
            out[key] = _rule_alert(
                rule,
                key,
                title=title,
                service_name=svc.name,
                service_id=svc.service_id,
                details=details,
                related_services=(svc.name,),
            )
    return out


def _with_jobs(alert: DesiredAlert, entries: list[dict[str, Any]]) -> DesiredAlert:
    jobs = sorted(
        [*alert.details.get("affectedJobs", []), *entries],
        key=lambda j: (j["failedAt"], j["jobId"]),
    )
    # a new title is an ``updated`` change: the hub hears of each job the outage gathers
    title = f"{alert.service_name} is down; {len(jobs)} failed job(s) called it"
    details = {**alert.details, "affectedJobs": jobs, "affectedJobCount": len(jobs)}
    return replace(alert, title=title, details=details)


def _job_failed_alerts(
    rules: Sequence[Rule], facts: Facts, now: datetime, out: dict[str, DesiredAlert]
) -> None:
    outage_keys: dict[str, str] = {}  # service -> the key of its service_down alert
    for key, alert in sorted(out.items()):
        if alert.kind is AlertKind.SERVICE_DOWN and alert.service_name is not None:
            outage_keys.setdefault(alert.service_name, key)
    attached: dict[str, dict[str, dict[str, Any]]] = {}  # outage key -> job id -> entry
    for rule in rules:
        cond = rule.condition
        if not isinstance(cond, JobFailed):
            continue
        for job in facts.failed_jobs:
            if not _matches(cond.job_type, job.job_type):
                continue
            if now - job.completed_at > timedelta(seconds=cond.lookback_s):
                continue
            causes = sorted(
                c.name
                for c in job.called
                if c.status_at_failure == "down"
                or (c.name in facts.services and facts.services[c.name].down)
            )
            entry = _job_entry(job, facts.services)
            if causes:
                ongoing = [s for s in causes if s in facts.services and facts.services[s].down]
                if not ongoing:
                    continue  # its outage is over: the outage's alert told the story
                svc = ongoing[0]
                key = outage_keys.get(svc) or f"{rule.id}:outage:{svc}"
                attached.setdefault(key, {})[job.job_id] = entry
                if key not in out:
                    fact = facts.services[svc]
                    out[key] = _rule_alert(
                        rule,
                        key,
                        title=f"jobs fail: {svc} is down",
                        kind=AlertKind.JOB_FAILED,
                        service_name=svc,
                        service_id=fact.service_id,
                        details={"outageOf": svc, "affectedJobs": []},
                        related_services=(svc,),
                    )
                continue
            if job.job_id in facts.attributed_jobs or not facts.logs_available:
                continue
            if rule.created_at is not None and job.completed_at < rule.created_at:
                continue
            if now - job.completed_at < timedelta(seconds=cond.grouping_delay_s):
                continue
            key = f"{rule.id}:job:{job.job_id}"
            out[key] = _rule_alert(
                rule,
                key,
                title=f"job {job.job_id} ({job.job_type}) failed: {job.error_message or 'no message'}",
                kind=AlertKind.JOB_FAILED,
                job_type=job.job_type,
                details={"job": entry},
                related_services=tuple(c.name for c in job.called),
            )
    for key, entries in attached.items():
        out[key] = _with_jobs(out[key], [entries[j] for j in sorted(entries)])


def evaluate(rules: Sequence[Rule], facts: Facts, now: datetime) -> dict[str, DesiredAlert]:
    """The alerts that should be open at ``now`` for one tenant's enabled ``rules``."""
    active = [r for r in rules if r.enabled]
    out = _service_alerts(active, facts)
    _job_failed_alerts(active, facts, now, out)
    for rule in active:
        cond = rule.condition
        if isinstance(cond, JobStalled):
            for flagged in facts.flagged_jobs:
                if not _matches(cond.job_type, flagged.job_type):
                    continue
                key = f"{rule.id}:job:{flagged.job_id}"
                out[key] = _rule_alert(
                    rule,
                    key,
                    title=f"job {flagged.job_id} ({flagged.job_type}) is {flagged.flag}",
                    job_type=flagged.job_type,
                    details={
                        "jobId": flagged.job_id,
                        "flag": flagged.flag,
                        "status": flagged.status,
                        "lastReportAt": _iso(flagged.last_report_at),
                    },
                )
        elif isinstance(cond, ResourceAbove):
            for (owner, metric, window_s), res in facts.resources.items():
                if metric != cond.metric or window_s != cond.duration_s:
                    continue
                if not _matches(cond.owner, owner) or not res.covered or res.min_percent is None:
                    continue
                if res.min_percent <= cond.threshold_percent:
                    continue
                key = f"{rule.id}:resource:{owner}:{metric}"
                svc = facts.services.get(owner)
                out[key] = _rule_alert(
                    rule,
                    key,
                    title=f"{owner}: {metric} above {cond.threshold_percent:g} % for "
                    f"{cond.duration_s} s",
                    service_name=owner,
                    service_id=svc.service_id if svc else None,
                    details={
                        "metric": metric,
                        "minPercent": round(res.min_percent, 3),
                        "thresholdPercent": cond.threshold_percent,
                        "durationS": cond.duration_s,
                    },
                    related_services=(owner,),
                )
        elif isinstance(cond, ErrorRateAbove):
            for (service, window_s), count in facts.error_counts.items():
                if window_s != cond.window_s or not _matches(cond.service, service):
                    continue
                per_minute = count / (window_s / 60)
                if per_minute <= cond.threshold_per_minute:
                    continue
                key = f"{rule.id}:service:{service}"
                svc = facts.services.get(service)
                out[key] = _rule_alert(
                    rule,
                    key,
                    title=f"{service}: more than {cond.threshold_per_minute:g} communication "
                    "errors a minute",
                    service_name=service,
                    service_id=svc.service_id if svc else None,
                    details={
                        "errors": count,
                        "perMinute": round(per_minute, 3),
                        "thresholdPerMinute": cond.threshold_per_minute,
                        "windowS": window_s,
                    },
                    related_services=(service,),
                )
        elif isinstance(cond, ComponentUnhealthy):
            bad = {"unhealthy", "degraded"} if cond.include_degraded else {"unhealthy"}
            for comp in facts.components:
                if comp.status not in bad or not _matches(cond.component, comp.name):
                    continue
                key = f"{rule.id}:component:{comp.name}"
                out[key] = _rule_alert(
                    rule,
                    key,
                    title=f"component {comp.name} is {comp.status}",
                    details={
                        "component": comp.name,
                        "status": comp.status,
                        "description": comp.description,
                    },
                )
    for schedule in facts.schedules:
        slot = missed_slot(schedule, facts.last_runs.get(schedule.job_type), now)
        if slot is None:
            continue
        key = f"missed_run:{schedule.job_type}"
        out[key] = DesiredAlert(
            dedup_key=key,
            rule_id=None,
            kind=AlertKind.MISSED_RUN,
            severity=Severity.WARNING,
            title=f"{schedule.job_type} did not start: expected at {_iso(slot)} "
            f"(+{int(schedule.grace.total_seconds())} s grace)",
            cooldown=timedelta(0),
            job_type=schedule.job_type,
            details={
                "expectedAt": _iso(slot),
                "cron": schedule.cron,
                "timezone": schedule.timezone,
                "graceS": int(schedule.grace.total_seconds()),
            },
        )
    return out
