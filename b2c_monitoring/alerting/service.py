"""The I/O edge of alerting: the evaluator and the notifier, each a thread of the processor.

With several processor replicas, one leads alerting (``storage/leadership.py``: a
session advisory lock held for the replica's life) and runs both loops; the others
only poll for the lead, and take it when the leader dies.

``Evaluator.run_once(now)``: under a session advisory lock (one replica evaluates at a
time; the others skip the round), for each tenant with rules, schedules or open
alerts: read the facts, ``evaluate``, ``reconcile``. A tenant whose facts cannot be
read is skipped for the round and the others go on. Maintenance windows that began or
ended are announced on the hub once.

``Notifier.run_once(now)``: claim due notifications, send each after the claim's
commit, record the outcome (retried with exponential back-off until
``max_age``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import psycopg_pool

from b2c_monitoring.alerting.rules import AlertKind, Rule, evaluate
from b2c_monitoring.alerting.schedules import Schedule
from b2c_monitoring.alerting.senders import NetworkSender, Sender
from b2c_monitoring.errors import B2CError, DeliveryFailed
from b2c_monitoring.periodic import Periodic
from b2c_monitoring.processors.job_flags import JobWindows
from b2c_monitoring.settings import Settings
from b2c_monitoring.storage.alert_config import AlertConfigStore
from b2c_monitoring.storage.alert_facts import CommunicationErrors, read_facts
from b2c_monitoring.storage.alert_hub import announce_windows
from b2c_monitoring.storage.alerts import AlertStore
from b2c_monitoring.storage.db import make_pool, translate_errors
from b2c_monitoring.storage.job_windows import JobWindowStore
from b2c_monitoring.storage.leadership import Leadership
from b2c_monitoring.storage.logs import make_client
from b2c_monitoring.storage.notifications import NotificationStore
from b2c_monitoring.storage.partitions import autocommit_connection
from b2c_monitoring.telemetry_metrics import ALERT_ROUNDS, ALERTING_LEADER, NOTIFICATIONS

log = logging.getLogger(__name__)

_EVALUATOR_LOCK: Final = 0x62326361  # "b2ca": one evaluating round at a time
_LEADER_LOCK: Final = 0x6232636C  # "b2cl": the replica that runs alerting
# alerts whose condition is read from the logs: held while the logs cannot be read
_NEED_LOGS: Final = frozenset({AlertKind.JOB_FAILED, AlertKind.ERROR_RATE_ABOVE})


@dataclass
class EvaluationReport:
    ran: bool
    tenants: int = 0
    changes: int = 0
    failed_tenants: int = 0


class Evaluator:
    def __init__(
        self,
        pool: psycopg_pool.ConnectionPool,
        errors: CommunicationErrors | None,
        default_windows: JobWindows,
    ) -> None:
        self._pool = pool
        self._errors = errors
        self._default_windows = default_windows
        self._config = AlertConfigStore(pool)
        self._alerts = AlertStore(pool)
        self._job_windows = JobWindowStore(pool)

    def run_once(self, now: datetime) -> EvaluationReport:
        with translate_errors(), autocommit_connection(self._pool) as lock_conn:
            row = lock_conn.execute(
                "SELECT pg_try_advisory_lock(%s)", (_EVALUATOR_LOCK,)
            ).fetchone()
            if not (row and row[0]):
                return EvaluationReport(ran=False)
            try:
                return self._round(now)
            finally:
                lock_conn.execute("SELECT pg_advisory_unlock(%s)", (_EVALUATOR_LOCK,))

    def _round(self, now: datetime) -> EvaluationReport:
        report = EvaluationReport(ran=True)
        announce_windows(self._pool, now)
        policy = self._job_windows.policy(self._default_windows)
        rules_by_tenant: dict[str, list[Rule]] = {}
        for rule in self._config.rules(None):
            rules_by_tenant.setdefault(rule.tenant_id, []).append(rule)
        schedules_by_tenant: dict[str, list[Schedule]] = {}
        for s in self._config.schedules(None):
            schedules_by_tenant.setdefault(s.tenant_id, []).append(s.schedule)
        for tenant_id in self._config.tenants_to_evaluate():
            rules = rules_by_tenant.get(tenant_id, [])
            schedules = schedules_by_tenant.get(tenant_id, [])
            try:
                with translate_errors(), self._pool.connection() as conn:
                    facts = read_facts(conn, self._errors, tenant_id, rules, schedules, policy, now)
                desired = evaluate(rules, facts, now)
                hold = frozenset() if facts.logs_available else _NEED_LOGS
                done = self._alerts.reconcile(tenant_id, desired, now, hold)
            except B2CError as exc:
                # its open alerts stay as they are until its facts can be read again
                log.warning("alerts of tenant %s not evaluated this round: %s", tenant_id, exc)
                report.failed_tenants += 1
                continue
            report.tenants += 1
            report.changes += sum(len(c) for _, c in done)
        return report


@dataclass(frozen=True)
class RetryPolicy:
    base: timedelta = timedelta(seconds=5)
    cap: timedelta = timedelta(minutes=10)
    max_age: timedelta = timedelta(hours=24)
    lease: timedelta = timedelta(minutes=2)


class Notifier:
    def __init__(
        self,
        pool: psycopg_pool.ConnectionPool,
        policy: RetryPolicy = RetryPolicy(),
        sender: Sender | None = None,
    ) -> None:
        self._store = NotificationStore(pool)
        self._policy = policy
        self._sender = sender or NetworkSender()

    def run_once(self, now: datetime) -> dict[str, int]:
        """Send what is due; how many ended in each state."""
        outcome: dict[str, int] = {}
        for claimed in self._store.claim(now, self._policy.lease):
            error: str | None = None
            permanent = False
            try:
                self._sender.send(claimed.channel, claimed.payload, int(now.timestamp()))
            except DeliveryFailed as exc:
                error, permanent = exc.message, not exc.retryable
            NOTIFICATIONS.labels(
                claimed.channel.kind.value, "sent" if error is None else "failed"
            ).inc()
            state = self._store.finish(
                claimed,
                error,
                now,
                base=self._policy.base,
                cap=self._policy.cap,
                max_age=self._policy.max_age,
                permanent=permanent,
            )
            if error is not None:
                log.warning(
                    "notification %s via %s: %s (now %s)",
                    claimed.id,
                    claimed.channel.name,
                    error,
                    state,
                )
            outcome[state] = outcome.get(state, 0) + 1
        return outcome


class AlertingThreads:
    """The evaluator and the notifier loops, started and stopped together; they work
    only while this replica leads (``leadership``; None: always, one process alone).

    The evaluator's loop also keeps or seeks the lead, every ``poll``: a standby that
    takes it evaluates at once, so the lead moves within about ``poll`` of the leader's
    death (docs/capacity.md, "Alerting with several replicas"). The notifier follows the
    lead as of the evaluator loop's last poll."""

    def __init__(
        self,
        evaluator: Evaluator,
        notifier: Notifier,
        interval: timedelta,
        *,
        leadership: Leadership | None = None,
        poll: timedelta = timedelta(seconds=2),
        on_stop: Sequence[Callable[[], None]] = (),
    ) -> None:
        self._evaluator = evaluator
        self._notifier = notifier
        self._leadership = leadership
        self._interval_s = interval.total_seconds()
        self._poll_s = min(interval, poll).total_seconds()
        self._last_round: float | None = None
        self._on_stop = on_stop
        self._loops = [
            Periodic("b2c-alert-evaluator", self._poll_s, self._evaluate, log=log),
            Periodic(
                "b2c-alert-notifier",
                min(interval, timedelta(seconds=2)).total_seconds(),
                self._notify,
                log=log,
            ),
        ]

    def _evaluate(self) -> None:
        leading = self._leadership is None or self._leadership.hold()
        ALERTING_LEADER.set(1 if leading else 0)
        if not leading:
            self._last_round = None
            return
        started = time.monotonic()
        # the loop ticks every poll: a round is due once an interval has passed, give
        # or take half a tick (so the rounds keep the interval, not the next tick after)
        if (
            self._last_round is not None
            and started - self._last_round + self._poll_s / 2 < self._interval_s
        ):
            return
        self._last_round = started
        if self._evaluator.run_once(datetime.now(UTC)).ran:
            ALERT_ROUNDS.labels("evaluator").inc()

    def _notify(self) -> None:
        if self._leadership is not None and not self._leadership.leading:
            return
        self._notifier.run_once(datetime.now(UTC))
        ALERT_ROUNDS.labels("notifier").inc()

    def start(self) -> None:
        for loop in self._loops:
            loop.start()

    def stop(self) -> None:
        for loop in self._loops:
            loop.stop()
        if self._leadership is not None:
            self._leadership.release()
        ALERTING_LEADER.set(0)
        for close in self._on_stop:
            close()


