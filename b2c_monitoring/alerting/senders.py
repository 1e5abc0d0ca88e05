"""The senders of notifications: the one network seam of alerting.

A sender raises ``DeliveryFailed``: retryable for a receiver that is down or answers
5xx / 429, permanent for one that refuses the request (other 4xx). What each channel
receives is ``channels``.
"""

from __future__ import annotations

import json
import smtplib
import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from typing import Any, Final, Protocol

import httpx

from b2c_monitoring.alerting.channels import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Channel,
    ChannelKind,
    sign,
    summary,
    text,
)
from b2c_monitoring.errors import DeliveryFailed

_TIMEOUT_S: Final = 10.0


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
    message.set_content(text(payload))
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
            body = json.dumps({"text": text(payload)}).encode()
            _post(url, body, {"Content-Type": "application/json"})
            return
        body = json.dumps(payload, separators=(",", ":")).encode()
        timestamp = str(now_unix)
        headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: timestamp}
        if channel.secret:
            headers[SIGNATURE_HEADER] = sign(channel.secret, timestamp, body)
        _post(url, body, headers)
