"""Notification channels and what each receives (pure: the senders are ``senders``).

- ``webhook``: the payload as JSON, POSTed, signed with HMAC-SHA256 of
  ``"<timestamp>.<body>"`` under the channel's secret: headers ``X-B2C-Timestamp``
  (Unix seconds) and ``X-B2C-Signature: sha256=<hex>``. A receiver recomputes it
  (``sign``) and may refuse old timestamps, so a captured request cannot be replayed.
- ``slack``: a Slack-compatible incoming webhook body (``{"text": ...}``).
- ``email``: a plain-text mail over SMTP (STARTTLS and login when configured).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any, Final

SIGNATURE_HEADER: Final = "X-B2C-Signature"
TIMESTAMP_HEADER: Final = "X-B2C-Timestamp"


class ChannelKind(StrEnum):
    WEBHOOK = "webhook"
    SLACK = "slack"
    EMAIL = "email"


@dataclass(frozen=True)
class Channel:
    id: str
    name: str
    kind: ChannelKind
    config: Mapping[str, Any]  # webhook/slack: url; email: host, port, from, to, username, starttls
    secret: str | None  # webhook: the HMAC key; email: the SMTP password


def backoff(attempt: int, base: timedelta, cap: timedelta) -> timedelta:
    """The wait after failed attempt number ``attempt`` (1, 2, ...): doubling, capped."""
    wait: timedelta = min(base * (2 ** min(attempt - 1, 30)), cap)
    return wait


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def summary(payload: Mapping[str, Any]) -> str:
    """One line a person reads: ``[FIRED critical] enventa-erp is down (tenant acme)``."""
    alert = payload["alert"]
    return (
        f"[{str(payload['event']).upper()} {alert['severity']}] {alert['title']} "
        f"(tenant {alert['tenantId']}, alert {alert['id']})"
    )


def text(payload: Mapping[str, Any]) -> str:
    alert = payload["alert"]
    lines = [
        summary(payload),
        "",
        f"kind: {alert['kind']}",
        f"state: {alert['state']}",
        f"started: {alert['startedAt']}",
    ]
    if alert.get("serviceName"):
        lines.append(f"service: {alert['serviceName']}")
    jobs = alert.get("details", {}).get("affectedJobs") or []
    if jobs:
        lines.append(f"affected jobs ({len(jobs)}):")
        lines += [
            f"  {j['jobId']} {j.get('jobType') or ''} failed {j['failedAt']}" for j in jobs[:50]
        ]
    return "\n".join(lines) + "\n"
