"""The one exception hierarchy of b2c-monitoring.

Third-party errors (psycopg, grpc, elasticsearch, httpx) are translated into these
at one boundary each (``storage/db.py``, ``cli/client.py``); domain errors become
gRPC status codes in ``receivers/`` and problem details in ``api/``, nowhere else.

    B2CError
    ├── ConfigError ............ settings that cannot work; raised at start
    ├── InvalidReport .......... one telemetry item breaks the contract (permanent)
    ├── InvalidValue ........... a value given to us breaks a rule; ``field`` names it
    │   ├── InvalidSchedule .... a cron expression or time zone that cannot work
    │   ├── InvalidCursor ...... a page cursor we did not hand out
    │   ├── ProtocolError ...... a hub client's message breaks the SignalR JSON protocol
    │   └── MethodRefused ...... a hub method refused its arguments (the completion says why)
    ├── StorageError
    │   ├── StorageUnavailable . the store cannot be reached or must be retried
    │   └── StorageRejected .... the store refused the data itself (permanent)
    ├── NotFound ............... no such record in the caller's tenants
    ├── Conflict ............... the record's state forbids the action
    ├── AuthError
    │   ├── Unauthenticated .... no token, or a token that is unknown or revoked
    │   └── Forbidden .......... the token's role does not allow the action
    ├── StackError ............. a part of the local stack did not install or start
    ├── QueryFailed ............ a dashboard panel's query cannot run (b2c dashboards check --live)
    ├── JobCancelled ........... an operator cancelled the job run (probes: ends it cancelled)
    ├── DeliveryFailed ......... a notification did not reach its receiver (retried unless permanent)
    └── ApiError ............... the admin API answered with a problem (CLI and job runner side)
        ├── ApiUnreachable ..... the admin API could not be reached
        │   ├── ApiTimeout ..... it did not answer in time
        │   └── ApiUntrusted ... its TLS certificate is not one the client trusts
        └── ApiGarbled ......... what came back is not the admin API's answer (not JSON, ...)

``retryable`` is the policy: the receivers answer a retryable gRPC status for a
retryable error, so the collector keeps the batch, and a permanent one otherwise.
"""

from __future__ import annotations

from typing import Any


class B2CError(Exception):
    retryable: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(B2CError):
    pass


class InvalidReport(B2CError):
    """``reason`` is a short stable word for the rejected-by-reason counter."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class InvalidValue(B2CError):
    """``field``: the value's name as the caller spelt it (``timezone``, ``cursor``)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class InvalidSchedule(InvalidValue):
    """``field``: ``cron`` or ``timezone``."""


class InvalidCursor(InvalidValue):
    def __init__(self, message: str) -> None:
        super().__init__(message, field="cursor")


class ProtocolError(InvalidValue):
    pass


class MethodRefused(InvalidValue):
    pass


class StorageError(B2CError):
    pass


class StorageUnavailable(StorageError):
    retryable = True


class StorageRejected(StorageError):
    pass


class NotFound(B2CError):
    pass


class Conflict(B2CError):
    pass


class AuthError(B2CError):
    pass


class Unauthenticated(AuthError):
    pass


class Forbidden(AuthError):
    pass


class StackError(B2CError):
    pass


class QueryFailed(B2CError):
    pass


class JobCancelled(B2CError):
    """Raised in a job's own code (``JobRun.check_cancelled``); the message is the reason."""


class DeliveryFailed(B2CError):
    """``retryable``: the receiver may take it later (down, 5xx); else it never will."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class ApiError(B2CError):
    """A problem document (RFC 9457) returned by the admin API; ``hint`` is what the
    command that asked suggests doing next, where it knows better than the status."""

    def __init__(self, message: str, *, status: int, problem: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.problem = problem or {}
        self.hint: str | None = None


class ApiUnreachable(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(message, status=0)


class ApiTimeout(ApiUnreachable):
    pass


class ApiGarbled(ApiError):
    """``hint`` says what to check (usually the URL: something else answers there)."""

    def __init__(self, message: str, *, status: int, hint: str) -> None:
        super().__init__(message, status=status)
        self.hint = hint


class ApiUntrusted(ApiUnreachable):
    """``hint`` says which CA to pass."""

    def __init__(self, message: str, *, hint: str) -> None:
        super().__init__(message)
        self.hint = hint
