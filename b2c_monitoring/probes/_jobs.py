"""Job runs as job-state reports: one short span per transition or progress step.

Every report of a run lives in one trace. The first report of a run (``pending``,
or ``running`` if there was none) starts a new trace; every later report descends
from it. So the trace has a real root that is exported like any other report, and a
run started in another process continues the trace from a W3C ``traceparent``.
A span that is current in the host when the run starts is linked, not made the
parent: two runs started from one request would otherwise share a trace.
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
import random
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, ParamSpec, TypeVar, overload

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    Status,
    StatusCode,
    TraceFlags,
    Tracer,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from b2c_monitoring import contract as c
from b2c_monitoring.contract import (
    MAX_JOB_TYPE_CHARS,
    MAX_METADATA_KEY_CHARS,
    MAX_METADATA_KEYS,
    MAX_TENANT_CHARS,
    JobState,
)
from b2c_monitoring.errors import JobCancelled
from b2c_monitoring.probes._export import BoundedSpanProcessor
from b2c_monitoring.probes._job_reports import JobReport, report_attributes
from b2c_monitoring.probes._logging import JOB_CONTEXT_ATTR, JobLogger
from b2c_monitoring.probes._report_handoff import ReportHandoff
from b2c_monitoring.processors.jobs import Scalar

P = ParamSpec("P")
R = TypeVar("R")

_log = logging.getLogger(__name__)
_PROPAGATOR: Final = TraceContextTextMapPropagator()
CANCEL_REASON_KEY: Final = "cancel_reason"
# the run whose ``with`` block the code is in: records made there (communication
# errors) carry its job id
_CURRENT: ContextVar[JobRun | None] = ContextVar("b2c_probes_current_job", default=None)


def current_job() -> JobRun | None:
    """The job run the calling code is inside of, in this thread or task."""
    return _CURRENT.get()


_SAMPLED: Final = TraceFlags(TraceFlags.SAMPLED)
_UNSET: Final = Status(StatusCode.UNSET)


class DirectSpans:
    """Job reports handed straight to the span processor as finished spans.

    A report is a span that starts and ends at once, with attributes we built ourselves
    from scalars: the SDK's ``start_span`` (sampler, span limits, attribute cleaning,
    locks, ``end``) was most of a report's cost, ~150 us of CPU, and a Celery task
    reports twice (bench/celery_probe.py). The batch processor and the exporters see the
    same ``ReadableSpan`` as before; the probes' tracer provider always samples
    (``ALWAYS_ON``), so no sampler is skipped. Reports with an exception (the SDK builds
    its event) or links keep the SDK's path."""

    def __init__(
        self, processor: BoundedSpanProcessor, resource: Resource, scope: InstrumentationScope
    ) -> None:
        self._processor = processor
        self._resource = resource
        self._scope = scope
        self._bits = random.getrandbits

    def put(
        self,
        job: JobIdentity,
        state: JobState,
        metadata: Mapping[str, Scalar] | None,
        progress: int | None,
        error: str | None,
    ) -> None:
        self._processor.put(self.report_of(job, state, time.time_ns(), metadata, progress, error))

    def report_of(
        self,
        job: JobIdentity,
        state: JobState,
        time_ns: int,
        metadata: Mapping[str, Scalar] | None = None,
        progress: int | None = None,
        error: str | None = None,
    ) -> JobReport:
        return JobReport(
            job, state, time_ns, self._resource, self._scope, metadata, progress, error
        )

    def report(
        self, name: str, parent: Context, attributes: dict[str, Scalar], status: Status
    ) -> SpanContext:
        parent_span = trace.get_current_span(parent).get_span_context()
        if parent_span.is_valid:
            trace_id, parent_context = parent_span.trace_id, parent_span
        else:
            trace_id, parent_context = self._bits(128) or 1, None
        context = SpanContext(trace_id, self._bits(64) or 1, False, _SAMPLED)
        now = time.time_ns()
        self._processor.on_end(
            ReadableSpan(
                name=name,
                context=context,
                parent=parent_context,
                resource=self._resource,
                attributes=attributes,
                status=status,
                start_time=now,
                end_time=now,
                instrumentation_scope=self._scope,
            )
        )
        return context


@dataclass(frozen=True)
class Emitter:
    """What a job run needs from its ``Probes``."""

    tracer: Tracer
    job_log: logging.Logger
    is_open: Callable[[], bool]
    direct: DirectSpans
    handoff: ReportHandoff


