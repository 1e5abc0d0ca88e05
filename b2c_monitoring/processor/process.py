"""The processor process: the OTLP gRPC front, its metrics endpoint, its derivation workers."""

from __future__ import annotations

import logging
import signal
import threading
import time
from concurrent import futures
from datetime import UTC, datetime, timedelta

import grpc
import psycopg_pool

from b2c_monitoring import declared_services, readiness
from b2c_monitoring.alerting.service import start_alerting
from b2c_monitoring.errors import StorageUnavailable
from b2c_monitoring.processor.workers import WorkerPool
from b2c_monitoring.receivers.batch_outcomes import BatchOutcomes
from b2c_monitoring.receivers.health_endpoint import start_health_server
from b2c_monitoring.receivers.metrics_handler import MetricsHandler, count_only
from b2c_monitoring.receivers.otlp import Authenticator, LogsService, MetricsService, TraceService
from b2c_monitoring.receivers.service_logs import LogsHandler, count_logs
from b2c_monitoring.receivers.traces import TraceHandler
from b2c_monitoring.settings import Settings
from b2c_monitoring.storage.db import make_pool
from b2c_monitoring.storage.logs import LogIndices
from b2c_monitoring.storage.logs import make_client as make_es_client
from b2c_monitoring.storage.maintenance import MaintenanceThread
from b2c_monitoring.storage.metrics import policy_from
from b2c_monitoring.storage.migrations import migrate
from b2c_monitoring.storage.services import ServiceStore

log = logging.getLogger(__name__)


def build_server(
    settings: Settings,
    handle: TraceHandler,
    metrics: MetricsHandler = count_only,
    outcomes: BatchOutcomes | None = None,
    logs: LogsHandler = count_logs,
) -> grpc.Server:
    auth = Authenticator(settings.processor_token)
    server = grpc.server(
        futures.ThreadPoolExecutor(
            max_workers=settings.processor_workers, thread_name_prefix="otlp"
        ),
        options=[
            ("grpc.max_receive_message_length", settings.processor_max_message_bytes),
            ("grpc.max_send_message_length", 4 * 1024 * 1024),
            ("grpc.max_connection_age_ms", settings.processor_max_connection_age_s * 1000),
            ("grpc.max_connection_age_grace_ms", 30_000),
        ],
        maximum_concurrent_rpcs=settings.processor_workers * 4,
    )
    outcomes = outcomes or BatchOutcomes()
    TraceService(handle, auth, outcomes).add_to_server(server)
    MetricsService(metrics, auth, outcomes).add_to_server(server)
    LogsService(logs, auth, outcomes).add_to_server(server)
    server.add_insecure_port(settings.processor_listen)
    return server


def declare_from_file(settings: Settings, pool: psycopg_pool.ConnectionPool) -> None:
    """Declare the services of ``B2C_SERVICES_FILE`` (idempotent: each start declares again)."""
    assert settings.services_file is not None
    declared = declared_services.load(settings.services_file, settings.default_tenant)
    policy = policy_from(settings)
    store = ServiceStore(pool, policy.damping, policy.retention)
    now = datetime.now(UTC)
    for d in declared:
        store.declare(d.tenant_id, d.name, d.service_type, d.endpoint, d.check, now)
    log.info("declared %d service(s) from %s", len(declared), settings.services_file)


def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT. Migrations run first (safe with several replicas)."""
    # Not listening before the schema is there: until then the collector's exporter sees
    # a refused connection, retries, and keeps the data in its queue.
    owner_url = settings.migration_database_url or settings.database_url
    delay = 0.5
    while True:
        try:
            applied = migrate(owner_url)
            break
        except StorageUnavailable as exc:
            log.warning("database not reachable for migrations (%s); retrying in %.1fs", exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, 10.0)
    if applied:
        log.info("applied migrations: %s", ", ".join(applied))
    # partitions, rollups, retention and staleness: one round before listening (so the
    # partitions of today exist), then in the background
    # DDL (partitions) needs the owner
    maintenance_pool = make_pool(owner_url, max_size=2, name="b2c-maintenance")
    maintenance_pool.open(wait=False)
    maintenance = MaintenanceThread(
        maintenance_pool,
        policy_from(settings),
        timedelta(seconds=settings.maintenance_interval_s),
        log_indices=LogIndices(
            make_es_client(settings.elasticsearch_url),
            settings.logs_index,
            timedelta(days=settings.log_retention_days),
        ),
    )
    maintenance.run_once()
    maintenance.start()
    if settings.services_file is not None:
        declare_from_file(settings, maintenance_pool)
    alerting = start_alerting(settings)
    workers = WorkerPool(settings, settings.processor_processes)
    workers.warm()
    outcomes = BatchOutcomes()

    def checks() -> list[readiness.Check]:
        # the workers' own login: what they store with
        store = readiness.postgres_url(settings.database_url)
        refusing = outcomes.refusing()
        batches = readiness.Check("batches", refusing is None, refusing)
        return [store, batches]

    start_health_server(
        settings.processor_metrics_port, checks, addr=settings.processor_metrics_host
    )
    server = build_server(settings, workers, workers.metrics, outcomes, workers.logs)
    server.start()
    log.info(
        "processor listening on %s, metrics on :%d",
        settings.processor_listen,
        settings.processor_metrics_port,
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.stop(grace=5).wait()
    workers.close()
    alerting.stop()
    maintenance.stop()
    maintenance_pool.close()
