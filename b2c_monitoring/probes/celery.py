"""Celery reports its tasks to b2c-monitoring, with no change to task code::

    from b2c_monitoring.probes import ProbeSettings
    from b2c_monitoring.probes.celery import instrument_celery

    app = Celery("erp", broker="redis://...", backend="redis://...")
    instrument_celery(
        app,
        ProbeSettings(service_name="erp-worker", token=PROBE_TOKEN),
        control_url="http://monitor:8000",  # retry and cancel reach the workers
        job_types={"erp.tasks.sync_orders": "ERP_SYNC"},
    )

Called where the app is defined (the producers and the workers import it), it maps
Celery's signals to job-state reports of the telemetry contract; a job's id is the
task's id:

- ``before_task_publish`` -> ``pending`` (in the producer); ``task_prerun`` ->
  ``running``; ``task_postrun`` of a ``SUCCESS`` -> ``succeeded`` (no ``task_success``
  receiver: each signal connected costs every task); ``task_failure`` -> ``failed`` with
  the exception's message; ``task_revoked`` (revoked, terminated or expired) ->
  ``cancelled``.
- Celery's own retry (``self.retry``) is the contract's retry: the attempt that
  retries ends ``failed`` with the reason, and the next one is the job
  ``<task id>.retry<n>`` with ``scheduler.job.retry_of`` the previous attempt and
  ``attempt`` n + 1 (Celery keeps the task id across retries; the contract needs a
  new job id).
- Progress: ``self.update_state(state="PROGRESS", meta={"current": 3, "total": 10})``
  (``percent`` wins if present; celery-progress writes both), or ``progress(percent)``
  from this module anywhere inside a task.
- Job type: the task's name, or ``job_types`` (a mapping or a function of the name).
- Tenant: the message header ``b2c_tenant`` (``apply_async(headers=...)``), else the
  keyword argument named ``tenant_argument``, else ``ProbeSettings.tenant_id``.

The Probes of a process are made in that process on first use (and at once in
``worker_process_init``), so the prefork pool's children each export their own.

Retry and cancel: with ``control_url``, each worker's main process long-polls the
admin API for the commands of its service (the job's ``service.name``: give producers
and workers the same ``service_name``). Cancel revokes the task, terminating it if it
runs (``SIGTERM`` to the pool child); the revoke is broadcast, so any worker may take
the command. Retry re-sends the original task, with its original arguments, as the
command's new job id. The arguments are never sent to b2c-monitoring: at publish the
integration keeps them in the app's own Redis (``b2c:celery:args:<job id>``, expiring
after ``args_ttl_s``), where the broker already holds them; b2c stores only the job id
that refers to them. Without a Redis broker, retries are declined with the reason.

Beat: in a process running ``celery beat``, the ``beat_schedule`` entries (crontab and
interval) are registered as job schedules of the admin API, so a missed run alerts.

Celery is an optional import: this module needs it; the rest of the probes do not.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, Final, Protocol

from celery import Celery, signals
from celery.app.task import Task
from celery.schedules import crontab
from celery.schedules import schedule as interval_schedule
from celery.states import SUCCESS
from opentelemetry.context import Context

from b2c_monitoring.contract import JOB_ID_MAX_CHARS, MAX_JOB_TYPE_CHARS, JobState
from b2c_monitoring.probes._job_reports import JobReport
from b2c_monitoring.probes._jobs import Emitter, JobIdentity, emit_report, send_report
from b2c_monitoring.probes._probes import Probes, ProbeSettings
from b2c_monitoring.probes._runner import _Control, _ControlError
from b2c_monitoring.probes._watch import QuietLog
from b2c_monitoring.processors.jobs import Scalar

__all__ = [
    "ArgsStore",
    "CeleryMonitor",
    "RedisArgsStore",
    "beat_entry_cron",
    "instrument_celery",
    "job_id_of",
    "progress",
    "task_id_of",
]

_log = logging.getLogger(__name__)

TENANT_HEADER: Final = "b2c_tenant"
RETRY_OF_HEADER: Final = "b2c_retry_of"
ATTEMPT_HEADER: Final = "b2c_attempt"
_HEADERS: Final = (TENANT_HEADER, RETRY_OF_HEADER, ATTEMPT_HEADER)
_RETRY_MARK: Final = ".retry"
DEFAULT_ARGS_TTL_S: Final = 7 * 86400
_BACKOFF_S: Final = (0.5, 5.0)

JobTypes = Mapping[str, str] | Callable[[str], str | None]


def job_id_of(task_id: str, retries: int) -> str:
    """The job id of a task's attempt: the task id, then ``<task id>.retry<n>``."""
    return task_id if retries <= 0 else f"{task_id}{_RETRY_MARK}{retries}"


