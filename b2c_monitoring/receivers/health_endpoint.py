"""The processor's HTTP endpoint: ``/metrics`` (Prometheus), ``/healthz`` (live: the
process answers) and ``/readyz`` (ready: it can store what it receives; 503 with the
reasons when not), on loopback beside the gRPC front."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import ThreadingHTTPServer

from prometheus_client import MetricsHandler

from b2c_monitoring import readiness
from b2c_monitoring.readiness import Check

ReadinessChecks = Callable[[], list[Check]]


def start_health_server(port: int, checks: ReadinessChecks, addr: str = "127.0.0.1") -> None:
    class Handler(MetricsHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                self._json(200, {"status": "ok"})
            elif path == "/readyz":
                results = checks()
                self._json(200 if readiness.is_ready(results) else 503, readiness.body(results))
            else:
                super().do_GET()

        def _json(self, status: int, body: object) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            """Probes every few seconds would fill the log."""

    server = ThreadingHTTPServer((addr, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="health-http", daemon=True).start()
