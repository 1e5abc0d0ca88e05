"""A real Redis (Debian's ``redis-server``) beside the test stack: its own port, data
folder, config and log, daemonized and stopped by its pid."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from tests.api_process import free_port


class RedisServer:
    def __init__(self, home: Path, port: int | None = None) -> None:
        self.home = home
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: apt-get install -y redis-server")
        self.home.mkdir(parents=True, exist_ok=True)
        config = self.home / "redis.conf"
        config.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndaemonize yes\ndir {self.home}\n"
            f"pidfile {self.home / 'redis.pid'}\nlogfile {self.home / 'redis.log'}\n"
            'save ""\nappendonly no\nprotected-mode yes\n'
        )
        subprocess.run([binary, str(config)], check=True, timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            probe = subprocess.run(
                ["redis-cli", "-p", str(self.port), "ping"],
                capture_output=True,
                text=True,
                check=False,
            )
            if probe.stdout.strip() == "PONG":
                return self
            time.sleep(0.1)
        raise RuntimeError(f"redis-server did not answer on {self.port}: see {self.home}/redis.log")

    def stop(self) -> None:
        pidfile = self.home / "redis.pid"
        if pidfile.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)
