"""Failed calls to connected services as ``connected_service.communication_error`` records.

``Probes.record_communication_error`` records one failed call in one line;
``Probes.instrument_httpx`` and ``Probes.instrument_requests`` do it for every failed
call of an ``httpx`` client or a ``requests`` session: an exception (connect error,
timeout, ...) or an answer with a status at or above ``min_status`` (500 by default).
The call itself is never changed: its exception propagates and its response is
returned as it came.

What leaves the process is bounded and clean: credentials in the URL are removed (and
everything else redacted as the processor would), request and response bodies are
excerpts of at most ``MAX_BODY_CHARS`` characters, redacted. Inside a job run the
record carries the job's ``scheduler.job.id`` (and tenant), so the error shows in the
job's log and the error patterns name the jobs it hit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit, urlunsplit

import httpx
from opentelemetry.util.types import AnyValue

from b2c_monitoring import contract as c
from b2c_monitoring.probes._jobs import current_job
from b2c_monitoring.redaction import redact

if TYPE_CHECKING:
    import requests

MAX_BODY_CHARS: Final = 2048
MAX_MESSAGE_CHARS: Final = 4096
DEFAULT_MIN_STATUS: Final = 500
# a response body larger than this is not read to make an excerpt of it
_MAX_READ_BYTES: Final = 1024 * 1024
METHOD: Final = "http.request.method"
STATUS_CODE: Final = "http.response.status_code"
REQUEST_BODY: Final = "communication.request.body"
RESPONSE_BODY: Final = "communication.response.body"

Emit = Callable[[str, dict[str, AnyValue]], None]

_log = logging.getLogger(__name__)


def clean_url(url: str) -> str:
    """``url`` without user and password, and with secrets in it redacted."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact(url)
    if parts.hostname is not None and ("@" in parts.netloc):
        host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        netloc = host if parts.port is None else f"{host}:{parts.port}"
        parts = parts._replace(netloc=netloc)
    return redact(urlunsplit(parts))


