"""Redis as a local process of the stack: Celery's broker and result backend.

Debian bookworm's ``redis-server`` (7.0; ``versions.toml`` ``[redis]``), installed with
apt when missing, like Prometheus. The stack runs its own server on
127.0.0.1:``ports.redis`` in the foreground (the supervisor holds its pid; no
``daemonize``) with its own configuration (``run/redis/redis.conf``), data folder
(``data/redis``: the RDB snapshot) and log (``logs/redis.log``, Redis writes to
stdout). The package's own service never starts in these containers (no init,
``policy-rc.d``), so it does not hold port 6379.

Databases: the demo's Celery app uses db 0; each test module takes a db of its own
(``database``), so modules sharing the stack's Redis do not see each other's keys.
"""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path
from typing import Final

from b2c_monitoring.errors import StackError
from b2c_monitoring.stack.base import Launch, Progress, StackLayout
from b2c_monitoring.stack.system import install_debian_part

REDIS_BINARY: Final = Path("/usr/bin/redis-server")
# Redis' default count of numbered databases; the tests pick theirs below it
DATABASES: Final = 16


def render_config(port: int, data: Path) -> str:
    """redis.conf: loopback only, the stack's data folder, a snapshot now and then (a
    broker's queue survives a restart of the stack; an append-only log is not needed
    for a local demo)."""
    return "\n".join(
        [
            "# Written by b2c_monitoring.stack.redis; changes are overwritten.",
            f"port {port}",
            "bind 127.0.0.1",
            "protected-mode yes",
            "daemonize no",
            f"dir {data}",
            "dbfilename dump.rdb",
            "save 300 10",
            "appendonly no",
            'logfile ""',
            f"databases {DATABASES}",
            "",
        ]
    )


def ping(port: int, timeout: float = 1.0) -> bool:
    """A RESP ``PING`` answered ``+PONG`` (no client library: the stack does not need one)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class Redis:
    """The stack's Redis on 127.0.0.1:``ports.redis``."""

    name = "redis"

    def __init__(self, layout: StackLayout, *, binary: Path = REDIS_BINARY) -> None:
        self.layout = layout
        self.binary = binary

    @property
    def port(self) -> int:
        return self.layout.ports.redis

    def url(self, database: int = 0) -> str:
        if not 0 <= database < DATABASES:
            raise ValueError(f"Redis database {database} is outside 0..{DATABASES - 1}")
        return f"redis://127.0.0.1:{self.port}/{database}"

    @property
    def config_file(self) -> Path:
        return self.layout.run(self.name) / "redis.conf"

    def install(self, progress: Progress) -> None:
        install_debian_part(self.name, "redis-server", self.binary, progress)

    def prepare(self) -> Launch:
        data = self.layout.data(self.name)
        data.mkdir(parents=True, exist_ok=True)
        self.config_file.parent.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(render_config(self.port, data))
        return Launch(argv=[str(self.binary), str(self.config_file)], cwd=data)

    def healthy(self) -> bool:
        return ping(self.port)

    def endpoints(self) -> dict[str, str]:
        return {"redis": self.url()}

    def flush(self, database: int) -> None:
        """Empty one database (a test module's, before it starts)."""
        with contextlib.closing(socket.create_connection(("127.0.0.1", self.port), 2.0)) as conn:
            conn.sendall(f"SELECT {database}\r\nFLUSHDB\r\n".encode())
            answered = b""
            while answered.count(b"\r\n") < 2:
                chunk = conn.recv(64)
                if not chunk:
                    break
                answered += chunk
            if answered.count(b"+OK") < 2:
                raise StackError(f"redis: FLUSHDB of database {database} answered {answered!r}")
