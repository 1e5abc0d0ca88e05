"""PostgreSQL from Debian, in a data folder of the stack's own, on its own port.

The cluster is initialised with ``initdb`` and run as the ``postgres`` system user
(Postgres refuses root). The local stack trusts connections from loopback: it is a
single-user development stack; a deployment points ``B2C_DATABASE_URL`` at its own
server instead.
"""

from __future__ import annotations

import pwd
import shutil
import subprocess
from pathlib import Path

import psycopg

from b2c_monitoring.errors import StackError
from b2c_monitoring.stack.base import Launch, Progress, StackLayout, load_versions
from b2c_monitoring.stack.system import apt_install, grant_search_path

DATABASE = "b2c"
ROLE = "b2c"
SYSTEM_USER = "postgres"


def _bin_dir() -> Path:
    major = load_versions()["postgres"]["major"]
    return Path(f"/usr/lib/postgresql/{major}/bin")


class Postgres:
    name = "postgres"

    def __init__(self, layout: StackLayout, *, fast_unsafe: bool = False) -> None:
        self.layout = layout
        # tests trade durability for speed; the demo keeps Postgres' defaults
        self.fast_unsafe = fast_unsafe

    @property
    def port(self) -> int:
        return self.layout.ports.postgres

    @property
    def url(self) -> str:
        return f"postgresql://{ROLE}@127.0.0.1:{self.port}/{DATABASE}"

    def admin_url(self) -> str:
        return f"postgresql://{SYSTEM_USER}@127.0.0.1:{self.port}/postgres"

    def install(self, progress: Progress) -> None:
        if not (_bin_dir() / "postgres").exists():
            major = load_versions()["postgres"]["major"]
            progress(f"postgres: installing postgresql-{major} from Debian")
            apt_install([f"postgresql-{major}"], progress)
        if not (_bin_dir() / "postgres").exists():
            raise StackError(f"postgres: {_bin_dir()}/postgres is missing after installing")

    def prepare(self) -> Launch:
        data = self.layout.data(self.name)
        socket_dir = self.layout.run(self.name)
        for path in (data, socket_dir):
            path.mkdir(parents=True, exist_ok=True)
            grant_search_path(path, SYSTEM_USER, lambda _line: None)
            shutil.chown(path, SYSTEM_USER, SYSTEM_USER)
        data.chmod(0o700)
        if not (data / "PG_VERSION").exists():
            subprocess.run(
                [
                    str(_bin_dir() / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    SYSTEM_USER,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                ],
                check=True,
                capture_output=True,
                user=SYSTEM_USER,
                cwd="/",
            )
        argv = [
            str(_bin_dir() / "postgres"),
            "-D",
            str(data),
            "-p",
            str(self.port),
            "-k",
            str(socket_dir),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "max_connections=200",
            "-c",
            "shared_buffers=256MB",
        ]
        if self.fast_unsafe:
            argv += [
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]
        return Launch(
            argv=argv,
            user=SYSTEM_USER,
            cwd=Path("/"),
            env={"HOME": pwd.getpwnam(SYSTEM_USER).pw_dir},
        )

    def healthy(self) -> bool:
        try:
            with psycopg.connect(self.admin_url(), connect_timeout=2) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error:
            return False
        return True

    def after_start(self, progress: Progress) -> None:
        with psycopg.connect(self.admin_url(), autocommit=True) as conn:
            if (
                conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ROLE,)).fetchone()
                is None
            ):
                conn.execute(f'CREATE ROLE "{ROLE}" LOGIN')
            if (
                conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone()
                is None
            ):
                progress(f"postgres: creating database {DATABASE}")
                conn.execute(f'CREATE DATABASE "{DATABASE}" OWNER "{ROLE}"')

    def endpoints(self) -> dict[str, str]:
        return {"url": self.url}