def _bounded(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def body_excerpt(body: str | bytes | None) -> str | None:
    """The start of a body, decoded, redacted, at most ``MAX_BODY_CHARS`` characters."""
    if body is None:
        return None
    if isinstance(body, bytes):
        # decode a little more than is kept: a multi-byte character may be cut
        body = body[: MAX_BODY_CHARS * 4].decode("utf-8", errors="replace")
    # redact before cutting, so a secret cut in half is still recognised
    return _bounded(redact(body[: MAX_BODY_CHARS * 2]), MAX_BODY_CHARS) or None


def error_type_of(error: BaseException | str | None, status: int | None) -> str | None:
    """OpenTelemetry's ``error.type``: the exception's class, else the status code."""
    if isinstance(error, BaseException):
        kind = type(error)
        return (
            kind.__qualname__
            if kind.__module__ == "builtins"
            else f"{kind.__module__}.{kind.__qualname__}"
        )
    if isinstance(error, str) and error and status is None:
        return None
    return str(status) if status is not None else None


def communication_error_record(
    service: str,
    *,
    method: str | None = None,
    url: str | None = None,
    status: int | None = None,
    error: BaseException | str | None = None,
    duration: float | None = None,
    request_body: str | bytes | None = None,
    response_body: str | bytes | None = None,
    server_address: str | None = None,
    error_type: str | None = None,
    job_id: str | None = None,
    tenant_id: str | None = None,
) -> tuple[str, dict[str, AnyValue]]:
    """Body and attributes of one communication error (pure)."""
    attributes: dict[str, AnyValue] = {
        c.EVENT_NAME: c.COMMUNICATION_ERROR_EVENT,
        c.CONNECTED_SERVICE_NAME: service,
    }
    method = method.upper() if method else None
    cleaned = clean_url(url) if url else None
    if method:
        attributes[METHOD] = method
    if cleaned:
        attributes[c.URL_FULL] = cleaned
        if server_address is None:
            try:
                server_address = urlsplit(cleaned).hostname
            except ValueError:
                server_address = None
    if server_address:
        attributes[c.SERVER_ADDRESS] = server_address
    if status is not None:
        attributes[STATUS_CODE] = int(status)
    kind = error_type or error_type_of(error, status)
    if kind:
        attributes[c.ERROR_TYPE] = kind
    if isinstance(error, BaseException):
        message = str(error) or kind or "failed"
    elif error:
        message = error
    elif status is not None:
        message = f"answered {status}"
    else:
        message = "failed"
    message = _bounded(redact(message), MAX_MESSAGE_CHARS)
    attributes[c.EXCEPTION_MESSAGE] = message
    if duration is not None and duration >= 0:
        attributes[c.COMMUNICATION_DURATION] = float(duration)
    for name, body in ((REQUEST_BODY, request_body), (RESPONSE_BODY, response_body)):
        text = body_excerpt(body)
        if text:
            attributes[name] = text
    if job_id is not None:
        attributes[c.JOB_ID] = job_id
    if tenant_id is not None:
        attributes[c.TENANT_ID] = tenant_id
    call = " ".join(part for part in (method, cleaned) if part)
    summary = f"{service}: {call} failed: {message}" if call else f"{service}: {message}"
    return summary, attributes


def record(emit: Emit, service: str, **fields: Any) -> None:
    """Build and emit one record; never raises into the caller (its call already failed)."""
    try:
        job = current_job()
        if job is not None:
            fields.setdefault("job_id", job.job_id)
            fields.setdefault("tenant_id", job.tenant_id)
        emit(*communication_error_record(service, **fields))
    except Exception:
        _log.exception("could not record a communication error of %s", service)


# --------------------------------------------------------------------------------------
# httpx


def _request_content(request: httpx.Request) -> bytes | None:
    try:
        return request.content
    except httpx.RequestNotRead:  # a streamed upload: nothing to show
        return None


def _small(response: httpx.Response) -> bool:
    length = response.headers.get("content-length")
    return length is not None and length.isdigit() and int(length) <= _MAX_READ_BYTES


class _Recorder:
    def __init__(self, emit: Emit, service: str, min_status: int) -> None:
        self.emit = emit
        self.service = service
        self.min_status = min_status

    def failed(self, request: httpx.Request, started: float, exc: BaseException) -> None:
        record(
            self.emit,
            self.service,
            method=request.method,
            url=str(request.url),
            error=exc,
            duration=time.perf_counter() - started,
            request_body=_request_content(request),
        )

    def answered(
        self, request: httpx.Request, response: httpx.Response, started: float, body: bytes | None
    ) -> None:
        record(
            self.emit,
            self.service,
            method=request.method,
            url=str(request.url),
            status=response.status_code,
            duration=time.perf_counter() - started,
            request_body=_request_content(request),
            response_body=body,
        )


class CommunicationErrorTransport(httpx.BaseTransport):
    """An ``httpx`` transport that records the failed calls of the one it wraps."""

    def __init__(self, inner: httpx.BaseTransport, recorder: _Recorder) -> None:
        self._inner = inner
        self._recorder = recorder

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        started = time.perf_counter()
        try:
            response = self._inner.handle_request(request)
        except Exception as exc:
            self._recorder.failed(request, started, exc)
            raise
        if response.status_code >= self._recorder.min_status:
            body = None
            if _small(response):
                try:
                    body = response.read()
                except Exception as exc:
                    self._recorder.failed(request, started, exc)
                    raise
            self._recorder.answered(request, response, started, body)
        return response

    def close(self) -> None:
        self._inner.close()


class AsyncCommunicationErrorTransport(httpx.AsyncBaseTransport):
    """The same for an ``httpx.AsyncClient``."""

    def __init__(self, inner: httpx.AsyncBaseTransport, recorder: _Recorder) -> None:
        self._inner = inner
        self._recorder = recorder

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        started = time.perf_counter()
        try:
            response = await self._inner.handle_async_request(request)
        except Exception as exc:
            self._recorder.failed(request, started, exc)
            raise
        if response.status_code >= self._recorder.min_status:
            body = None
            if _small(response):
                try:
                    body = await response.aread()
                except Exception as exc:
                    self._recorder.failed(request, started, exc)
                    raise
            self._recorder.answered(request, response, started, body)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def instrument_httpx(
    client: httpx.Client | httpx.AsyncClient, emit: Emit, service: str, min_status: int
) -> None:
    """Wrap the client's transport and its mounts' (``httpx`` keeps them in ``_transport``
    and ``_mounts``, unchanged since 0.18); wrapping twice is harmless."""
    recorder = _Recorder(emit, service, min_status)
    if isinstance(client, httpx.AsyncClient):
        transport = client._transport
        if not isinstance(transport, AsyncCommunicationErrorTransport):
            client._transport = AsyncCommunicationErrorTransport(transport, recorder)
        for pattern, mounted in list(client._mounts.items()):
            if mounted is not None and not isinstance(mounted, AsyncCommunicationErrorTransport):
                client._mounts[pattern] = AsyncCommunicationErrorTransport(mounted, recorder)
        return
    sync_transport = client._transport
    if not isinstance(sync_transport, CommunicationErrorTransport):
        client._transport = CommunicationErrorTransport(sync_transport, recorder)
    for pattern, mounted_sync in list(client._mounts.items()):
        if mounted_sync is not None and not isinstance(mounted_sync, CommunicationErrorTransport):
            client._mounts[pattern] = CommunicationErrorTransport(mounted_sync, recorder)


# --------------------------------------------------------------------------------------
# requests


def instrument_requests(
    session: requests.Session, emit: Emit, service: str, min_status: int
) -> None:
    """Wrap the ``send`` of every adapter mounted on the session."""
    for adapter in session.adapters.values():
        if getattr(adapter, "_b2c_recording", False):
            continue
        send = adapter.send

        def recording_send(
            request: requests.PreparedRequest,
            *args: Any,
            _send: Callable[..., requests.Response] = send,
            **kwargs: Any,
        ) -> requests.Response:
            started = time.perf_counter()
            try:
                response = _send(request, *args, **kwargs)
            except Exception as exc:
                record(
                    emit,
                    service,
                    method=request.method,
                    url=request.url,
                    error=exc,
                    duration=time.perf_counter() - started,
                    request_body=_prepared_body(request),
                )
                raise
            if response.status_code >= min_status:
                record(
                    emit,
                    service,
                    method=request.method,
                    url=request.url,
                    status=response.status_code,
                    duration=time.perf_counter() - started,
                    request_body=_prepared_body(request),
                    response_body=_requests_body(response, kwargs),
                )
            return response

        adapter.send = recording_send  # type: ignore[method-assign]
        adapter._b2c_recording = True  # type: ignore[attr-defined]


def _prepared_body(request: requests.PreparedRequest) -> str | bytes | None:
    body = request.body
    return body if isinstance(body, str | bytes) else None


def _requests_body(response: requests.Response, kwargs: Mapping[str, Any]) -> bytes | None:
    # a streamed response is the caller's to read: reading it here would consume it
    if kwargs.get("stream"):
        return None
    try:
        content: bytes = response.content
    except Exception:
        return None
    return content
