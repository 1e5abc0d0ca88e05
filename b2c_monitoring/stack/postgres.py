"""PostgreSQL from Debian, in a data folder of the stack's own, on its own port.

The cluster is initialised with ``initdb`` and run as the ``postgres`` system user
(Postgres refuses root). Every connection, on loopback too, logs in with a password
(SCRAM-SHA-256; ``pg_hba.conf`` allows nothing else), from the home's
``data/stores/passwords.json`` (``stack/secrets.py``). Each process has a role of its
own (docs/security.md, "Stores"):

- ``b2c`` owns the schema and runs the migrations and the partition maintenance;
- ``b2c_processor`` and ``b2c_api`` read and write rows, no DDL;
- ``b2c_grafana`` reads the tables the dashboards query, rows of its tenants only
  (row-level security, migration 0017), in read-only transactions;
- ``b2c_ingest_auth`` reads the columns of ``api_tokens`` that the collector's token
  check needs.

A home made before passwords (``initdb --auth=trust``) is upgraded at its next start:
the passwords are set over the trusted connection, then ``pg_hba.conf`` is rewritten
and reloaded. A deployment points ``B2C_DATABASE_URL`` at its own server instead.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path

import psycopg
from psycopg import sql

from b2c_monitoring.errors import StackError
from b2c_monitoring.stack.base import Launch, Progress, StackLayout, load_versions
from b2c_monitoring.stack.secrets import StackSecrets
from b2c_monitoring.stack.system import apt_install, grant_search_path

DATABASE = "b2c"
ROLE = "b2c"  # the owner
PROCESSOR_ROLE = "b2c_processor"
API_ROLE = "b2c_api"
GRAFANA_ROLE = "b2c_grafana"
INGEST_AUTH_ROLE = "b2c_ingest_auth"
APP_ROLES = (PROCESSOR_ROLE, API_ROLE, GRAFANA_ROLE, INGEST_AUTH_ROLE)
SYSTEM_USER = "postgres"

PG_HBA = """\
# Written by b2c_monitoring.stack.postgres at every start; changes are overwritten.
# A password (SCRAM) for everybody, on the socket and on loopback; nothing else.
local   all   all                  scram-sha-256
host    all   all   127.0.0.1/32   scram-sha-256
host    all   all   ::1/128        scram-sha-256
"""


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
    def secrets(self) -> StackSecrets:
        return StackSecrets(self.layout)

    def url_for(self, role: str, database: str = DATABASE) -> str:
        """The DSN of ``role`` (one of :data:`ROLE`, :data:`APP_ROLES`) on ``database``."""
        password = self.secrets.password(role)
        return f"postgresql://{role}:{password}@127.0.0.1:{self.port}/{database}"

    @property
    def url(self) -> str:
        """The owner's DSN: migrations, maintenance, the stack's own setup, tests."""
        return self.url_for(ROLE)

    @property
    def processor_url(self) -> str:
        return self.url_for(PROCESSOR_ROLE)

    @property
    def api_url(self) -> str:
        return self.url_for(API_ROLE)

    @property
    def grafana_url(self) -> str:
        return self.url_for(GRAFANA_ROLE)

    @property
    def ingest_auth_dsn(self) -> str:
        """For the collector's token check (``api_tokens``, read only)."""
        return self.url_for(INGEST_AUTH_ROLE)

    def admin_url(self) -> str:
        """The superuser's DSN, on the maintenance database ``postgres``."""
        return self.url_for(SYSTEM_USER, "postgres")

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
            self._initdb(data, socket_dir)
        elif self._hba_is_ours(data) and not self.secrets.known(SYSTEM_USER):
            raise StackError(
                f"postgres: {data} asks for passwords, but {self.secrets.path} has none for "
                f"{SYSTEM_USER!r} (the file was lost or replaced). Put the file back, or "
                f"delete {data} to start with an empty database."
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
            # unsafe against a machine crash only: a commit still waits until its WAL is
            # written to the kernel (synchronous_commit stays on), so a killed Postgres
            # keeps every transaction it answered for; with synchronous_commit=off the
            # fault suite saw 500 acknowledged reports vanish when Postgres was stopped
            argv += [
                "-c",
                "fsync=off",
                "-c",
                "full_page_writes=off",
            ]
        return Launch(
            argv=argv,
            user=SYSTEM_USER,
            cwd=Path("/"),
            env={"HOME": pwd.getpwnam(SYSTEM_USER).pw_dir},
        )

    def _initdb(self, data: Path, socket_dir: Path) -> None:
        # the superuser's password reaches initdb in a file only postgres can read
        pwfile = socket_dir / "initdb-password"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(self.secrets.password(SYSTEM_USER) + "\n")
        shutil.chown(pwfile, SYSTEM_USER, SYSTEM_USER)
        try:
            subprocess.run(
                [
                    str(_bin_dir() / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    SYSTEM_USER,
                    "--auth=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                ],
                check=True,
                capture_output=True,
                user=SYSTEM_USER,
                cwd="/",
            )
        finally:
            pwfile.unlink(missing_ok=True)
        self._write_hba(data)

    @staticmethod
    def _hba_is_ours(data: Path) -> bool:
        try:
            return (data / "pg_hba.conf").read_text() == PG_HBA
        except OSError:
            return False

    @staticmethod
    def _write_hba(data: Path) -> None:
        hba = data / "pg_hba.conf"
        hba.write_text(PG_HBA)
        hba.chmod(0o600)
        shutil.chown(hba, SYSTEM_USER, SYSTEM_USER)

    def healthy(self) -> bool:
        try:
            with psycopg.connect(self.admin_url(), connect_timeout=2) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error:
            return False
        return True

    def after_start(self, progress: Progress) -> None:
        self.ensure_setup(progress)

    def ensure_setup(self, progress: Progress) -> None:
        """Roles with their passwords, the database, passwords-only ``pg_hba.conf``;
        idempotent, and quick, so it runs at every ``up`` (also when already running,
        so a running Postgres of an old home that trusted everybody is upgraded)."""
        data = self.layout.data(self.name)
        try:
            conn = psycopg.connect(self.admin_url(), autocommit=True, connect_timeout=5)
        except psycopg.OperationalError as exc:
            raise StackError(
                f"postgres: the superuser cannot log in with the password of "
                f"{self.secrets.path} ({exc}). If that file was lost or replaced, put it "
                f"back, or stop the stack and delete {data} to start with an empty database."
            ) from exc
        with conn:
            # over a trusted connection too: this is how an old home gets its passwords
            conn.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(SYSTEM_USER), sql.Literal(self.secrets.password(SYSTEM_USER))
                )
            )
            for role in (ROLE, *APP_ROLES):
                exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
                verb = "ALTER" if exists.fetchone() else "CREATE"
                # the processor COPYs into tables with row-level security, which COPY
                # refuses to a role that does not bypass it; the API filters by tenant
                # in its own queries
                rls = "BYPASSRLS" if role in (PROCESSOR_ROLE, API_ROLE) else "NOBYPASSRLS"
                conn.execute(
                    sql.SQL(
                        verb
                        + " ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
                        + rls
                        + " PASSWORD {}"
                    ).format(sql.Identifier(role), sql.Literal(self.secrets.password(role)))
                )
            # a dashboard query can never write, even where a grant was too wide
            conn.execute(
                sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(
                    sql.Identifier(GRAFANA_ROLE)
                )
            )
            if (
                conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone()
                is None
            ):
                progress(f"postgres: creating database {DATABASE}")
                conn.execute(f'CREATE DATABASE "{DATABASE}" OWNER "{ROLE}"')
            conn.execute(f'REVOKE ALL ON DATABASE "{DATABASE}" FROM PUBLIC')
            conn.execute(
                sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                    sql.Identifier(DATABASE), sql.SQL(", ").join(map(sql.Identifier, APP_ROLES))
                )
            )
            # the job store stages a batch in a temporary table
            conn.execute(
                sql.SQL("GRANT TEMPORARY ON DATABASE {} TO {}, {}").format(
                    sql.Identifier(DATABASE),
                    sql.Identifier(PROCESSOR_ROLE),
                    sql.Identifier(API_ROLE),
                )
            )
            if not self._hba_is_ours(data):
                progress("postgres: passwords (SCRAM) only from now on; pg_hba.conf rewritten")
                self._write_hba(data)
                conn.execute("SELECT pg_reload_conf()")

    def endpoints(self) -> dict[str, str]:
        return {"url": self.url}
