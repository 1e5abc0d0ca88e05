"""Python ``logging`` records into the OTel LoggerProvider.

The SDK ships a ``LoggingHandler``, but in 1.45 it is deprecated (a
``DeprecationWarning`` on every construction) in favour of a separate
instrumentation package, so the few lines it takes live here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, MutableMapping
from typing import Any, Final

from opentelemetry._logs import Logger as OtelLogger
from opentelemetry._logs import SeverityNumber
from opentelemetry.context import Context
from opentelemetry.util.types import AnyValue

# Set on records of a job's logger: the job's trace, and the mark that lets the
# host-wide handler (``Probes.instrument_logging``) skip what is already exported.
JOB_CONTEXT_ATTR: Final = "_b2c_probes_job_context"

# Everything a bare LogRecord carries; whatever else is on a record came from ``extra``.
_STANDARD_ATTRS: Final = frozenset(
    {*vars(logging.LogRecord("", 0, "", 0, "", None, None)), "message", "asctime", "taskName"}
)

# Loggers whose records must never be exported: the SDK and this library log about
# failing exports, and exporting those would feed the failure its own reports.
_NEVER_EXPORTED: Final = ("opentelemetry", "grpc", "b2c_monitoring.probes")


def _export_path(name: str) -> bool:
    return any(name == root or name.startswith(root + ".") for root in _NEVER_EXPORTED)


_SEVERITIES: Final = (
    (logging.CRITICAL, SeverityNumber.FATAL, "FATAL"),
    (logging.ERROR, SeverityNumber.ERROR, "ERROR"),
    (logging.WARNING, SeverityNumber.WARN, "WARN"),
    (logging.INFO, SeverityNumber.INFO, "INFO"),
    (logging.DEBUG, SeverityNumber.DEBUG, "DEBUG"),
)


def _severity(levelno: int) -> tuple[SeverityNumber, str]:
    for floor, number, text in _SEVERITIES:
        if levelno >= floor:
            return number, text
    return SeverityNumber.TRACE, "TRACE"


def _attribute(value: object) -> AnyValue:
    if isinstance(value, str | bool | int | float):
        return value
    return str(value)


def _attributes(record: logging.LogRecord) -> dict[str, AnyValue]:
    return {
        key: _attribute(value)
        for key, value in vars(record).items()
        if key not in _STANDARD_ATTRS and not key.startswith("_") and value is not None
    }


class OtelLogHandler(logging.Handler):
    """Emits each record to an OTel logger; with ``host_wide`` it skips job records
    (already exported by the job's own logger) and the export path's own loggers."""

    def __init__(self, logger: OtelLogger, *, level: int = logging.NOTSET, host_wide: bool) -> None:
        super().__init__(level)
        self._logger = logger
        self._host_wide = host_wide

    def filter(self, record: logging.LogRecord) -> bool:
        if self._host_wide and (hasattr(record, JOB_CONTEXT_ATTR) or _export_path(record.name)):
            return False
        return bool(super().filter(record))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            number, text = _severity(record.levelno)
            context = getattr(record, JOB_CONTEXT_ATTR, None)
            exception = record.exc_info[1] if record.exc_info else None
            self._logger.emit(
                timestamp=int(record.created * 1e9),
                context=context if isinstance(context, Context) else None,
                severity_number=number,
                severity_text=text,
                body=record.getMessage(),
                attributes=_attributes(record),
                exception=exception,
            )
        except Exception:
            # logging's own contract: a handler reports its failure and never raises
            self.handleError(record)


class JobLogger(logging.LoggerAdapter[logging.Logger]):
    """The execution log of one job run: every record carries ``scheduler.job.id``.

    Use it like a ``logging.Logger``; ``extra`` given per call is kept, the job's
    own attributes win over it.
    """

    def __init__(self, logger: logging.Logger, attributes: Mapping[str, object]) -> None:
        super().__init__(logger, dict(attributes))

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**(kwargs.get("extra") or {}), **(self.extra or {})}
        return msg, kwargs
