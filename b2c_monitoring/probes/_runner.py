"""A small job runner: a handler per job type, run in a bounded pool, and the retry and
cancel requests of operators carried out::

    runner = probes.job_runner(control_url="http://monitor:8000", token=PROBE_TOKEN)

    @runner.handler("ERP_SYNC")
    def sync(job: JobRun, params: Mapping[str, Scalar]) -> None:
        for page in pages(params["since"]):
            job.check_cancelled()  # raises JobCancelled once an operator cancelled
            ...

    runner.submit("ERP_SYNC", tenant_id="acme", params={"since": "2026-11-01"})

A submitted job is reported ``pending``, then runs in one of ``max_workers`` threads;
its parameters are recorded as its metadata ``params.<name>``, so a retry can run it
again with them in any runner of the service, after a restart too.

A thread of the runner long-polls the admin API's control endpoint
(``GET /api/probes/commands``) for the commands of its service and marks each done or
failed (``POST /api/probes/commands/{id}/done``):

- cancel: the job's ``JobRun`` is cancelled (``cancelled()`` turns true,
  ``check_cancelled()`` raises) and the run ends ``cancelled``; a job not queued or
  running here is declined (``POST .../decline``), so that the instance of the service
  that runs it gets the command; declined by all, it fails ("job not running here");
- retry: the job type's handler runs again as the new job id the command names, with
  ``scheduler.job.retry_of`` and ``attempt + 1``; a runner without a handler for the
  type, or full, declines it for another instance.

The API being down, slow or refusing never raises into the host: the thread backs
off and tries again, and marks it could not send wait for the next round (a command
not marked in time is handed out again, and acting on it twice is harmless).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any, Final, TypeVar
from urllib.parse import quote, urlsplit

import httpx

from b2c_monitoring.contract import MAX_METADATA_KEY_CHARS, MAX_METADATA_VALUE_CHARS, JobState
from b2c_monitoring.probes._jobs import JobRun, PendingJob
from b2c_monitoring.probes._watch import QuietLog
from b2c_monitoring.processors.job_commands import PARAMS_PREFIX, params_metadata
from b2c_monitoring.processors.jobs import Scalar
from b2c_monitoring.tls import client_context, is_loopback, url_host

if TYPE_CHECKING:
    from b2c_monitoring.probes._probes import Probes

# an outcome that hands the command back instead of marking it
_DECLINE: Final = "decline"
_log = logging.getLogger(__name__)

Handler = Callable[[JobRun, Mapping[str, Scalar]], Any]
"""Runs one job: ``(job, params)``; a coroutine function runs in its own event loop."""
H = TypeVar("H", bound=Handler)

DEFAULT_MAX_WORKERS: Final = 4
DEFAULT_MAX_QUEUED: Final = 100
DEFAULT_POLL_WAIT_S: Final = 5.0
_BACKOFF_S: Final = (0.5, 5.0)
_REMEMBERED: Final = 1024  # ended job ids kept, so a repeated command is answered alike
_MAX_UNSENT: Final = 1000  # marks waiting for the API; a lost one only means a repeat


class _ControlError(Exception):
    """The control endpoint could not be reached or refused; ``permanent``: asking
    again with the same request cannot help."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class _OwnRequests(logging.Filter):
    """Drops httpx's INFO line for each request to a control endpoint's commands.

    The long poll ends every few seconds, so a host that logs at INFO would get a
    line each time from a library it never called; the host's own requests (to the
    same server included) keep theirs, and warnings and errors pass."""

    def __init__(self) -> None:
        super().__init__()
        self._prefixes: tuple[str, ...] = ()

    def add(self, prefix: str) -> None:
        if prefix not in self._prefixes:
            self._prefixes = (*self._prefixes, prefix)

    def filter(self, record: logging.LogRecord) -> bool:
        # httpx: logger.info('HTTP Request: %s %s "%s %d %s"', method, url, ...)
        args = record.args
        if record.levelno != logging.INFO or not isinstance(args, tuple) or len(args) < 2:
            return True
        return not str(args[1]).startswith(self._prefixes)


_OWN_REQUESTS: Final = _OwnRequests()