@dataclass(frozen=True)
class PendingJob:
    """A job reported ``pending``; start it with ``Probes.start_pending``, or in another
    process with ``Probes.job_run(..., job_id=, traceparent=)`` from these fields."""

    job_id: str
    job_type: str
    tenant_id: str | None = None
    attempt: int = 1
    retry_of: str | None = None
    metadata: Mapping[str, Scalar] = field(default_factory=dict)
    traceparent: str | None = None


@dataclass(frozen=True)
class JobIdentity:
    job_id: str
    job_type: str
    tenant_id: str | None
    attempt: int
    retry_of: str | None

    @classmethod
    def checked(
        cls,
        job_type: str,
        job_id: str | None,
        tenant_id: str | None,
        attempt: int,
        retry_of: str | None,
    ) -> JobIdentity:
        """Argument errors are the caller's bug and surface at once; a report the
        receiver would reject is lost silently, which is worse."""
        _check_text("job_type", job_type, MAX_JOB_TYPE_CHARS)
        if job_id is not None:
            _check_text("job_id", job_id, c.JOB_ID_MAX_CHARS)
        if tenant_id is not None:
            _check_text("tenant_id", tenant_id, MAX_TENANT_CHARS)
        if retry_of is not None:
            _check_text("retry_of", retry_of, c.JOB_ID_MAX_CHARS)
        if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
            raise ValueError(f"attempt must be an int >= 1, got {attempt!r}")
        return cls(job_id or str(uuid.uuid4()), job_type, tenant_id, attempt, retry_of)


def _check_text(name: str, value: object, limit: int) -> None:
    if not isinstance(value, str) or not value.strip() or len(value) > limit or "\x00" in value:
        raise ValueError(f"{name} must be a non-empty string of at most {limit} characters")


def clean_metadata(values: Mapping[str, object], into: dict[str, Scalar]) -> bool:
    """Merge ``values`` into ``into`` within the receiver's limits; True if it changed.

    Metadata comes from the host's data (record counts, file names): a bad value
    is coerced or left out with a warning rather than failing the job.
    """
    changed = False
    for raw_key, raw_value in values.items():
        key = str(raw_key)
        if not key or len(key) > MAX_METADATA_KEY_CHARS:
            _log.warning("job metadata key %.40r left out: empty or too long", key)
            continue
        if raw_value is None:
            continue
        value: Scalar = (
            raw_value if isinstance(raw_value, str | bool | int | float) else str(raw_value)
        )
        if key in into:
            old = into[key]
            if old == value and type(old) is type(value):
                continue
        elif len(into) >= MAX_METADATA_KEYS:
            _log.warning("job metadata key %r left out: at most %d keys", key, MAX_METADATA_KEYS)
            continue
        into[key] = value
        changed = True
    return changed


def _error_type(exc: BaseException) -> str:
    kind = type(exc)
    return (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )


def emit_report(
    emitter: Emitter,
    job: JobIdentity,
    state: JobState,
    *,
    parent: Context,
    progress: int | None = None,
    metadata: Mapping[str, Scalar] | None = None,
    error: str | None = None,
    exception: BaseException | None = None,
    links: tuple[Link, ...] = (),
) -> SpanContext | None:
    """Send one report; its span context, or None if nothing was sent."""
    if not emitter.is_open():
        return None
    attributes = report_attributes(job, state, progress, metadata)
    if exception is not None:
        attributes[c.ERROR_TYPE] = _error_type(exception)
    try:
        name = f"job {job.job_type} {state.value}"
        if exception is None and not links:
            status = _UNSET if error is None else Status(StatusCode.ERROR, error)
            return emitter.direct.report(name, parent, attributes, status)
        span = emitter.tracer.start_span(
            name,
            context=parent,
            attributes=attributes,
            links=links,
            # the report is built here; the SDK must not add an event of its own
            record_exception=False,
            set_status_on_exception=False,
        )
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, error))
        if exception is not None:
            span.record_exception(exception, escaped=True)
        span.end()
        return span.get_span_context()
    except Exception:
        # the host's call is the edge: telemetry never fails the job it reports on
        _log.exception("job report %s %s not sent", job.job_id, state.value)
        return None


def send_report(
    emitter: Emitter,
    job: JobIdentity,
    state: JobState,
    *,
    metadata: Mapping[str, Scalar] | None = None,
    progress: int | None = None,
    error: str | None = None,
) -> None:
    """Send a report that starts a trace of its own and whose span context nobody
    needs (a Celery task's): the export thread makes its span (``JobReport``).
    ``metadata`` is kept as given, so it must not change afterwards."""
    if not emitter.is_open():
        return
    try:
        emitter.direct.put(job, state, metadata, progress, error)
    except Exception:
        # the host's call is the edge: telemetry never fails the job it reports on
        _log.exception("job report %s %s not sent", job.job_id, state.value)


