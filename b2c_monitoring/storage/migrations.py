"""Versioned, forward-only schema migrations.

Each file ``migrations/NNNN_name.sql`` runs once, in order, inside its own
transaction, and is recorded in ``schema_migrations``. An advisory lock lets
several processes start at once without running a migration twice. A file that was
applied is never edited: a change is a new file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import psycopg

from b2c_monitoring.storage.db import translate_errors

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_LOCK_ID = 0x62326D6F  # "b2mo"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found = []
    for path in sorted(directory.glob("*.sql")):
        version, _, name = path.stem.partition("_")
        found.append(Migration(int(version), name, path.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ValueError(f"duplicate migration versions in {directory}")
    return found


def migrate(conninfo: str, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply what is missing; returns the names applied now."""
    applied_now: list[str] = []
    with translate_errors(), psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
        try:
            conn.execute(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                       version integer PRIMARY KEY,
                       name text NOT NULL,
                       checksum text NOT NULL,
                       applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            rows = conn.execute("SELECT version, checksum FROM schema_migrations").fetchall()
            done = {version: checksum for version, checksum in rows}
            for migration in discover(directory):
                if migration.version in done:
                    if done[migration.version] != migration.checksum:
                        raise RuntimeError(
                            f"migration {migration.version}_{migration.name} was edited after it "
                            "was applied; add a new migration instead"
                        )
                    continue
                with conn.transaction():
                    conn.execute(migration.sql.encode())
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                        (migration.version, migration.name, migration.checksum),
                    )
                applied_now.append(f"{migration.version:04d}_{migration.name}")
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
    return applied_now
