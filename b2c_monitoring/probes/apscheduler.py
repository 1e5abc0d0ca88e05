"""APScheduler 3.x reports its job runs to b2c-monitoring from its event listeners::

    from apscheduler.schedulers.background import BackgroundScheduler
    from b2c_monitoring.probes import ProbeSettings
    from b2c_monitoring.probes.apscheduler import instrument_apscheduler

    scheduler = BackgroundScheduler()
    scheduler.add_job(sync_orders, "cron", hour=2, id="erp-sync")
    instrument_apscheduler(
        scheduler,
        ProbeSettings(service_name="erp-scheduler", tenant_id="acme", token=PROBE_TOKEN),
        control_url="http://monitor:8000",
        job_types={"erp-sync": "ERP_SYNC"},
    )
    scheduler.start()

One run of an APScheduler job is one b2c job, ``<APScheduler job id>@<scheduled run
time>`` (the same id in the submitted and the executed event):

- ``EVENT_JOB_SUBMITTED`` -> ``running`` (APScheduler 3 has no "started" event: a run
  starts when its executor takes it), except for a run already later than its
  ``misfire_grace_time``, which the executor skips (it never started);
  ``EVENT_JOB_EXECUTED`` -> ``succeeded``;
  ``EVENT_JOB_ERROR`` -> ``failed`` with the exception's message;
  ``EVENT_JOB_MISSED`` (past ``misfire_grace_time``) and ``EVENT_JOB_MAX_INSTANCES``
  (skipped: the previous run still runs) -> ``cancelled`` with
  ``metadata.apscheduler.skipped`` = ``missed`` / ``max_instances``.
- Job type: ``job_types`` (a mapping of APScheduler job ids, or a function of the job),
  else the job's id.
- Retry is "run now": the job's function runs once more, with its arguments, as the
  command's new job id (``retry_of``, ``attempt``).
- Cancel: APScheduler cannot stop a running job. A cancel is refused with that reason,
  and, with ``cancel_pauses=True``, the job's next runs are paused
  (``scheduler.resume_job(id)`` resumes them); the command then says so.
- Cron and interval triggers register as job schedules at ``instrument_apscheduler``
  (and for jobs added later, at ``EVENT_JOB_ADDED``), so a missed run alerts.

APScheduler is an optional import: this module needs it; the rest of the probes do not.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from apscheduler.events import (
    EVENT_JOB_ADDED,
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
    JobEvent,
    JobExecutionEvent,
    JobSubmissionEvent,
)
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from b2c_monitoring.contract import JOB_ID_MAX_CHARS, MAX_JOB_TYPE_CHARS, JobState
from b2c_monitoring.probes._jobs import JobIdentity, context_from_traceparent, emit_report
from b2c_monitoring.probes._probes import Probes, ProbeSettings
from b2c_monitoring.probes._runner import _Control, _ControlError
from b2c_monitoring.probes.celery import beat_entry_cron

__all__ = [
    "ApschedulerMonitor",
    "instrument_apscheduler",
    "run_job_id",
    "skipped_as_missed",
    "trigger_cron",
]

_log = logging.getLogger(__name__)
_RETRY_PREFIX: Final = "b2c-retry:"

JobTypes = Mapping[str, str] | Callable[[Any], str | None]


def run_job_id(job_id: str, scheduled: datetime | None) -> str:
    """The b2c job id of one run of an APScheduler job."""
    stamp = scheduled.isoformat() if scheduled is not None else "now"
    return f"{job_id[: JOB_ID_MAX_CHARS - len(stamp) - 1]}@{stamp}"


# the executor judges a run's lateness a moment before the submitted event reaches us:
# only a run later than this beyond its grace is surely one it skipped
_MISSED_MARGIN: Final = timedelta(seconds=0.5)


def skipped_as_missed(scheduled: datetime | None, grace_s: float | None, now: datetime) -> bool:
    """Whether APScheduler's executor skips the run due at ``scheduled`` (it sends
    EVENT_JOB_MISSED instead of running it), judged at its submission at ``now``."""
    if scheduled is None or grace_s is None:
        return False
    return now - scheduled > timedelta(seconds=grace_s) + _MISSED_MARGIN


def trigger_cron(trigger: object) -> tuple[str, timedelta] | None:
    """A cron or interval trigger as a five-field cron and the least grace, or None."""
    if isinstance(trigger, CronTrigger):
        fields = {f.name: str(f) for f in trigger.fields}
        if fields.get("second") not in ("0", None) or fields.get("year") != "*":
            return None
        if fields.get("week") != "*":
            return None
        dow = fields["day_of_week"]
        # APScheduler counts mon=0; cron sun=0: names are read alike by both
        return (
            " ".join([fields["minute"], fields["hour"], fields["day"], fields["month"], dow]),
            timedelta(0),
        )
    if isinstance(trigger, IntervalTrigger):
        return beat_entry_cron(trigger.interval)
    return None


class ApschedulerMonitor:
    """Build it with ``instrument_apscheduler``."""

    def __init__(
        self,
        scheduler: Any,
        settings: ProbeSettings | None = None,
        *,
        probes: Probes | None = None,
        control_url: str | None = None,
        token: str | None = None,
        job_types: JobTypes | None = None,
        cancel_pauses: bool = False,
        register_schedules: bool = True,
        schedule_grace: timedelta = timedelta(minutes=5),
        schedule_timezone: str | None = None,
        poll_wait_s: float = 5.0,
    ) -> None:
        self.scheduler = scheduler
        self.probes = probes or Probes(settings or ProbeSettings())
        self.settings = self.probes.settings
        self._control_url = control_url
        self._token = token or self.settings.token
        self._job_types = job_types
        self._cancel_pauses = cancel_pauses
        self._register = register_schedules
        self._grace = schedule_grace
        self._timezone = schedule_timezone
        self._poll_wait_s = poll_wait_s
        self._lock = threading.Lock()
        # retries run as one-off jobs: their APScheduler id -> (b2c job id, retry of, attempt)
        self._retries: dict[str, tuple[str, str, int]] = {}
        self._stopping = threading.Event()
        self._poller: threading.Thread | None = None

    def install(self) -> ApschedulerMonitor:
        self.scheduler.add_listener(
            self._on_event,
            EVENT_JOB_SUBMITTED
            | EVENT_JOB_EXECUTED
            | EVENT_JOB_ERROR
            | EVENT_JOB_MISSED
            | EVENT_JOB_MAX_INSTANCES
            | EVENT_JOB_ADDED,
        )
        if self._register and self._control_url and self._token:
            for job in self.scheduler.get_jobs():
                self.register_schedule(job)
        if self._control_url and self._token and self.settings.service_name:
            self._poller = threading.Thread(target=self._poll, name="b2c-aps-commands", daemon=True)
            self._poller.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._poller is not None:
            self._poller.join(self._poll_wait_s + 2)

    def job_type(self, job: Any, job_id: str) -> str:
        mapped: str | None = None
        if callable(self._job_types):
            mapped = self._job_types(job) if job is not None else None
        elif self._job_types is not None:
            mapped = self._job_types.get(job_id)
        return (mapped or job_id)[:MAX_JOB_TYPE_CHARS]

    # events

    def _identity(self, event: JobEvent, scheduled: datetime | None) -> JobIdentity:
        with self._lock:
            retry = self._retries.get(event.job_id)
        if retry is not None:
            new_id, retry_of, attempt = retry
            original = event.job_id[len(_RETRY_PREFIX) :].split("|", 1)[0]
            job = self.scheduler.get_job(original)
            return JobIdentity.checked(
                self.job_type(job, original), new_id, self.settings.tenant_id, attempt, retry_of
            )
        job = self.scheduler.get_job(event.job_id)
        return JobIdentity.checked(
            self.job_type(job, event.job_id),
            run_job_id(event.job_id, scheduled),
            self.settings.tenant_id,
            1,
            None,
        )

    def _on_event(self, event: JobEvent) -> None:
        try:
            if event.code == EVENT_JOB_ADDED:
                if self._register and self._control_url and self._token:
                    job = self.scheduler.get_job(event.job_id)
                    if job is not None:
                        threading.Thread(
                            target=self.register_schedule, args=(job,), daemon=True
                        ).start()
                return
            if isinstance(event, JobSubmissionEvent):
                grace = getattr(self.scheduler.get_job(event.job_id), "misfire_grace_time", None)
                now = datetime.now(UTC)
                for scheduled in event.scheduled_run_times or [None]:
                    # a skipped run is reported by its EVENT_JOB_MISSED alone: no start
                    if not skipped_as_missed(scheduled, grace, now):
                        self._send(self._identity(event, scheduled), JobState.RUNNING)
                return
            scheduled = getattr(event, "scheduled_run_time", None)
            job = self._identity(event, scheduled)
            if event.code == EVENT_JOB_EXECUTED:
                self._send(job, JobState.SUCCEEDED, progress=100)
            elif event.code == EVENT_JOB_ERROR and isinstance(event, JobExecutionEvent):
                exc = event.exception
                self._send(
                    job,
                    JobState.FAILED,
                    error=str(exc) or type(exc).__name__,
                    exception=exc if isinstance(exc, BaseException) else None,
                )
            elif event.code in (EVENT_JOB_MISSED, EVENT_JOB_MAX_INSTANCES):
                how = "missed" if event.code == EVENT_JOB_MISSED else "max_instances"
                self._send(job, JobState.CANCELLED, metadata={"apscheduler.skipped": how})
            if event.code != EVENT_JOB_SUBMITTED:
                with self._lock:
                    self._retries.pop(event.job_id, None)
        except Exception:
            # the scheduler's listener is the edge: telemetry never stops its scheduler
            _log.exception("APScheduler event of %s not reported", getattr(event, "job_id", "?"))

    def _send(
        self,
        job: JobIdentity,
        state: JobState,
        *,
        progress: int | None = None,
        error: str | None = None,
        exception: BaseException | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        emit_report(
            self.probes._emitter,
            job,
            state,
            parent=context_from_traceparent(None),
            progress=progress,
            error=error,
            exception=exception,
            metadata={"apscheduler.job": job.job_type, **(metadata or {})},
        )

    # schedules

    def register_schedule(self, job: Any) -> bool:
        import httpx

        converted = trigger_cron(job.trigger)
        if converted is None or self._control_url is None or self._token is None:
            return False
        cron, least = converted
        timezone = self._timezone or str(getattr(job.trigger, "timezone", None) or "UTC")
        try:
            response = httpx.put(
                f"{self._control_url.rstrip('/')}/api/probes/job-schedules/{self.job_type(job, job.id)}",
                headers={"Authorization": f"Bearer {self._token}"},
                json={
                    "cron": cron,
                    "timezone": timezone,
                    "graceS": int(max(self._grace, least).total_seconds()),
                    "tenantId": self.settings.tenant_id,
                },
                timeout=10.0,
            )
        except httpx.HTTPError as exc:
            _log.warning("schedule of %s not registered: %s", job.id, exc)
            return False
        if response.is_error:
            _log.warning("schedule of %s not registered: %s", job.id, response.text[:300])
        return not response.is_error

    # commands

    def _poll(self) -> None:
        assert self._control_url is not None
        assert self._token is not None
        control = _Control(
            self._control_url,
            self._token,
            service=self.settings.service_name or "",
            instance=self.settings.service_instance_id,
            wait_s=self._poll_wait_s,
        )
        try:
            while not self._stopping.is_set():
                try:
                    commands = control.claim()
                except _ControlError as exc:
                    _log.debug("no commands from the admin API: %s", exc)
                    self._stopping.wait(2.0)
                    continue
                for command in commands:
                    outcome = self.carry_out(command)
                    try:
                        control.done(str(command.get("id")), outcome)
                    except _ControlError as exc:
                        _log.warning("command %s not marked: %s", command.get("id"), exc)
        finally:
            control.close()

    def carry_out(self, command: Mapping[str, Any]) -> dict[str, Any]:
        job_id = str(command.get("jobId"))
        ap_id = job_id.rsplit("@", 1)[0]
        if ap_id.startswith(_RETRY_PREFIX):
            ap_id = ap_id[len(_RETRY_PREFIX) :].split("|", 1)[0]
        job = self.scheduler.get_job(ap_id)
        if command.get("kind") == "cancel":
            reason = "APScheduler cannot stop a job that is running"
            if job is not None and self._cancel_pauses:
                job.pause()
                return {"ok": False, "error": f"{reason}; its next runs are paused (resume_job)"}
            return {"ok": False, "error": f"{reason}; pause or remove the job in the app"}
        if command.get("kind") == "retry":
            if job is None:
                return {"ok": False, "error": f"no APScheduler job {ap_id!r} here any more"}
            spec = command["retry"]
            new_job_id = str(spec["newJobId"])
            one_off = f"{_RETRY_PREFIX}{ap_id}|{new_job_id}"
            with self._lock:
                self._retries[one_off] = (new_job_id, job_id, int(spec["attempt"]))
            self.scheduler.add_job(
                job.func, "date", args=job.args, kwargs=job.kwargs, id=one_off, name=job.name
            )
            return {"ok": True, "newJobId": new_job_id}
        return {"ok": False, "error": f"unknown command {command.get('kind')!r}"}


def instrument_apscheduler(
    scheduler: Any, settings: ProbeSettings | None = None, **options: Any
) -> ApschedulerMonitor:
    """Report ``scheduler``'s job runs as jobs; see this module's docstring."""
    return ApschedulerMonitor(scheduler, settings, **options).install()
