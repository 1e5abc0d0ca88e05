"""Demo probes: three connector services running jobs for a few tenants.

ERP_SYNC (``erp-connector``), PIM_IMPORT (``catalog``) and CRM_EXPORT
(``crm-connector``) jobs with progress steps, metadata, execution log lines and a
share of realistic failures; some are queued (``pending``) first, a failed ERP
sync is retried, and now and then an operator cancels one. Alongside, the
connectors watch their connected services (ERP, PIM and CRM stand-ins, ``crm-db``)
and report the health of ``catalog`` and ``search`` and their resources, while a
script takes the ERP down for a while (``demo_services``). Everything goes through
the probes library, exactly as an instrumented service would send it.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Final

from b2c_monitoring.contract import JobState
from b2c_monitoring.demo_services import DemoServices, JobLoad
from b2c_monitoring.probes import JobRun, Probes, configure

DEFAULT_JOBS: Final = 20
# long enough for the ERP outage to be seen going down and coming back
DEFAULT_DURATION_S: Final = 30.0
# the monitor sees a check within about this long
_METRIC_EXPORT_INTERVAL_S: Final = 1.0
# time the last jobs need to finish after the last one was launched
_TAIL_S: Final = 4.5
_FAILURE_SHARE: Final = 0.2
_PENDING_SHARE: Final = 0.4
_CANCEL_SHARE: Final = 0.06


class ExternalSystemError(Exception):
    """A connected system failed to answer (transient: the job is retried)."""


class DataRejected(Exception):
    """The data itself was refused (permanent)."""


_TRANSIENT: Final = (ExternalSystemError, TimeoutError)


@dataclass(frozen=True)
class _Scenario:
    service_name: str
    source_system: str
    unit: str
    steps: tuple[str, ...]
    warnings: tuple[str, ...]
    failures: tuple[tuple[type[Exception], str], ...]


_SCENARIOS: Final = {
    "ERP_SYNC": _Scenario(
        service_name="erp-connector",
        source_system="enventa ERP",
        unit="orders",
        steps=("fetching orders", "mapping customers", "writing orders", "updating stock levels"),
        warnings=(
            "{n} orders skipped: customer number missing",
            "enventa ERP answered slowly ({n} ms), continuing",
        ),
        failures=(
            (ExternalSystemError, "enventa ERP answered 503 Service Unavailable"),
            (TimeoutError, "enventa ERP: connection to erp.internal:8443 timed out after 30 s"),
        ),
    ),
    "PIM_IMPORT": _Scenario(
        service_name="catalog",
        source_system="Akeneo PIM",
        unit="products",
        steps=(
            "downloading products.csv",
            "validating products",
            "importing products",
            "reindexing search",
        ),
        warnings=(
            "{n} products without image, imported anyway",
            "{n} products with unknown category, assigned to 'Uncategorised'",
        ),
        failures=(
            (DataRejected, "PIM import: 12 products rejected: missing GTIN"),
            (DataRejected, "PIM import: products.csv line 4711: invalid price '12,9O'"),
        ),
    ),
    "CRM_EXPORT": _Scenario(
        service_name="crm-connector",
        source_system="Salesforce",
        unit="contacts",
        steps=("collecting changed customers", "building contacts", "uploading contacts"),
        warnings=(
            "{n} contacts without e-mail address, exported without",
            "Salesforce API quota at {n} %",
        ),
        failures=(
            (ExternalSystemError, "CRM export: Salesforce API rate limit exceeded (HTTP 429)"),
            (DataRejected, "CRM export: 3 contacts rejected: duplicate e-mail address"),
        ),
    ),
}


@dataclass(frozen=True)
class DemoJob:
    """One job run of the demo and how it ended."""

    job_id: str
    job_type: str
    tenant_id: str
    service_name: str
    state: JobState
    error: str | None = None
    retry_of: str | None = None


@dataclass(frozen=True)
class _Plan:
    job_type: str
    tenant_id: str
    start_at: float
    queued_for: float | None  # seconds between the pending report and the start
    step_seconds: tuple[float, ...]
    records_total: int
    fail_at_step: int | None
    failure: tuple[type[Exception], str] | None
    cancel_at_step: int | None
    warn_at_step: int | None
    attempt: int = 1
    retry_of: str | None = None


def _plan(
    rng: random.Random, job_type: str, tenant_id: str, start_at: float, *, can_fail: bool = True
) -> _Plan:
    scenario = _SCENARIOS[job_type]
    steps = len(scenario.steps)
    roll = rng.random()
    fails = can_fail and roll < _FAILURE_SHARE
    cancels = can_fail and _FAILURE_SHARE <= roll < _FAILURE_SHARE + _CANCEL_SHARE
    return _Plan(
        job_type=job_type,
        tenant_id=tenant_id,
        start_at=start_at,
        queued_for=rng.uniform(0.4, 1.5) if rng.random() < _PENDING_SHARE else None,
        step_seconds=tuple(rng.uniform(0.25, 0.75) for _ in range(steps)),
        records_total=rng.randrange(200, 5000),
        fail_at_step=rng.randrange(1, steps) if fails else None,
        failure=rng.choice(scenario.failures) if fails else None,
        cancel_at_step=rng.randrange(1, steps) if cancels else None,
        warn_at_step=rng.randrange(steps) if rng.random() < 0.5 else None,
    )


@dataclass(frozen=True)
class _World:
    """What jobs share with the demo's services."""

    load: JobLoad
    unavailable: Callable[[str], str | None]  # job type -> why its system is unreachable