def trace_context(span_context: SpanContext | None) -> Context:
    if span_context is None or not span_context.is_valid:
        return Context()
    return trace.set_span_in_context(NonRecordingSpan(span_context), Context())


def traceparent_of(span_context: SpanContext | None) -> str | None:
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=trace_context(span_context))
    return carrier.get("traceparent")


def context_from_traceparent(traceparent: str | None) -> Context:
    if not traceparent:
        return Context()
    return _PROPAGATOR.extract({"traceparent": traceparent}, context=Context())


def _host_span_link() -> tuple[Link, ...]:
    current = trace.get_current_span().get_span_context()
    return (Link(current),) if current.is_valid else ()


class JobRun:
    """The handle of one running job: progress, metadata, cancellation, its log.

    Safe to use from several threads. After the run has ended, calls are ignored.
    """

    def __init__(
        self,
        emitter: Emitter,
        job: JobIdentity,
        metadata: Mapping[str, Scalar],
        parent: Context,
    ) -> None:
        self._emitter = emitter
        self._job = job
        self._lock = threading.Lock()
        self._metadata: dict[str, Scalar] = dict(metadata)
        self._progress: int | None = None
        self._state = JobState.PENDING
        self._cancel = threading.Event()
        self._cancel_reason: str | None = None
        self._failure: str | None = None
        self._error: str | None = None
        # the parent of the next report: before the start, that of a pending report
        self._context = parent
        self._logger: JobLogger | None = None

    @property
    def job_id(self) -> str:
        return self._job.job_id

    @property
    def job_type(self) -> str:
        return self._job.job_type

    @property
    def tenant_id(self) -> str | None:
        return self._job.tenant_id

    @property
    def attempt(self) -> int:
        return self._job.attempt

    @property
    def state(self) -> JobState:
        """``running`` while inside the run; its final state after it."""
        return self._state

    @property
    def error(self) -> str | None:
        """The error message of a ``failed`` run."""
        return self._error

    @property
    def progress_percent(self) -> int | None:
        return self._progress

    @property
    def context(self) -> Context:
        """The run's trace: pass as ``context=`` to put the host's own spans in it."""
        return self._context

    @property
    def traceparent(self) -> str | None:
        return traceparent_of(trace.get_current_span(self._context).get_span_context())

    @property
    def logger(self) -> JobLogger:
        """The run's execution log: records carry ``scheduler.job.id`` and are exported
        whatever the host's logging configuration; they also propagate to the
        ``b2c_monitoring.jobs`` logger for the host's own handlers."""
        with self._lock:
            if self._logger is None:
                attributes: dict[str, object] = {
                    c.JOB_ID: self._job.job_id,
                    c.JOB_TYPE: self._job.job_type,
                    JOB_CONTEXT_ATTR: self._context,
                }
                if self._job.tenant_id is not None:
                    attributes[c.TENANT_ID] = self._job.tenant_id
                self._logger = JobLogger(self._emitter.job_log, attributes)
            return self._logger

    def progress(self, percent: float, **metadata: object) -> None:
        """Report progress (clamped to 0..100; never lower than reported before)."""
        if (
            isinstance(percent, bool)
            or not isinstance(percent, int | float)
            or not math.isfinite(percent)
        ):
            _log.warning("job %s: progress %r ignored, not a finite number", self.job_id, percent)
            return
        with self._lock:
            if self._state is not JobState.RUNNING:
                return
            step = min(100, max(0, round(percent)))
            new = max(step, self._progress or 0)
            changed = clean_metadata(metadata, self._metadata) or new != self._progress
            self._progress = new
            if not changed:
                return
            self._report(JobState.RUNNING)

    def set_metadata(self, key: str, value: object) -> None:
        """Set ``metadata[key]``; sent with the next report (the final one at the latest)."""
        with self._lock:
            if not self._state.terminal:
                clean_metadata({key: value}, self._metadata)

    def cancel(self, reason: str | None = None) -> None:
        """Ask the run to stop; the job's code checks ``cancelled()`` and returns, and
        the run ends ``cancelled``. May be called from any thread."""
        with self._lock:
            if self._cancel_reason is None and reason:
                self._cancel_reason = reason
        self._cancel.set()

    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check_cancelled(self) -> None:
        """Raise ``JobCancelled`` if the run was asked to stop: call it between steps."""
        if self._cancel.is_set():
            raise JobCancelled(self._cancel_reason or "cancelled")

    def fail(self, message: str) -> None:
        """End the run ``failed`` with ``message`` although no exception escapes it."""
        with self._lock:
            if self._failure is None:
                self._failure = message or "failed"

    # called by the run's context manager

    def _start(self, links: tuple[Link, ...]) -> None:
        with self._lock:
            self._state = JobState.RUNNING
            sent = self._report(JobState.RUNNING, links=links)
            if sent is not None and sent.is_valid:
                self._context = trace_context(sent)

    def _finish(self, exc: BaseException | None) -> None:
        with self._lock:
            if self._state is not JobState.RUNNING:
                return
            exception: BaseException | None = None
            if (
                self._cancel.is_set()
                or isinstance(exc, JobCancelled)
                or (exc is not None and not isinstance(exc, Exception))
            ):
                # cancelled on request (whatever the code raised on its way out), or
                # the task was cancelled / the process interrupted under it
                state = JobState.CANCELLED
                reason = self._cancel_reason
                if reason is None and exc is not None:
                    reason = (isinstance(exc, JobCancelled) and str(exc)) or _error_type(exc)
                if reason:
                    clean_metadata({CANCEL_REASON_KEY: reason}, self._metadata)
            elif exc is not None:
                state, exception = JobState.FAILED, exc
                self._error = str(exc) or _error_type(exc)
            elif self._failure is not None:
                state, self._error = JobState.FAILED, self._failure
            else:
                state, self._progress = JobState.SUCCEEDED, 100
            self._state = state
            self._report(state, error=self._error, exception=exception)

    def _report(
        self,
        state: JobState,
        *,
        error: str | None = None,
        exception: BaseException | None = None,
        links: tuple[Link, ...] = (),
    ) -> SpanContext | None:
        return emit_report(
            self._emitter,
            self._job,
            state,
            parent=self._context,
            progress=self._progress,
            metadata=self._metadata,
            error=error,
            exception=exception,
            links=links,
        )


