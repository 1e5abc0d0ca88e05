"""What became of the last export requests: for readiness and the retried-batches counter.

A batch the processor refused with a retryable status comes back: the collector's
exporter sends the same request again until it is stored. The digest of each
refused request is kept (bounded), so that its return is counted as a retry, by its
outcome; while nothing is pending no digest is computed at all.

Readiness: a processor whose last batch was refused, with none stored since, within
``window``, is not ready ("refusing every batch"), whatever its store check says.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from b2c_monitoring.receivers import pipeline_metrics as m

_PENDING_MAX = 10_000


@dataclass
class _Refusal:
    at: float
    reason: str
    message: str
    count: int


class BatchOutcomes:
    def __init__(self, window_s: float = 60.0) -> None:
        self._window_s = window_s
        self._lock = threading.Lock()
        self._pending: OrderedDict[bytes, None] = OrderedDict()
        self._refusing: _Refusal | None = None

    def arrived(self, data: bytes) -> bytes | None:
        """The request's digest if one is needed (some refused request is pending)."""
        with self._lock:
            pending = bool(self._pending)
        return hashlib.blake2b(data, digest_size=16).digest() if pending else None

    def stored(self, signal: str, digest: bytes | None) -> None:
        with self._lock:
            self._refusing = None
            if digest is not None and digest in self._pending:
                del self._pending[digest]
                m.RETRIED_BATCHES.labels(signal, "stored").inc()

    def refused(
        self, signal: str, data: bytes, digest: bytes | None, reason: str, message: str
    ) -> None:
        """A batch answered with a retryable status: expected back."""
        key = digest or hashlib.blake2b(data, digest_size=16).digest()
        with self._lock:
            if key in self._pending:
                m.RETRIED_BATCHES.labels(signal, "refused").inc()
                self._pending.move_to_end(key)
            else:
                self._pending[key] = None
                while len(self._pending) > _PENDING_MAX:
                    self._pending.popitem(last=False)
            previous = self._refusing
            count = previous.count + 1 if previous is not None else 1
            self._refusing = _Refusal(time.monotonic(), reason, message, count)

    def refusing(self) -> str | None:
        """Why the processor is refusing every batch now, or ``None``."""
        with self._lock:
            refusal = self._refusing
        if refusal is None or time.monotonic() - refusal.at > self._window_s:
            return None
        return (
            f"refusing every batch: the last {refusal.count} were not stored "
            f"({refusal.reason}: {refusal.message})"
        )