async def _work(job: JobRun, plan: _Plan, rng: random.Random, world: _World) -> None:
    scenario = _SCENARIOS[plan.job_type]
    log = job.logger
    log.info("%s for tenant %s started (attempt %d)", plan.job_type, plan.tenant_id, plan.attempt)
    steps = len(scenario.steps)
    for index, (step, seconds) in enumerate(zip(scenario.steps, plan.step_seconds, strict=True)):
        if job.cancelled():
            log.warning("cancelled before %s", step)
            return
        log.info("%s", step)
        outage = world.unavailable(plan.job_type)
        if outage is not None:
            log.error("%s; giving up", outage)
            raise ExternalSystemError(outage)
        await asyncio.sleep(seconds)
        if index == plan.fail_at_step and plan.failure is not None:
            kind, message = plan.failure
            log.error("%s; giving up", message)
            raise kind(message)
        if index == plan.warn_at_step:
            log.warning(rng.choice(scenario.warnings).format(n=rng.randrange(2, 90)))
        if index == plan.cancel_at_step:
            job.cancel("stopped by operator")
        done = plan.records_total * (index + 1) // steps
        job.progress(100 * (index + 1) / steps, records_processed=done)
    log.info("%d %s processed", plan.records_total, scenario.unit)


async def _run_one(
    probes: Probes,
    plan: _Plan,
    rng: random.Random,
    started: float,
    say: Callable[[str], None],
    world: _World,
) -> DemoJob:
    scenario = _SCENARIOS[plan.job_type]
    metadata = {
        "source_system": scenario.source_system,
        "records_total": plan.records_total,
        "triggered_by": "schedule" if plan.retry_of is None else "retry",
    }
    await asyncio.sleep(max(0.0, plan.start_at - (time.monotonic() - started)))
    if plan.queued_for is not None:
        pending = probes.job_pending(
            plan.job_type,
            tenant_id=plan.tenant_id,
            metadata=metadata,
            attempt=plan.attempt,
            retry_of=plan.retry_of,
        )
        say(f"{plan.tenant_id:<8} {plan.job_type:<10} {pending.job_id[:8]} pending")
        world.load.queued(plan.job_type, 1)
        await asyncio.sleep(plan.queued_for)
        world.load.queued(plan.job_type, -1)
        run = probes.start_pending(pending)
    else:
        run = probes.job_run(
            plan.job_type,
            tenant_id=plan.tenant_id,
            metadata=metadata,
            attempt=plan.attempt,
            retry_of=plan.retry_of,
        )
    say(f"{plan.tenant_id:<8} {plan.job_type:<10} {run.job_id[:8]} running")
    error: str | None = None
    world.load.started(plan.job_type, 1)
    try:
        async with run as job:
            await _work(job, plan, rng, world)
    except (ExternalSystemError, DataRejected, TimeoutError) as exc:
        error = str(exc)
    finally:
        world.load.started(plan.job_type, -1)
    line = f"{plan.tenant_id:<8} {plan.job_type:<10} {job.job_id[:8]} {job.state.value}"
    say(f"{line}: {error}" if error else line)
    return DemoJob(
        job_id=job.job_id,
        job_type=plan.job_type,
        tenant_id=plan.tenant_id,
        service_name=scenario.service_name,
        state=job.state,
        error=error,
        retry_of=plan.retry_of,
    )