def task_id_of(job_id: str) -> str:
    """The Celery task id behind a job id (the inverse of ``job_id_of``)."""
    head, mark, tail = job_id.rpartition(_RETRY_MARK)
    return head if mark and tail.isdigit() else job_id


class ArgsStore(Protocol):
    """Where the original arguments of a task wait for a retry (never b2c's storage)."""

    def put(self, job_id: str, task: str, args: list[Any], kwargs: dict[str, Any]) -> None: ...

    def get(self, job_id: str) -> tuple[str, list[Any], dict[str, Any]] | None: ...


class RedisArgsStore:
    """The arguments as JSON in the app's Redis, expiring after ``ttl_s``."""

    def __init__(self, url: str, ttl_s: int = DEFAULT_ARGS_TTL_S) -> None:
        import redis  # the broker's client, installed with celery[redis]

        self._redis = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self._ttl_s = ttl_s

    @staticmethod
    def key(job_id: str) -> str:
        return f"b2c:celery:args:{job_id}"

    def put(self, job_id: str, task: str, args: list[Any], kwargs: dict[str, Any]) -> None:
        value = json.dumps({"task": task, "args": args, "kwargs": kwargs})
        self._redis.set(self.key(job_id), value, ex=self._ttl_s)

    def get(self, job_id: str) -> tuple[str, list[Any], dict[str, Any]] | None:
        raw = self._redis.get(self.key(job_id))
        if raw is None:
            return None
        value = json.loads(raw)
        return str(value["task"]), list(value["args"]), dict(value["kwargs"])


def beat_entry_cron(entry_schedule: object) -> tuple[str, timedelta] | None:
    """A beat entry's schedule as a five-field cron expression and the least grace that
    matches it, or None when cron cannot express it.

    A crontab is itself. An interval runs every N seconds from beat's start, not on the
    clock: it becomes the cron of its period (``*/N`` minutes or ``0 */N`` hours) with a
    grace of one period, so every interval run falls within the grace of a cron time.
    """
    if isinstance(entry_schedule, crontab):
        fields = (
            entry_schedule._orig_minute,
            entry_schedule._orig_hour,
            entry_schedule._orig_day_of_month,
            entry_schedule._orig_month_of_year,
            entry_schedule._orig_day_of_week,
        )
        return " ".join(str(f) for f in fields), timedelta(0)
    if isinstance(entry_schedule, timedelta | int | float):
        seconds = (
            entry_schedule.total_seconds()
            if isinstance(entry_schedule, timedelta)
            else float(entry_schedule)
        )
    elif isinstance(entry_schedule, interval_schedule):
        seconds = entry_schedule.run_every.total_seconds()
    else:
        return None
    period = timedelta(seconds=seconds)
    if seconds <= 60:
        return "* * * * *", max(period, timedelta(seconds=60))
    minutes = seconds / 60
    if minutes < 60 and minutes.is_integer() and 60 % int(minutes) == 0:
        return f"*/{int(minutes)} * * * *", period
    hours = seconds / 3600
    if hours < 24 and hours.is_integer() and 24 % int(hours) == 0:
        return f"0 */{int(hours)} * * *", period
    if seconds == 86400:
        return "0 0 * * *", period
    return None


