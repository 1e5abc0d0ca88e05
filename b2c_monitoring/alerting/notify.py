"""Notification channels, what each receives, and the senders (the one network seam).

- ``webhook``: the payload as JSON, POSTed, signed with HMAC-SHA256 of
  ``"<timestamp>.<body>"`` under the channel's secret: headers ``X-B2C-Timestamp``
  (Unix seconds) and ``X-B2C-Signature: sha256=<hex>``. A receiver recomputes it
  (``sign``) and may refuse old timestamps, so a captured request cannot be replayed.
- ``slack``: a Slack-compatible incoming webhook body (``{"text": ...}``).
- ``email``: a plain-text mail over SMTP (STARTTLS and login when configured).

A sender raises ``DeliveryFailed``: retryable for a receiver that is down or answers
5xx / 429, permanent for one that refuses the request (other 4xx).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from enum import StrEnum
from typing import Any, Final, Protocol

import httpx

from b2c_monitoring.errors import DeliveryFailed

SIGNATURE_HEADER: Final = "X-B2C-Signature"
TIMESTAMP_HEADER: Final = "X-B2C-Timestamp"
_TIMEOUT_S: Final = 10.0


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


def _text(payload: Mapping[str, Any]) -> str:
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


class Sender(Protocol):
    def send(self, channel: Channel, payload: Mapping[str, Any], now_unix: int) -> None: ...


def _post(url: str, body: bytes, headers: dict[str, str]) -> None:
    try:
        response = httpx.post(url, content=body, headers=headers, timeout=_TIMEOUT_S)
    except httpx.HTTPError as exc:
        raise DeliveryFailed(f"{url} cannot be reached: {exc!r}") from exc
    if response.status_code >= 300:
        retryable = response.status_code >= 500 or response.status_code in (408, 429)
        raise DeliveryFailed(
            f"{url} answered {response.status_code}: {response.text[:200]}", retryable=retryable
        )


def _send_email(channel: Channel, payload: Mapping[str, Any]) -> None:
    cfg = channel.config
    message = EmailMessage()
    message["Subject"] = summary(payload)
    message["From"] = cfg["from"]
    message["To"] = ", ".join(cfg["to"])
    message.set_content(_text(payload))
    try:
        with smtplib.SMTP(cfg["host"], int(cfg["port"]), timeout=_TIMEOUT_S) as smtp:
            if cfg.get("starttls"):
                smtp.starttls(context=ssl.create_default_context())
            if cfg.get("username"):
                smtp.login(cfg["username"], channel.secret or "")
            smtp.send_message(message)
    except smtplib.SMTPResponseException as exc:
        # 5xx: the server refuses this message for good; 4xx: try later
        raise DeliveryFailed(
            f"SMTP {cfg['host']}:{cfg['port']} answered {exc.smtp_code}: {exc.smtp_error!r}",
            retryable=exc.smtp_code < 500,
        ) from exc
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryFailed(f"SMTP {cfg['host']}:{cfg['port']} failed: {exc!r}") from exc


class NetworkSender:
    """The real sender: HTTP for webhooks and Slack, SMTP for e-mail."""

    def send(self, channel: Channel, payload: Mapping[str, Any], now_unix: int) -> None:
        if channel.kind is ChannelKind.EMAIL:
            _send_email(channel, payload)
            return
        url = str(channel.config["url"])
        if channel.kind is ChannelKind.SLACK:
            body = json.dumps({"text": _text(payload)}).encode()
            _post(url, body, {"Content-Type": "application/json"})
            return
        body = json.dumps(payload, separators=(",", ":")).encode()
        timestamp = str(now_unix)
        headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: timestamp}
        if channel.secret:
            headers[SIGNATURE_HEADER] = sign(channel.secret, timestamp, body)
        _post(url, body, headers)
