"""Local notification receivers on loopback: an HTTP server that records POSTs (webhook
and Slack) and an SMTP server (aiosmtpd) that records mails. Either can be started on a
chosen port, stopped and started again, as a receiver that goes down and comes back."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int = 200  # what the receiver answered

    def json(self) -> Any:
        return json.loads(self.body)


class HttpReceiver:
    """Records every POST and answers ``status``."""

    def __init__(self, port: int = 0) -> None:
        self.received: list[Received] = []
        self.status = 200
        self._lock = threading.Lock()
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self.start()

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = receiver.status
                with receiver._lock:
                    receiver.received.append(Received(self.path, dict(self.headers), body, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        self._server.daemon_threads = True
        self._port = self._server.server_address[1]
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}/hook"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def bodies(self) -> list[Any]:
        with self._lock:
            return [r.json() for r in self.received]

    def accepted(self) -> list[Any]:
        """The bodies of the deliveries it answered with a 2xx."""
        with self._lock:
            return [r.json() for r in self.received if 200 <= r.status < 300]


class _Handler:
    def __init__(self, mails: list[tuple[str, list[str], str]]) -> None:
        self.mails = mails

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.content
        text = content.decode() if isinstance(content, bytes) else str(content)
        self.mails.append((str(envelope.mail_from), list(envelope.rcpt_tos), text))
        return "250 OK"


class SmtpReceiver:
    """A real SMTP server on loopback (aiosmtpd) keeping every mail it accepts."""

    def __init__(self, port: int) -> None:
        self.mails: list[tuple[str, list[str], str]] = []
        self.port = port
        self._controller = Controller(_Handler(self.mails), hostname="127.0.0.1", port=port)
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()