class JobRunContext:
    """``with`` / ``async with``: reports ``running`` on enter, the outcome on exit.

    An exception of the job is reported ``failed`` and propagates unchanged; a
    ``JobCancelled`` ends the run ``cancelled`` and stops there.
    """

    def __init__(
        self, emitter: Emitter, job: JobIdentity, metadata: Mapping[str, Scalar], parent: Context
    ) -> None:
        self._run = JobRun(emitter, job, metadata, parent)
        self._entered = False
        self._token: Token[JobRun | None] | None = None

    @property
    def job_id(self) -> str:
        return self._run.job_id

    def __enter__(self) -> JobRun:
        if self._entered:
            raise RuntimeError("a job run context can be entered once; call job_run() again")
        self._entered = True
        self._run._start(_host_span_link())
        self._token = _CURRENT.set(self._run)
        return self._run

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if self._token is not None:
            try:
                _CURRENT.reset(self._token)
            except ValueError:  # left in another context than it was entered in
                _CURRENT.set(None)
            self._token = None
        self._run._finish(exc)
        return isinstance(exc, JobCancelled)

    async def __aenter__(self) -> JobRun:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        return self.__exit__(exc_type, exc, tb)


def _wants_job(fn: Callable[..., object]) -> bool:
    try:
        return "job" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


class MonitoredJob:
    """The decorator ``Probes.monitored_job`` returns; each call of the function is one
    job run. A function with a ``job`` parameter receives the ``JobRun`` there
    (declare it ``job: JobRun | None = None`` so callers need not pass it)."""

    def __init__(self, start: Callable[[], JobRunContext]) -> None:
        self._start = start

    @overload
    def __call__(
        self, fn: Callable[P, Coroutine[Any, Any, R]]
    ) -> Callable[P, Coroutine[Any, Any, R]]: ...

    @overload
    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]: ...

    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        wants_job = _wants_job(fn)
        start = self._start

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def run_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                async with start() as job:
                    if wants_job:
                        kwargs["job"] = job
                    return await fn(*args, **kwargs)

            return run_async

        @functools.wraps(fn)
        def run(*args: P.args, **kwargs: P.kwargs) -> Any:
            with start() as job:
                if wants_job:
                    kwargs["job"] = job
                return fn(*args, **kwargs)

        return run