class _Control:
    """The admin API's control endpoint; httpx errors are translated here."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        service: str,
        instance: str,
        wait_s: float,
        ca_file: str | None = None,
    ) -> None:
        self._params = {"service": service, "instance": instance, "wait": wait_s}
        if urlsplit(url).scheme != "https" and not is_loopback(url_host(url)):
            _log.warning(
                "b2c job runner: the control URL %s is PLAINTEXT and not on loopback; "
                "its probe token crosses the network unencrypted: use https://",
                url,
            )
        self._http = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            # a long poll answers after up to wait_s
            timeout=httpx.Timeout(wait_s + 10.0, connect=5.0),
            verify=client_context(ca_file, setting="ca_file"),
        )
        _OWN_REQUESTS.add(str(self._http.base_url.join("api/probes/commands")))
        logging.getLogger("httpx").addFilter(_OWN_REQUESTS)  # once: it is one object

    def claim(self) -> list[dict[str, Any]]:
        body = self._call("GET", "/api/probes/commands", params=self._params)
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise _ControlError("the control endpoint answered something else than commands")
        return [item for item in items if isinstance(item, dict)]

    def done(self, command_id: str, outcome: Mapping[str, Any]) -> None:
        self._call(
            "POST",
            f"/api/probes/commands/{quote(command_id, safe='')}/done",
            params={"instance": self._params["instance"]},
            json=outcome,
        )

    def decline(self, command_id: str, reason: str) -> None:
        self._call(
            "POST",
            f"/api/probes/commands/{quote(command_id, safe='')}/decline",
            params={"instance": self._params["instance"]},
            json={"reason": reason},
        )

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except (httpx.HTTPError, RuntimeError) as exc:
            # RuntimeError: the client was closed under a poll by stop()
            raise _ControlError(f"{type(exc).__name__}: {exc}") from exc
        if response.is_error:
            status = response.status_code
            raise _ControlError(
                f"{status} {response.text[:200]}",
                permanent=400 <= status < 500 and status not in (408, 429),
            )
        try:
            return response.json()
        except ValueError as exc:
            raise _ControlError("the control endpoint answered no JSON") from exc


@dataclass(eq=False)
class _Entry:
    """A job queued or running here."""

    pending: PendingJob
    handler: Handler
    params: Mapping[str, Scalar]
    run: JobRun | None = None  # once started
    cancel_reason: str | None = None


def _check_params(params: Mapping[str, object]) -> dict[str, Scalar]:
    """Parameters are recorded as job metadata, so they are scalars within its limits;
    anything else is the caller's bug and surfaces at once."""
    checked: dict[str, Scalar] = {}
    for key, value in params.items():
        if (
            not isinstance(key, str)
            or not key
            or len(key) > MAX_METADATA_KEY_CHARS - len(PARAMS_PREFIX)
        ):
            raise ValueError(f"parameter name {key!r}: a non-empty string of limited length")
        if not isinstance(value, str | bool | int | float):
            raise ValueError(f"parameter {key!r}: str, bool, int or float, got {type(value)}")
        if isinstance(value, str) and len(value) > MAX_METADATA_VALUE_CHARS:
            raise ValueError(f"parameter {key!r}: at most {MAX_METADATA_VALUE_CHARS} characters")
        checked[key] = value
    return checked


