"""One typed settings object, loaded once at start, failing fast.

Every value comes from a constructor argument or else from its documented
environment variable (prefix ``B2C_``), e.g. ``B2C_DATABASE_URL``. Components take
the settings they need as arguments; nothing deep inside reads the environment.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from b2c_monitoring.errors import ConfigError

DEVELOPMENT_PROCESSOR_TOKEN = "dev-processor-token"  # noqa: S105 - refused outside development


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="B2C_", extra="ignore", frozen=True)

    environment: Literal["development", "production"] = "development"

    database_url: str = "postgresql://b2c@127.0.0.1:5433/b2c"
    # B2C_MIGRATION_DATABASE_URL: the schema owner's DSN, for the processor's migrations
    # and partition maintenance, where B2C_DATABASE_URL is a role without DDL rights
    # (docs/security.md, "Stores"); unset, B2C_DATABASE_URL does both.
    migration_database_url: str | None = None
    database_pool_size: int = Field(default=8, ge=1, le=64)

    elasticsearch_url: str = "http://127.0.0.1:9200"
    # the prefix of the daily log indices <logs_index>-YYYY.MM.DD; readers search
    # <logs_index>*. The maintenance round deletes whole daily indices once all their
    # records are older than B2C_LOG_RETENTION_DAYS. B2C_LOG_REDACT_PATTERNS: a JSON list
    # of regular expressions (RE2) whose matches the collector masks in every log record
    # before storage, on top of the built-in rules (stack/collector.py).
    logs_index: str = "b2c-logs"
    log_retention_days: int = Field(default=14, ge=1, le=3650)
    log_redact_patterns: tuple[str, ...] = ()
    # the collector's per-probe-token rate limit (docs/ingestion-auth.md): items (spans,
    # data points, log records) a second on average, and at once after a quiet spell
    # (0: twice the rate); above it, RESOURCE_EXHAUSTED / HTTP 429 with a retry delay.
    # B2C_INGEST_RATE_PER_S=0 turns it off.
    ingest_rate_per_s: float = Field(default=20_000, ge=0)
    ingest_burst: float = Field(default=0, ge=0)

    default_tenant: str = Field(default="default", min_length=1, max_length=64)

    # the processor: an OTLP gRPC server that the collector exports to
    processor_listen: str = "127.0.0.1:4417"
    processor_metrics_port: int = 9464
    # where the metrics (and health) endpoint listens: loopback on one machine; a pod's
    # probes and Prometheus reach it on the pod's address (0.0.0.0 in the Helm chart)
    processor_metrics_host: str = "127.0.0.1"
    processor_token: str = DEVELOPMENT_PROCESSOR_TOKEN
    # gRPC threads of the front; derivation runs in processor_processes worker processes
    processor_workers: int = Field(default=8, ge=1, le=64)
    # one more than the cores: each worker waits on Postgres for part of every batch
    # (at 2 cores, 3 workers kept up with 19,900 spans/s, 2 with 19,200)
    processor_processes: int = Field(default_factory=lambda: (os.cpu_count() or 1) + 1, ge=1, le=64)
    processor_max_message_bytes: int = 64 * 1024 * 1024
    # The front ends each connection after this long (GOAWAY; RPCs in progress get 30 s
    # more): the collector's round robin over a headless Service resolves the name again
    # only when a connection ends, so without it replicas added later get no traffic.
    processor_max_connection_age_s: int = Field(default=120, ge=10, le=86400)

    # the admin API
    api_url: str = "http://127.0.0.1:8000"
    # the built admin console (index.html and assets/) that the API serves at /console/;
    # the stack points it at its cached build, the default is console/dist of the checkout
    console_dir: Path | None = None
    # the hub checks the token of each open connection this often, and closes the
    # connections of a revoked one (hub/connection.py)
    hub_reauthenticate_s: float = Field(default=60.0, ge=0.1, le=3600)

    # TLS of the OTLP receivers and the admin API (docs/security.md). B2C_TLS: "off"
    # (plaintext, for loopback), "self-signed" (the local stack's own private CA and
    # server certificate in <home>/data/tls, for localhost, 127.0.0.1, ::1 and the JSON
    # list B2C_TLS_EXTRA_NAMES) or "files" (the operator's B2C_TLS_CERT_FILE and
    # B2C_TLS_KEY_FILE; B2C_TLS_CA_FILE is the CA clients trust, else the system's).
    tls: Literal["off", "self-signed", "files"] = "off"
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_ca_file: Path | None = None
    tls_extra_names: tuple[str, ...] = ()

    # Connected services (processors/services.py). Flap damping: a service turns down after
    # B2C_SERVICE_DOWN_AFTER failed checks in a row, comes back after B2C_SERVICE_UP_AFTER
    # answering ones, moves between up and degraded after B2C_SERVICE_LATENCY_AFTER; it is
    # degraded when slower than B2C_SERVICE_DEGRADED_AFTER_S (unless its declared check has
    # its own threshold). B2C_SERVICES_FILE: services declared in TOML or JSON.
    service_down_after: int = Field(default=3, ge=1, le=100)
    service_up_after: int = Field(default=2, ge=1, le=100)
    service_latency_after: int = Field(default=2, ge=1, le=100)
    service_degraded_after_s: float = Field(default=2.0, gt=0, le=3600)
    services_file: Path | None = None
    # a component that has not reported for longer is unknown (processors/health.py)
    health_stale_after_s: int = Field(default=180, ge=1, le=86400)
    # History (storage/partitions.py): full resolution kept at least this many hours; the
    # 5-minute and hourly rollups and the status history this many days. Maintenance
    # (partitions, rollups, retention, staleness) runs every B2C_MAINTENANCE_INTERVAL_S.
    retention_raw_hours: int = Field(default=48, ge=24, le=24 * 14)
    retention_5m_days: int = Field(default=8, ge=2, le=90)
    retention_1h_days: int = Field(default=90, ge=7, le=3650)
    retention_history_days: int = Field(default=90, ge=30, le=3650)
    maintenance_interval_s: int = Field(default=60, ge=1, le=3600)

    # Default windows of stalled / overdue jobs, in seconds, for job types without their
    # own (``PUT /api/admin/job-types/{jobType}/windows``). B2C_JOB_HEARTBEAT_WINDOW_S: a
    # running job silent for longer is stalled; B2C_JOB_START_WINDOW_S: a pending job not
    # started after this long is overdue.
    job_heartbeat_window_s: int = Field(default=600, ge=1, le=30 * 86400)
    job_start_window_s: int = Field(default=900, ge=1, le=30 * 86400)
    # A retry or cancel command claimed by a job runner and not marked done within this
    # many seconds is handed out again (api/routes/probes.py).
    job_command_lease_s: int = Field(default=30, ge=1, le=3600)
    # Alerting (b2c_monitoring/alerting/), in the processor: rules are evaluated every
    # B2C_ALERT_INTERVAL_S; a notification that fails is tried again after
    # B2C_NOTIFY_BACKOFF_S, doubling up to B2C_NOTIFY_BACKOFF_MAX_S, until it is
    # B2C_NOTIFY_MAX_AGE_S old (then it is recorded as failed).
    alert_interval_s: float = Field(default=15, ge=0.2, le=3600)
    # With several processor replicas one leads alerting; the others ask for the lead
    # every B2C_ALERT_LEADER_POLL_S, which bounds how long alerting waits for a new
    # leader after the old one died (docs/capacity.md).
    alert_leader_poll_s: float = Field(default=2, ge=0.2, le=60)
    notify_backoff_s: float = Field(default=5, ge=0.1, le=3600)
    notify_backoff_max_s: float = Field(default=600, ge=1, le=86400)
    notify_max_age_s: int = Field(default=86400, ge=60, le=30 * 86400)
    # The maintenance round deletes alerts resolved more than B2C_ALERT_RETENTION_DAYS ago,
    # with their history and notifications; open alerts stay. At least 2 days: longer
    # than the longest cool-down (1 day), within which a resolved alert may reopen.
    alert_retention_days: int = Field(default=90, ge=2, le=3650)
    # a command declined by the runners that polled fails once none took it this long
    job_command_decline_window_s: int = Field(default=10, ge=1, le=3600)
    # a command that no runner claimed within this many seconds of its request ends
    # expired (nothing of the job's service polls); the API, CLI and console say so
    job_command_expiry_s: int = Field(default=60, ge=1, le=86400)
    # Records deleted by the maintenance round (storage/retention.py), in batches of 5,000
    # rows per transaction, for at most B2C_RETENTION_BUDGET_S a round (the rest waits for
    # the next round): jobs B2C_JOB_RETENTION_DAYS after they finished and were last
    # stored, with their timelines; retry and cancel commands B2C_JOB_COMMAND_RETENTION_DAYS
    # after they were done or failed; the audit log B2C_AUDIT_RETENTION_DAYS, at least as
    # long as jobs, commands and alerts. Pending and running jobs, a job with an open
    # command, and open commands are never deleted. docs/telemetry-contract.md has the table.
    job_retention_days: int = Field(default=30, ge=1, le=3650)
    job_command_retention_days: int = Field(default=30, ge=1, le=3650)
    audit_retention_days: int = Field(default=400, ge=30, le=3650)
    retention_budget_s: float = Field(default=10, ge=0.1, le=3600)

    @model_validator(mode="after")
    def _audit_kept_longest(self) -> Settings:
        longest = max(
            self.job_retention_days, self.job_command_retention_days, self.alert_retention_days
        )
        if self.audit_retention_days < longest:
            raise ValueError(
                f"B2C_AUDIT_RETENTION_DAYS ({self.audit_retention_days}) must be at least the "
                f"retention of jobs, job commands and alerts ({longest})"
            )
        return self

    @model_validator(mode="after")
    def _no_development_secrets_in_production(self) -> Settings:
        if self.environment == "production" and self.processor_token == DEVELOPMENT_PROCESSOR_TOKEN:
            raise ValueError("B2C_PROCESSOR_TOKEN must be set to a secret in production")
        return self

    @model_validator(mode="after")
    def _tls_files_with_files_only(self) -> Settings:
        given = [
            name
            for name, value in (
                ("B2C_TLS_CERT_FILE", self.tls_cert_file),
                ("B2C_TLS_KEY_FILE", self.tls_key_file),
                ("B2C_TLS_CA_FILE", self.tls_ca_file),
            )
            if value is not None
        ]
        if self.tls == "files" and (self.tls_cert_file is None or self.tls_key_file is None):
            raise ValueError("B2C_TLS=files needs B2C_TLS_CERT_FILE and B2C_TLS_KEY_FILE")
        # set files and a forgotten B2C_TLS=files would serve plaintext without a word
        if self.tls != "files" and given:
            raise ValueError(f"{' and '.join(given)} set, but B2C_TLS is {self.tls!r}, not 'files'")
        return self


def load_settings(**overrides: object) -> Settings:
    """Settings from arguments, then the environment; a bad value is a ConfigError."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(f"invalid settings: {exc}") from exc