class _Run:
    """A task this process is running: its request, kept as the handler found it. The
    identity is worked out once, by whoever needs it first (the export thread, for the
    ``running`` report, or a failure's handler): a racing second reader computes the
    same value."""

    __slots__ = ("job", "request", "task_name")

    def __init__(self, request: Any, task_name: str) -> None:
        self.request = request
        self.task_name = task_name
        self.job: JobIdentity | bool | None = False  # False: not worked out yet


_MAX_METADATA_KINDS: Final = 1024  # (task name, worker) pairs; emptied when full
_NO_PARENT: Final = Context()  # each report its own trace (Celery carries no traceparent)
_MONITORS: dict[int, CeleryMonitor] = {}  # by id(app): the monitor of each instrumented app
_PATCH_LOCK = threading.Lock()
_PATCHED = False


class _Forks:
    """Counts the forks this process came through; a child's count differs from its
    parent's. Each report asks whether its process made its Probes itself, and
    ``os.getpid()`` is a system call, ~0.5 us here, three times a task."""

    generation = 0

    @classmethod
    def forked(cls) -> None:
        cls.generation += 1


os.register_at_fork(after_in_child=_Forks.forked)


def _patch_update_state() -> None:
    """``Task.update_state`` sends no signal: wrap it once, for every app, so that
    celery-progress style progress reaches the monitor of the task's app."""
    global _PATCHED
    with _PATCH_LOCK:
        if _PATCHED:
            return
        original = Task.update_state

        def update_state(
            self: Task,
            task_id: str | None = None,
            state: str | None = None,
            meta: dict[str, Any] | None = None,
            **kwargs: Any,
        ) -> None:
            original(self, task_id, state, meta, **kwargs)
            monitor = _MONITORS.get(id(self.app))
            if monitor is not None:
                monitor._progress_from_state(task_id or self.request.id, state, meta)

        Task.update_state = update_state
        _PATCHED = True


def progress(percent: float, **metadata: object) -> None:
    """Report the progress of the task this is called in (0..100); a no-op outside a
    task or without ``instrument_celery``."""
    from celery import current_task

    task = current_task
    if task is None or task.request.id is None:
        return
    monitor = _MONITORS.get(id(task.app))
    if monitor is not None:
        monitor._report_progress(task.request.id, percent, metadata)


