"""Job reports left for the export thread to make into spans.

A Celery task reports twice (``running``, then ``succeeded``) from its signal
handlers, and in a prefork worker child those handlers run cold: between two tasks
the child sleeps on its pipe while the pool's main process and the other children run,
so every line of Python a handler touches costs about twice what it costs in a warm
loop (bench/celery_worker.py against bench/celery_probe.py). A ``JobReport`` is what
the handler has to keep: the job, its state and the time. The span's ids, name,
attributes and bytes are made by the export thread, a batch at a time, where the
same code runs warm.

A report starts a trace of its own and nobody asks for its span context (a run's
reports that form one trace go through ``DirectSpans``). ``SpanWire`` writes a
report's bytes from its fields; any other exporter gets the ``ReadableSpan`` of
``readable()`` (``LedgerSpanExporter`` makes it).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar, Final

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, Status, StatusCode, TraceFlags

from b2c_monitoring import contract as c
from b2c_monitoring.contract import JobState
from b2c_monitoring.processors.jobs import Scalar

if TYPE_CHECKING:
    from b2c_monitoring.probes._jobs import JobIdentity

_SAMPLED: Final = TraceFlags(TraceFlags.SAMPLED)
_UNSET: Final = Status(StatusCode.UNSET)


def report_attributes(
    job: JobIdentity,
    state: JobState,
    progress: int | None,
    metadata: Mapping[str, Scalar] | None,
) -> dict[str, Scalar]:
    """A job report's span attributes, as the contract names them."""
    attributes: dict[str, Scalar] = {
        c.JOB_ID: job.job_id,
        c.JOB_TYPE: job.job_type,
        c.JOB_STATE: state.value,
        c.JOB_ATTEMPT: job.attempt,
    }
    if job.retry_of is not None:
        attributes[c.JOB_RETRY_OF] = job.retry_of
    if job.tenant_id is not None:
        attributes[c.TENANT_ID] = job.tenant_id
    if progress is not None:
        attributes[c.JOB_PROGRESS] = progress
    if metadata:
        for key, value in metadata.items():
            attributes[c.JOB_METADATA_PREFIX + key] = value
    return attributes


class JobReport:
    """One job-state report, as its host's thread left it."""

    __slots__ = ("error", "job", "metadata", "progress", "resource", "scope", "state", "time")

    # The SDK's batch processor asks a finished span only whether it is sampled; the
    # probes sample every report (ALWAYS_ON). The ids sent are made at export.
    context: ClassVar[SpanContext] = SpanContext(1, 1, False, _SAMPLED)

    def __init__(
        self,
        job: JobIdentity,
        state: JobState,
        time: int,
        resource: Resource,
        scope: InstrumentationScope,
        metadata: Mapping[str, Scalar] | None = None,
        progress: int | None = None,
        error: str | None = None,
    ) -> None:
        self.job = job
        self.state = state
        self.time = time
        self.resource = resource
        self.scope = scope
        self.metadata = metadata
        self.progress = progress
        self.error = error

    @property
    def instrumentation_scope(self) -> InstrumentationScope:
        return self.scope

    @property
    def name(self) -> str:
        return f"job {self.job.job_type} {self.state.value}"

    def attributes(self) -> dict[str, Scalar]:
        return report_attributes(self.job, self.state, self.progress, self.metadata)

    def status(self) -> Status:
        return _UNSET if self.error is None else Status(StatusCode.ERROR, self.error)

    def readable(self) -> ReadableSpan:
        """The finished span of this report, with ids of its own."""
        bits = random.getrandbits
        context = SpanContext(bits(128) or 1, bits(64) or 1, False, _SAMPLED)
        return ReadableSpan(
            name=self.name,
            context=context,
            parent=None,
            resource=self.resource,
            attributes=self.attributes(),
            status=self.status(),
            start_time=self.time,
            end_time=self.time,
            instrumentation_scope=self.scope,
        )