class JobRunner:
    """Build it with ``Probes.job_runner``. Thread-safe; ``stop()`` (or ``with``) ends it."""

    def __init__(
        self,
        probes: Probes,
        *,
        service_name: str | None,
        control_url: str | None = None,
        token: str | None = None,
        ca_file: str | None = None,
        max_workers: int = DEFAULT_MAX_WORKERS,
        max_queued: int = DEFAULT_MAX_QUEUED,
        poll_wait_s: float = DEFAULT_POLL_WAIT_S,
    ) -> None:
        if max_workers < 1 or max_queued < 0:
            raise ValueError("max_workers must be at least 1 and max_queued at least 0")
        self._probes = probes
        self._service = service_name
        self._handlers: dict[str, Handler] = {}
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._jobs: dict[str, _Entry] = {}
        self._ended: OrderedDict[str, JobState] = OrderedDict()
        self._capacity = max_workers + max_queued
        self._pool = ThreadPoolExecutor(max_workers, thread_name_prefix="b2c-job")
        self._stopping = threading.Event()
        self._unsent: deque[tuple[str, dict[str, Any]]] = deque()
        self._quiet = QuietLog(_log)
        self._control: _Control | None = None
        self._poller: threading.Thread | None = None
        if control_url is not None:
            if token is None or service_name is None:
                raise ValueError("a runner with a control_url needs a token and a service name")
            self._control = _Control(
                control_url,
                token,
                service=service_name,
                instance=probes.settings.service_instance_id,
                wait_s=poll_wait_s,
                ca_file=ca_file,
            )
            self._poller = threading.Thread(
                target=self._poll, name=f"b2c-runner-{service_name}", daemon=True
            )
            self._poller.start()

    # the host's side

    def handler(self, job_type: str) -> Callable[[H], H]:
        """Decorator: ``fn(job, params)`` runs the jobs of ``job_type``."""

        def register(fn: H) -> H:
            with self._lock:
                self._handlers[job_type] = fn
            return fn

        return register

    def submit(
        self,
        job_type: str,
        *,
        tenant_id: str | None = None,
        params: Mapping[str, object] | None = None,
        job_id: str | None = None,
    ) -> PendingJob:
        """Report the job ``pending`` and run it when a worker is free.

        Raises ValueError for an unknown job type or bad parameters, RuntimeError when
        the runner is stopped or ``max_workers + max_queued`` jobs are already in it.
        """
        with self._lock:
            handler = self._handlers.get(job_type)
        if handler is None:
            raise ValueError(f"no handler for job type {job_type!r}; register one with handler()")
        pending = self._enqueue(
            job_type, handler, _check_params(params or {}), tenant_id=tenant_id, job_id=job_id
        )
        if pending is None:
            raise RuntimeError(
                f"the job runner is stopped or full ({self._capacity} jobs queued or running)"
            )
        return pending

    def cancel(self, job_id: str, reason: str | None = None) -> bool:
        """Cancel a job queued or running here; False if there is none."""
        with self._lock:
            entry = self._jobs.get(job_id)
            if entry is None:
                return False
            entry.cancel_reason = entry.cancel_reason or reason or "cancelled"
            run = entry.run
        if run is not None:
            run.cancel(entry.cancel_reason)
        return True

    @property
    def active_jobs(self) -> list[str]:
        """Ids of the jobs queued or running here."""
        with self._lock:
            return list(self._jobs)

    def stop(self, timeout: float = 5.0, *, cancel_running: bool = False) -> bool:
        """Stop polling; jobs not started yet end ``cancelled``; running ones finish
        (or, with ``cancel_running``, are cancelled). Waits at most ``timeout`` s for
        them; True if none is left."""
        self._stopping.set()
        with self._lock:
            entries = list(self._jobs.values())
        for entry in entries:
            if entry.run is None:
                self.cancel(entry.pending.job_id, "the job runner stopped before the job started")
            elif cancel_running:
                self.cancel(entry.pending.job_id, "the job runner stopped")
        self._pool.shutdown(wait=False)
        with self._idle:
            idle = self._idle.wait_for(lambda: not self._jobs, timeout)
        if self._control is not None:
            self._send_unsent()
            self._control.close()  # also ends a long poll in flight
        if self._poller is not None and self._poller is not threading.current_thread():
            self._poller.join(1.0)
        return idle

    def __enter__(self) -> JobRunner:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # running jobs

    def _enqueue(
        self,
        job_type: str,
        handler: Handler,
        params: Mapping[str, Scalar],
        *,
        tenant_id: str | None,
        job_id: str | None,
        attempt: int = 1,
        retry_of: str | None = None,
    ) -> PendingJob | None:
        with self._lock:
            if self._stopping.is_set() or len(self._jobs) >= self._capacity:
                return None
            if job_id is not None and job_id in self._jobs:
                raise ValueError(f"job {job_id!r} is already queued or running here")
            pending = self._probes.job_pending(
                job_type,
                job_id=job_id,
                tenant_id=tenant_id,
                metadata=params_metadata(params),
                attempt=attempt,
                retry_of=retry_of,
            )
            entry = _Entry(pending, handler, MappingProxyType(dict(params)))
            self._jobs[pending.job_id] = entry
        try:
            self._pool.submit(self._run, entry)
        except RuntimeError:
            # stopped between the check and here: the job ends as if cancelled in the queue
            entry.cancel_reason = "the job runner stopped before the job started"
            threading.Thread(target=self._run, args=(entry,), daemon=True).start()
        return pending

    def _run(self, entry: _Entry) -> None:
        pending = entry.pending
        state = JobState.FAILED
        try:
            with self._probes.start_pending(pending) as job:
                with self._lock:
                    entry.run = job
                    reason = entry.cancel_reason
                if reason is not None:
                    job.cancel(reason)
                job.check_cancelled()  # cancelled in the queue: the handler never starts
                outcome = entry.handler(job, entry.params)
                if inspect.isawaitable(outcome):
                    asyncio.run(_awaited(outcome))
            state = job.state
        except Exception:
            # the job's own failure, reported failed already; the worker thread is the edge
            _log.warning("job %s (%s) failed", pending.job_id, pending.job_type, exc_info=True)
        finally:
            with self._idle:
                del self._jobs[pending.job_id]
                self._ended[pending.job_id] = state
                while len(self._ended) > _REMEMBERED:
                    self._ended.popitem(last=False)
                self._idle.notify_all()

    # commands

    def _poll(self) -> None:
        control = self._control
        assert control is not None
        delay = _BACKOFF_S[0]
        while not self._stopping.is_set() and self._probes._is_open():
            try:
                self._send_unsent()
                commands = control.claim()
            except _ControlError as exc:
                failure = f"no commands from the admin API ({exc})"
            except Exception as exc:
                # the thread's edge: a bug here must not end the carrying out of commands
                _log.exception("job runner of %s: polling failed", self._service)
                failure = f"polling failed ({type(exc).__name__})"
            else:
                self._quiet.recovered(f"job runner of {self._service}: admin API reachable again")
                delay = _BACKOFF_S[0]
                for command in commands:
                    self._carry_out(command)
                continue
            if self._stopping.is_set():
                return
            self._quiet.failure(f"job runner of {self._service}: {failure}; trying again")
            # jitter: runners of one service must not come back in step
            self._stopping.wait(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, _BACKOFF_S[1])

    def _carry_out(self, command: Mapping[str, Any]) -> None:
        command_id = str(command.get("id"))
        try:
            kind = command.get("kind")
            if kind == "cancel":
                outcome = self._cancel_command(command)
            elif kind == "retry":
                outcome = self._retry_command(command)
            else:
                outcome = {"ok": False, "error": f"this runner does not know {kind!r} commands"}
        except Exception as exc:
            # a malformed command must not stop the loop that serves the others
            _log.exception("command %s could not be carried out", command_id)
            outcome = {"ok": False, "error": f"the runner failed: {type(exc).__name__}: {exc}"}
        self._mark(command_id, outcome)

    def _cancel_command(self, command: Mapping[str, Any]) -> dict[str, Any]:
        job_id = str(command["jobId"])
        reason = f"cancelled by {command.get('requestedBy') or 'an operator'}"
        if self.cancel(job_id, reason):
            return {"ok": True}
        with self._lock:
            ended = self._ended.get(job_id)
        if ended is JobState.CANCELLED:
            return {"ok": True}  # a repeated command: it was done before
        if ended is not None:
            return {"ok": False, "error": f"job already ended {ended.value} here"}
        # it may run in another instance of this service: theirs to cancel
        return {_DECLINE: "job not running here"}

    def _retry_command(self, command: Mapping[str, Any]) -> dict[str, Any]:
        spec = command["retry"]
        new_job_id = str(spec["newJobId"])
        job_type = str(spec["jobType"])
        with self._lock:
            seen = new_job_id in self._jobs or new_job_id in self._ended
            handler = self._handlers.get(job_type)
        if seen:
            return {"ok": True, "newJobId": new_job_id}  # a repeated command
        if handler is None:
            return {_DECLINE: f"no handler for job type {job_type!r} here"}
        pending = self._enqueue(
            job_type,
            handler,
            dict(spec.get("params") or {}),
            tenant_id=command.get("tenantId"),
            job_id=new_job_id,
            attempt=int(spec["attempt"]),
            retry_of=str(command["jobId"]),
        )
        if pending is None:
            return {_DECLINE: "the job runner is stopped or full"}
        return {"ok": True, "newJobId": pending.job_id}

    def _mark(self, command_id: str, outcome: dict[str, Any]) -> None:
        with self._lock:
            if len(self._unsent) >= _MAX_UNSENT:
                dropped, _ = self._unsent.popleft()
                _log.warning("mark of command %s dropped: too many unsent", dropped)
            self._unsent.append((command_id, outcome))
        self._send_unsent()

    def _send_unsent(self) -> None:
        control = self._control
        assert control is not None
        while True:
            with self._lock:
                if not self._unsent:
                    return
                command_id, outcome = self._unsent[0]
            try:
                if _DECLINE in outcome:
                    control.decline(command_id, outcome[_DECLINE])
                else:
                    control.done(command_id, outcome)
            except _ControlError as exc:
                if not exc.permanent:
                    return  # the next round tries again
                _log.warning("mark of command %s refused: %s", command_id, exc)
            with self._lock:
                if self._unsent and self._unsent[0][0] == command_id:
                    self._unsent.popleft()


async def _awaited(awaitable: Any) -> None:
    await awaitable