def start_alerting(settings: Settings) -> AlertingThreads:
    """The processor's alerting threads, started, on a pool of their own; communication
    errors are read from the logs in Elasticsearch."""
    pool = make_pool(settings.database_url, max_size=3, name="b2c-alerting")
    pool.open(wait=False)
    es = make_client(settings.elasticsearch_url)
    errors = CommunicationErrors(es, f"{settings.logs_index}*", settings.default_tenant)
    evaluator = Evaluator(
        pool,
        errors,
        JobWindows(
            heartbeat=timedelta(seconds=settings.job_heartbeat_window_s),
            start=timedelta(seconds=settings.job_start_window_s),
        ),
    )
    notifier = Notifier(
        pool,
        RetryPolicy(
            base=timedelta(seconds=settings.notify_backoff_s),
            cap=timedelta(seconds=settings.notify_backoff_max_s),
            max_age=timedelta(seconds=settings.notify_max_age_s),
        ),
    )
    threads = AlertingThreads(
        evaluator,
        notifier,
        timedelta(seconds=settings.alert_interval_s),
        leadership=Leadership(settings.database_url, _LEADER_LOCK, "alerting"),
        poll=timedelta(seconds=settings.alert_leader_poll_s),
        on_stop=[pool.close, es.close],
    )
    threads.start()
    return threads