async def _run_with_retry(
    probes: Probes,
    plan: _Plan,
    rng: random.Random,
    started: float,
    say: Callable[[str], None],
    world: _World,
) -> list[DemoJob]:
    first = await _run_one(probes, plan, rng, started, say, world)
    planned = plan.failure is not None and issubclass(plan.failure[0], _TRANSIENT)
    outage = first.error is not None and plan.failure is None  # its system was down
    if first.state is not JobState.FAILED or not (planned or outage):
        return [first]
    # a transient failure: the scheduler retries as a new job run that points back
    # the scheduler backs off longer when the system itself was unreachable
    backoff = 4.0 if outage else 0.5
    retry = replace(
        _plan(
            rng, plan.job_type, plan.tenant_id, time.monotonic() - started + backoff, can_fail=False
        ),
        attempt=plan.attempt + 1,
        retry_of=first.job_id,
        queued_for=None,
    )
    return [first, await _run_one(probes, retry, rng, started, say, world)]


async def _demo(
    probes: dict[str, Probes],
    tenants: Sequence[str],
    duration_s: float,
    jobs: int,
    rng: random.Random,
    say: Callable[[str], None],
    world: _World,
) -> list[DemoJob]:
    window = max(0.0, duration_s - _TAIL_S)
    job_types = list(_SCENARIOS)
    plans = [
        _plan(
            rng, job_types[i % len(job_types)], rng.choice(tenants), window * i / max(1, jobs - 1)
        )
        for i in range(jobs)
    ]
    started = time.monotonic()
    runs = await asyncio.gather(
        *(
            _run_with_retry(
                probes[_SCENARIOS[plan.job_type].service_name], plan, rng, started, say, world
            )
            for plan in plans
        )
    )
    return [job for run in runs for job in run]


def run_demo(
    endpoint: str,
    *,
    tenants: Sequence[str] = ("acme", "globex"),
    duration_s: float | None = None,
    seed: int | None = None,
    progress: Callable[[str], None],
    crm_db: str | None = None,
    ca_file: str | None = None,
    token: str | None = None,
) -> list[DemoJob]:
    """Run demo jobs and services against the collector at ``endpoint``; the job runs
    and their final states.

    By default about 20 jobs over about 30 s; with ``duration_s``, about that long
    with proportionally as many jobs. ``seed`` repeats the same plan (job ids are
    always new: a stored job's terminal state is never left, so reusing ids would
    show nothing). ``crm_db`` is the conninfo of the Postgres watched as ``crm-db``;
    ``ca_file`` verifies an https ``endpoint``; ``token`` is the probe token the probes
    report with (else B2C_PROBE_TOKEN or OTEL_EXPORTER_OTLP_HEADERS).
    Must not be called from a running event loop.
    """
    if not tenants:
        raise ValueError("at least one tenant is needed")
    duration = DEFAULT_DURATION_S if duration_s is None else max(1.0, duration_s)
    jobs = (
        DEFAULT_JOBS
        if duration_s is None
        else max(3, round(duration * DEFAULT_JOBS / DEFAULT_DURATION_S))
    )
    rng = random.Random(seed)
    probes = {
        name: configure(
            endpoint,
            service_name=name,
            service_instance_id=f"{name}-demo",
            ca_file=ca_file,
            token=token,
            metric_export_interval=_METRIC_EXPORT_INTERVAL_S,
        )
        for name in [*(scenario.service_name for scenario in _SCENARIOS.values()), "search"]
    }
    load = JobLoad()
    services: DemoServices | None = None
    try:
        services = DemoServices(probes, duration_s=duration, crm_db=crm_db, load=load, say=progress)
        world = _World(load=load, unavailable=services.unavailable)
        return asyncio.run(_demo(probes, tenants, duration, jobs, rng, progress, world))
    finally:
        if services is not None:
            services.stop_script()
            for line in services.summary():
                progress(line)
        _shut_down(probes, progress)
        if services is not None:
            services.close()


def _shut_down(probes: dict[str, Probes], say: Callable[[str], None]) -> None:
    # side by side: with the collector down each one waits out its timeout
    stoppers = [threading.Thread(target=p.shutdown, daemon=True) for p in probes.values()]
    for stopper in stoppers:
        stopper.start()
    for stopper in stoppers:
        stopper.join()
    for service, p in probes.items():
        stats = p.stats
        if stats.failed:
            say(f"{service}: {stats.failed} reports or log lines not exported (collector down?)")
        if stats.dropped:
            say(f"{service}: {stats.dropped} reports or log lines dropped (queue full)")