class CeleryMonitor:
    """Build it with ``instrument_celery``; ``uninstall()`` disconnects it (tests)."""

    def __init__(
        self,
        app: Celery,
        settings: ProbeSettings | None = None,
        *,
        control_url: str | None = None,
        token: str | None = None,
        ca_file: str | None = None,
        job_types: JobTypes | None = None,
        tenant_argument: str | None = None,
        args_store: ArgsStore | None = None,
        keep_args: bool = True,
        args_ttl_s: int = DEFAULT_ARGS_TTL_S,
        register_schedules: bool = True,
        schedule_timezone: str | None = None,
        schedule_grace: timedelta = timedelta(minutes=5),
        poll_wait_s: float = 5.0,
        probes_factory: Callable[[], Probes] | None = None,
    ) -> None:
        self.app = app
        self.settings = settings or ProbeSettings.from_env(os.environ)
        self._factory = probes_factory or (lambda: Probes(self.settings))
        self._control_url = control_url
        self._token = token or self.settings.token
        self._ca_file = ca_file
        self._job_types = job_types
        self._tenant_argument = tenant_argument
        self._keep_args = keep_args
        self._args_ttl_s = args_ttl_s
        self._args_store = args_store
        self._register_schedules = register_schedules
        self._schedule_timezone = schedule_timezone
        self._schedule_grace = schedule_grace
        self._poll_wait_s = poll_wait_s
        self._lock = threading.Lock()
        self._generation: int | None = None  # the fork generation its Probes were made in
        self._own_probes: Probes | None = None
        self._active: dict[str, _Run] = {}
        self._metadata_of: dict[tuple[str, object], Mapping[str, Scalar]] = {}
        self._stopping = threading.Event()
        self._poller: threading.Thread | None = None
        self._quiet = QuietLog(_log)
        self._handlers: list[tuple[Any, Callable[..., None]]] = []
        # per task name: the mapping is looked up (and cut) once, not at every report
        self._job_types_of: dict[str, str] = {}

    # wiring

    def install(self) -> CeleryMonitor:
        _patch_update_state()
        _MONITORS[id(self.app)] = self
        for signal, handler in (
            (signals.before_task_publish, self._on_publish),
            (signals.task_prerun, self._on_prerun),
            (signals.task_failure, self._on_failure),
            (signals.task_retry, self._on_retry),
            (signals.task_revoked, self._on_revoked),
            (signals.task_postrun, self._on_postrun),
            (signals.worker_process_init, self._on_process_init),
            (signals.worker_process_shutdown, self._on_process_shutdown),
            (signals.worker_ready, self._on_worker_ready),
            (signals.worker_shutdown, self._on_worker_shutdown),
            (signals.beat_init, self._on_beat_init),
        ):
            signal.connect(handler, weak=False)
            self._handlers.append((signal, handler))
        return self

    def uninstall(self) -> None:
        for signal, handler in self._handlers:
            signal.disconnect(handler)
        self._handlers.clear()
        _MONITORS.pop(id(self.app), None)
        self._stop_poller()

    def probes(self) -> Probes:
        """The Probes of this process (made here on first use: a forked child gets its own)."""
        generation = _Forks.generation
        probes = self._own_probes
        if probes is not None and self._generation == generation:
            return probes  # every report asks: no lock once this process has its own
        with self._lock:
            if self._generation != generation or self._own_probes is None:
                # the parent's exporter threads did not survive the fork; its queue is not ours
                self._own_probes = self._factory()
                self._generation = generation
                self._active.clear()
            return self._own_probes

    def _emitter(self) -> Emitter:
        return self.probes()._emitter

    def args_store(self) -> ArgsStore | None:
        if self._args_store is None and self._keep_args:
            url = str(self.app.conf.broker_url or "")
            if url.startswith(("redis://", "rediss://", "unix://")):
                self._args_store = RedisArgsStore(url, self._args_ttl_s)
        return self._args_store

    def job_type(self, task_name: str) -> str:
        known = self._job_types_of.get(task_name)
        if known is not None:
            return known
        job_type = self._job_types_of[task_name] = self._map_job_type(task_name)
        return job_type

    def _map_job_type(self, task_name: str) -> str:
        mapped: str | None = None
        if callable(self._job_types):
            mapped = self._job_types(task_name)
        elif self._job_types is not None:
            mapped = self._job_types.get(task_name)
        name = mapped or task_name
        # a long dotted task name: its last parts, within the contract's limit
        return name if len(name) <= MAX_JOB_TYPE_CHARS else name[-MAX_JOB_TYPE_CHARS:]

    def _tenant(
        self, headers: Mapping[str, Any] | None, kwargs: Mapping[str, Any] | None
    ) -> str | None:
        tenant = (headers or {}).get(TENANT_HEADER)
        if not tenant and self._tenant_argument and kwargs:
            tenant = kwargs.get(self._tenant_argument)
        if not tenant:
            tenant = self.settings.tenant_id
        return str(tenant) if tenant else None

    def _send(
        self,
        job: JobIdentity,
        state: JobState,
        *,
        metadata: Mapping[str, Scalar] | None = None,
        progress: int | None = None,
        error: str | None = None,
        exception: BaseException | None = None,
    ) -> None:
        emitter = self._emitter()
        # after the task's handed-off reports: its running report comes first
        emitter.handoff.drain()
        if exception is None:
            send_report(emitter, job, state, metadata=metadata, progress=progress, error=error)
            return
        emit_report(
            emitter,
            job,
            state,
            parent=_NO_PARENT,
            metadata=metadata,
            progress=progress,
            error=error,
            exception=exception,
        )

    def _identity(
        self,
        task_id: str,
        task_name: str,
        retries: int,
        tenant: str | None,
        retry_of: str | None = None,
        attempt: int | None = None,
    ) -> JobIdentity | None:
        try:
            job_id = job_id_of(task_id, retries)
            if retry_of is None and retries > 0:
                retry_of = job_id_of(task_id, retries - 1)
            return JobIdentity.checked(
                self.job_type(task_name),
                job_id[:JOB_ID_MAX_CHARS],
                tenant,
                attempt or retries + 1,
                retry_of,
            )
        except ValueError:
            # odd ids or names are the host's; telemetry never fails its task
            _log.warning("task %s (%s) not reported: %s", task_id, task_name, exc_info=True)
            return None

    def _request_identity(self, request: Any, task_name: str) -> JobIdentity | None:
        task_id = getattr(request, "id", None)
        if not task_id:
            return None
        # custom headers reach the request as attributes (protocol 2) or in its headers
        # (a missing attribute of Celery's Context costs an AttributeError: read its dict)
        given = getattr(request, "headers", None) or {}
        fields = getattr(request, "__dict__", None)  # the worker's Request has slots
        if fields is None:
            fields = {key: getattr(request, key, None) for key in _HEADERS}
        headers = {
            key: value for key in _HEADERS if (value := given.get(key, fields.get(key))) is not None
        }
        retries = int(getattr(request, "retries", 0) or 0)
        attempt = headers.get(ATTEMPT_HEADER)
        return self._identity(
            str(task_id),
            task_name,
            retries,
            self._tenant(headers, getattr(request, "kwargs", None)),
            retry_of=headers.get(RETRY_OF_HEADER) if retries == 0 else None,
            attempt=int(attempt) + retries if attempt else None,
        )

    # signals: the handlers never raise into Celery

    def _on_publish(
        self,
        sender: str | None = None,
        body: Any = None,
        headers: dict[str, Any] | None = None,
        routing_key: str | None = None,
        **_: Any,
    ) -> None:
        try:
            if headers is None or "id" not in headers:
                return  # protocol 1 messages carry no headers: the worker reports them
            task_name = str(headers.get("task") or sender)
            args, kwargs = _body_args(body)
            tenant = self._tenant(headers, kwargs)
            if tenant is not None:
                headers.setdefault(TENANT_HEADER, tenant)
            retries = int(headers.get("retries") or 0)
            attempt = headers.get(ATTEMPT_HEADER)
            job = self._identity(
                str(headers["id"]),
                task_name,
                retries,
                tenant,
                retry_of=headers.get(RETRY_OF_HEADER) if retries == 0 else None,
                attempt=int(attempt) + retries if attempt else None,
            )
            if job is None:
                return
            store = self.args_store() if retries == 0 else None
            if store is not None:
                try:
                    store.put(job.job_id, task_name, args, kwargs)
                except (TypeError, ValueError) as exc:
                    _log.warning("arguments of %s not kept for a retry: %s", job.job_id, exc)
                except Exception as exc:  # the store's own errors (redis): not the task's
                    self._quiet.failure(f"arguments of {task_name} not kept for a retry: {exc}")
            metadata: dict[str, Scalar] = {"celery.task": task_name}
            if routing_key:
                metadata["celery.queue"] = routing_key
            self._send(job, JobState.PENDING, metadata=metadata)
        except Exception:
            _log.exception("before_task_publish: not reported")

    # The two handlers every task runs leave their reports to the export thread
    # (probes/_report_handoff.py): in a worker child they run cold, and each line costs.

    def _on_prerun(self, sender: Task | None = None, task_id: str | None = None, **_: Any) -> None:
        try:
            if sender is None or task_id is None:
                return
            # before _active: a child's first use of its Probes clears it
            handoff = self._emitter().handoff
            # the request is a property that looks up Celery's request stack
            run = self._active[task_id] = _Run(sender.request, sender.name)
            handoff.leave(self._made, run, JobState.RUNNING, time.time_ns())
        except Exception:
            _log.exception("task_prerun: not reported")

    def _on_postrun(self, task_id: str | None = None, state: str | None = None, **_: Any) -> None:
        # Success is reported here rather than on task_success: each connected signal
        # costs every task ~10 us of Celery's dispatch, and postrun is needed anyway
        # (it ends the task's entry whatever happened). Failures and retries have
        # signals of their own, which carry the exception.
        try:
            run = self._active.pop(task_id, None)  # type: ignore[arg-type]
            if run is not None and state == SUCCESS:
                self._emitter().handoff.leave(self._made, run, JobState.SUCCEEDED, time.time_ns())
        except Exception:
            _log.exception("task_postrun: not reported")

    def _made(self, run: _Run, state: JobState, time_ns: int) -> JobReport | None:
        """In the export thread: the report of a handed-off ``running`` or ``succeeded``."""
        job = self._job_of(run)
        if job is None:
            return None
        direct = self._emitter().direct
        if state is JobState.SUCCEEDED:
            return direct.report_of(job, state, time_ns, progress=100)
        return direct.report_of(job, state, time_ns, self._run_metadata(run))

    def _run_metadata(self, run: _Run) -> Mapping[str, Scalar]:
        # shared by every report of a task name on a worker: never changed once made
        hostname = getattr(run.request, "hostname", None)
        key = (run.task_name, hostname)
        metadata = self._metadata_of.get(key)
        if metadata is None:
            made: dict[str, Scalar] = {"celery.task": run.task_name}
            if hostname:
                made["celery.worker"] = str(hostname)
            if len(self._metadata_of) >= _MAX_METADATA_KINDS:
                self._metadata_of.clear()
            metadata = self._metadata_of[key] = made
        return metadata

    def _job_of(self, run: _Run) -> JobIdentity | None:
        job = run.job
        if job is False:
            job = run.job = self._request_identity(run.request, run.task_name)
        return job if isinstance(job, JobIdentity) else None

    def _active_job(self, task_id: str | None) -> JobIdentity | None:
        run = self._active.get(str(task_id)) if task_id is not None else None
        return self._job_of(run) if run is not None else None

    def _on_failure(
        self,
        sender: Task | None = None,
        task_id: str | None = None,
        exception: BaseException | None = None,
        **_: Any,
    ) -> None:
        try:
            job = self._active_job(task_id)
            if job is None:
                return
            message = str(exception) if exception is not None else ""
            self._send(
                job,
                JobState.FAILED,
                error=message or (type(exception).__name__ if exception else "failed"),
                exception=exception,
            )
        except Exception:
            _log.exception("task_failure: not reported")

    def _on_retry(self, request: Any = None, reason: Any = None, **_: Any) -> None:
        try:
            job = self._active_job(getattr(request, "id", None))
            if job is None:
                return
            cause = reason if isinstance(reason, BaseException) else None
            self._send(
                job,
                JobState.FAILED,
                error=f"retrying: {reason}",
                exception=cause,
                metadata={"celery.retried": True},
            )
        except Exception:
            _log.exception("task_retry: not reported")

    def _on_revoked(
        self,
        sender: Task | None = None,
        request: Any = None,
        terminated: bool = False,
        expired: bool = False,
        **_: Any,
    ) -> None:
        try:
            name = sender.name if sender is not None else str(getattr(request, "task", ""))
            job = self._request_identity(request, name) if request is not None else None
            if job is None:
                return
            how = "expired" if expired else "terminated" if terminated else "revoked"
            self._send(job, JobState.CANCELLED, metadata={"celery.revoked": how})
        except Exception:
            _log.exception("task_revoked: not reported")

    def _progress_from_state(
        self, task_id: str | None, state: str | None, meta: Mapping[str, Any] | None
    ) -> None:
        if task_id is None or state in (None, SUCCESS, "FAILURE", "REVOKED", "RETRY"):
            return
        meta = meta or {}
        percent: float | None = None
        try:
            if "percent" in meta:
                percent = float(meta["percent"])
            elif "current" in meta and meta.get("total"):
                percent = 100.0 * float(meta["current"]) / float(meta["total"])
        except (TypeError, ValueError):
            percent = None
        extra = {
            f"progress.{k}": v
            for k, v in meta.items()
            if k not in ("percent", "pending") and isinstance(v, str | int | float | bool)
        }
        if percent is not None or extra:
            self._report_progress(task_id, percent, extra)

    def _report_progress(
        self, task_id: str, percent: float | None, metadata: Mapping[str, object]
    ) -> None:
        try:
            job = self._active_job(task_id)
            if job is None:
                return
            scalars = {
                k: v if isinstance(v, str | int | float | bool) else str(v)
                for k, v in metadata.items()
            }
            self._send(
                job,
                JobState.RUNNING,
                progress=None if percent is None else max(0, min(100, int(percent))),
                metadata=scalars,
            )
        except Exception:
            _log.exception("progress of %s not reported", task_id)

    def _on_process_init(self, **_: Any) -> None:
        self.probes()

    def _on_process_shutdown(self, **_: Any) -> None:
        with self._lock:
            probes = self._own_probes if self._generation == _Forks.generation else None
        if probes is not None:
            probes.shutdown(5.0)

    def _on_worker_shutdown(self, **_: Any) -> None:
        self._stop_poller()
        self._on_process_shutdown()

    # beat: its schedule registers as job schedules

    def _on_beat_init(self, **_: Any) -> None:
        if not self._register_schedules or self._control_url is None or self._token is None:
            return
        threading.Thread(
            target=self.register_schedules, name="b2c-beat-schedules", daemon=True
        ).start()

    def register_schedules(self) -> list[str]:
        """PUT each ``beat_schedule`` entry as the job schedule of its job type; the job
        types registered. Entries cron cannot express are logged and left out."""
        assert self._control_url is not None
        assert self._token is not None
        import httpx

        timezone = self._schedule_timezone or str(self.app.conf.timezone or "UTC")
        done: list[str] = []
        with httpx.Client(
            base_url=self._control_url.rstrip("/"),
            headers={"Authorization": f"Bearer {self._token}"},
            timeout=10.0,
        ) as http:
            for name, entry in (self.app.conf.beat_schedule or {}).items():
                converted = beat_entry_cron(entry.get("schedule"))
                if converted is None:
                    _log.warning(
                        "beat entry %s: its schedule has no cron form; not registered", name
                    )
                    continue
                cron, least_grace = converted
                job_type = self.job_type(str(entry.get("task")))
                options = entry.get("options") or {}
                tenant = (options.get("headers") or {}).get(TENANT_HEADER) or self._tenant(
                    None, entry.get("kwargs")
                )
                grace = max(self._schedule_grace, least_grace)
                try:
                    response = http.put(
                        f"/api/probes/job-schedules/{job_type}",
                        json={
                            "cron": cron,
                            "timezone": timezone,
                            "graceS": int(grace.total_seconds()),
                            "tenantId": tenant,
                        },
                    )
                except httpx.HTTPError as exc:
                    _log.warning("beat entry %s not registered: %s", name, exc)
                    continue
                if response.is_error:
                    _log.warning(
                        "beat entry %s not registered: %s %s",
                        name,
                        response.status_code,
                        response.text[:300],
                    )
                    continue
                done.append(job_type)
        return done

    # retry and cancel, in the worker's main process

    def _on_worker_ready(self, **_: Any) -> None:
        if self._control_url is None:
            return
        if self._token is None or not self.settings.service_name:
            _log.warning("b2c: retry and cancel need a token and a service name; not polling")
            return
        self._stopping.clear()
        self._poller = threading.Thread(target=self._poll, name="b2c-celery-commands", daemon=True)
        self._poller.start()

    def _stop_poller(self) -> None:
        self._stopping.set()
        poller = self._poller
        if poller is not None and poller is not threading.current_thread():
            poller.join(2.0)
        self._poller = None

    def _poll(self) -> None:
        assert self._control_url is not None
        assert self._token is not None
        control = _Control(
            self._control_url,
            self._token,
            service=self.settings.service_name or "",
            instance=self.settings.service_instance_id,
            wait_s=self._poll_wait_s,
            ca_file=self._ca_file,
        )
        delay = _BACKOFF_S[0]
        try:
            while not self._stopping.is_set():
                try:
                    commands = control.claim()
                except _ControlError as exc:
                    self._quiet.failure(f"celery commands: none from the admin API ({exc})")
                    self._stopping.wait(delay)
                    delay = min(delay * 2, _BACKOFF_S[1])
                    continue
                self._quiet.recovered("celery commands: admin API reachable again")
                delay = _BACKOFF_S[0]
                for command in commands:
                    outcome = self.carry_out(command)
                    try:
                        control.done(str(command.get("id")), outcome)
                    except _ControlError as exc:
                        # not marked: handed out again after the lease; acting twice is harmless
                        _log.warning("command %s not marked: %s", command.get("id"), exc)
        finally:
            control.close()

    def carry_out(self, command: Mapping[str, Any]) -> dict[str, Any]:
        """Act on one command of the admin API; the outcome to mark it with."""
        try:
            kind = command.get("kind")
            job_id = str(command["jobId"])
            if kind == "cancel":
                # broadcast: whichever worker holds the task revokes it
                self.app.control.revoke(task_id_of(job_id), terminate=True, signal="SIGTERM")
                return {"ok": True}
            if kind == "retry":
                return self._retry(job_id, command)
            return {"ok": False, "error": f"the Celery integration does not know {kind!r} commands"}
        except Exception as exc:
            _log.exception("command %s could not be carried out", command.get("id"))
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}

    def _retry(self, job_id: str, command: Mapping[str, Any]) -> dict[str, Any]:
        spec = command["retry"]
        store = self.args_store()
        kept = store.get(job_id) if store is not None else None
        if kept is None and store is not None and task_id_of(job_id) != job_id:
            kept = store.get(task_id_of(job_id))  # a Celery retry's attempt: the first's args
        if kept is None:
            return {
                "ok": False,
                "error": "the original arguments of this task are not kept (no Redis broker, "
                "or older than the integration's args_ttl_s): re-send it from the app",
            }
        task, args, kwargs = kept
        new_job_id = str(spec["newJobId"])
        headers = {RETRY_OF_HEADER: job_id, ATTEMPT_HEADER: int(spec["attempt"])}
        tenant = command.get("tenantId")
        if tenant:
            headers[TENANT_HEADER] = tenant
        self.app.send_task(task, args=args, kwargs=kwargs, task_id=new_job_id, headers=headers)
        return {"ok": True, "newJobId": new_job_id}


def _body_args(body: Any) -> tuple[list[Any], dict[str, Any]]:
    """Protocol 2's body is ``(args, kwargs, embed)``."""
    if isinstance(body, tuple | list) and len(body) >= 2:
        args, kwargs = body[0], body[1]
        return list(args or ()), dict(kwargs or {})
    return [], {}


def instrument_celery(
    app: Celery, settings: ProbeSettings | None = None, **options: Any
) -> CeleryMonitor:
    """Report ``app``'s tasks as jobs; see this module's docstring for ``options``."""
    return CeleryMonitor(app, settings, **options).install()
