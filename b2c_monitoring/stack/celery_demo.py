"""The demo's real Celery worker with beat, a part of the local stack.

``celery -A b2c_monitoring.demo_celery worker --beat`` (prefork, two children, beat
embedded in a process of its own) against the stack's Redis, reporting to the stack's
collector with the stack's probe token and taking retry and cancel commands from its
admin API. ``b2c demo`` starts it after the rest; ``b2c stack up`` does not
(``optional``), and ``b2c stack down`` stops it with the rest. The beat schedule's
state file is ``run/celery-demo/celerybeat-schedule``.

Healthy: the worker's ``worker_ready`` handler wrote ``run/celery-demo/ready`` with
its pid, and that process lives (the worker took its queues; no broker round trip on
every status).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from b2c_monitoring.stack.base import Launch, Progress, StackLayout, repo_root
from b2c_monitoring.stack.redis import Redis

# the demo app's own database of the stack's Redis (the tests take others)
DEMO_DATABASE = 0


class CeleryDemo:
    name = "celery-demo"
    optional = True
    """Started by ``b2c demo`` only; ``b2c stack status`` lists it while it runs."""

    def __init__(
        self,
        layout: StackLayout,
        redis: Redis,
        *,
        otlp_endpoint: str,
        api_url: str,
        probe_token: Callable[[], str],
        ca_file: str | None = None,
        concurrency: int = 2,
        tenants: tuple[str, str] = ("acme", "globex"),
    ) -> None:
        self.layout = layout
        self.redis = redis
        self.otlp_endpoint = otlp_endpoint
        self.api_url = api_url
        self.probe_token = probe_token
        self.ca_file = ca_file
        self.concurrency = concurrency
        self.tenants = tenants

    @property
    def ready_file(self) -> str:
        return str(self.layout.run(self.name) / "ready")

    def install(self, progress: Progress) -> None:
        try:
            import celery  # noqa: F401 - a dev dependency: present under uv run
        except ImportError:
            from b2c_monitoring.errors import StackError

            raise StackError(
                "the Celery demo needs celery[redis]: run it from the checkout (uv run b2c demo)"
            ) from None

    def prepare(self) -> Launch:
        run = self.layout.run(self.name)
        run.mkdir(parents=True, exist_ok=True)
        (run / "ready").unlink(missing_ok=True)
        env = {
            "B2C_DEMO_CELERY_REDIS": self.redis.url(DEMO_DATABASE),
            "B2C_DEMO_CELERY_OTLP": self.otlp_endpoint,
            "B2C_DEMO_CELERY_TOKEN": self.probe_token(),
            "B2C_DEMO_CELERY_API": self.api_url,
            "B2C_DEMO_CELERY_READY_FILE": self.ready_file,
            "B2C_DEMO_CELERY_CA_FILE": self.ca_file or "",
            "B2C_DEMO_CELERY_TENANTS": ",".join(self.tenants),
            "PYTHONPATH": str(repo_root()),
        }
        return Launch(
            argv=[
                sys.executable,
                "-m",
                "celery",
                "-A",
                "b2c_monitoring.demo_celery",
                "worker",
                "--beat",
                "--schedule",
                str(run / "celerybeat-schedule"),
                "--pool",
                "prefork",
                "--concurrency",
                str(self.concurrency),
                "--loglevel",
                "INFO",
                "--hostname",
                "celery-demo@%h",
            ],
            env=env,
            cwd=run,
        )

    def healthy(self) -> bool:
        try:
            pid = int(Path(self.ready_file).read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return False
        return True

    def endpoints(self) -> dict[str, str]:
        return {"broker": self.redis.url(DEMO_DATABASE)}
