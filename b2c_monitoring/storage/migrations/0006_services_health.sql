-- Connected services, component health and resources (processors/services.py, health.py,
-- resources.py). Time series are partitioned by range of their time; the partitions
-- themselves are created, rolled up and dropped by storage/partitions.py (maintain),
-- so that retention drops whole partitions instead of deleting rows.

-- One row per connected service: known from its first check report, or declared.
CREATE TABLE services (
    id               uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id        text        NOT NULL,
    name             text        NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    service_type     text        NOT NULL
        CHECK (service_type IN ('ERP', 'PIM', 'CRM', 'Database', 'Other')),
    endpoint         text,
    status           text        NOT NULL CHECK (status IN ('up', 'degraded', 'down', 'unknown')),
    first_seen       timestamptz NOT NULL,
    last_checked     timestamptz,
    last_successful  timestamptz,
    last_latency_s   double precision,
    last_error       text,
    -- flap damping: what the latest check observed, how many in a row did, and how
    -- many checks in a row answered
    last_observed    text        CHECK (last_observed IN ('up', 'degraded', 'down')),
    streak           integer     NOT NULL DEFAULT 0,
    answering_streak integer     NOT NULL DEFAULT 0,
    -- latencies of the latest checks that answered: averageLatencyMs
    recent_latencies jsonb       NOT NULL DEFAULT '[]',
    declared         boolean     NOT NULL DEFAULT false,
    -- the declared central check: {kind, target, timeoutS, expectStatus, degradedAfterS}
    check_spec       jsonb,
    updated_at       timestamptz NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE INDEX services_name ON services (name);

CREATE SEQUENCE service_status_changes_seq;

-- Every change of a service's status: its history, the input of uptime, and the
-- outbox that live updates and notifications read from (by seq).
CREATE TABLE service_status_changes (
    seq         bigint      NOT NULL DEFAULT nextval('service_status_changes_seq'),
    service_id  uuid        NOT NULL,
    tenant_id   text        NOT NULL,
    previous    text        NOT NULL,
    status      text        NOT NULL,
    at          timestamptz NOT NULL,
    reason      text,
    recorded_at timestamptz NOT NULL,
    PRIMARY KEY (service_id, at, seq)
) PARTITION BY RANGE (at);

-- Every check at full resolution (probe reports and central tests).
CREATE TABLE service_checks (
    service_id uuid        NOT NULL,
    at         timestamptz NOT NULL,
    up         boolean,
    observed   text        CHECK (observed IN ('up', 'degraded', 'down')),
    latency_s  double precision,
    source     text        NOT NULL,
    error      text,
    PRIMARY KEY (service_id, at)
) PARTITION BY RANGE (at);

-- Checks rolled up per 5 minutes and per hour; mergeable aggregates only, so the hourly
-- rollup is made from the 5-minute one.
CREATE TABLE service_checks_5m (
    service_id    uuid             NOT NULL,
    bucket        timestamptz      NOT NULL,
    checks        integer          NOT NULL,
    up_checks     integer          NOT NULL,
    latency_count integer          NOT NULL,
    latency_sum   double precision NOT NULL,
    latency_min   double precision,
    latency_max   double precision,
    PRIMARY KEY (service_id, bucket)
) PARTITION BY RANGE (bucket);

CREATE TABLE service_checks_1h (LIKE service_checks_5m INCLUDING ALL)
    PARTITION BY RANGE (bucket);

-- Resource samples of an owner (a connected service's name, else a service.name).
CREATE TABLE resource_samples (
    tenant_id    text             NOT NULL,
    owner        text             NOT NULL,
    at           timestamptz      NOT NULL,
    cpu_ratio    double precision,
    memory_used  double precision,
    memory_limit double precision,
    threads      double precision,
    pool_used    double precision,
    pool_idle    double precision,
    pool_max     double precision,
    queue_depth  double precision,
    PRIMARY KEY (tenant_id, owner, at)
) PARTITION BY RANGE (at);

CREATE TABLE resource_samples_5m (
    tenant_id    text             NOT NULL,
    owner        text             NOT NULL,
    bucket       timestamptz      NOT NULL,
    samples      integer          NOT NULL,
    cpu_count    integer          NOT NULL,
    cpu_sum      double precision NOT NULL,
    cpu_max      double precision,
    memory_count integer          NOT NULL,
    memory_sum   double precision NOT NULL,
    memory_max   double precision,
    memory_limit double precision,
    threads_max  double precision,
    pool_used_max double precision,
    queue_depth_max double precision,
    PRIMARY KEY (tenant_id, owner, bucket)
) PARTITION BY RANGE (bucket);

CREATE TABLE resource_samples_1h (LIKE resource_samples_5m INCLUDING ALL)
    PARTITION BY RANGE (bucket);

-- The resource window of an owner (processors/resources.py): latest values and
-- per-minute CPU and memory aggregates of the last hour.
CREATE TABLE resource_windows (
    tenant_id      text        NOT NULL,
    owner          text        NOT NULL,
    current        jsonb       NOT NULL DEFAULT '{}',
    current_at     jsonb       NOT NULL DEFAULT '{}',
    buckets        jsonb       NOT NULL DEFAULT '[]',
    last_sample_at timestamptz,
    updated_at     timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, owner)
);

-- Component health (processors/health.py).
CREATE TABLE components (
    tenant_id       text        NOT NULL,
    name            text        NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    status          text        NOT NULL
        CHECK (status IN ('healthy', 'degraded', 'unhealthy', 'unknown')),
    reported_status text        NOT NULL CHECK (reported_status IN ('healthy', 'degraded', 'unhealthy')),
    description     text,
    last_report_at  timestamptz NOT NULL,
    first_seen      timestamptz NOT NULL,
    service_name    text,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

-- the staleness sweep: components not yet recorded unknown, oldest report first
CREATE INDEX components_not_unknown ON components (last_report_at) WHERE status <> 'unknown';

CREATE SEQUENCE component_health_changes_seq;

CREATE TABLE component_health_changes (
    seq         bigint      NOT NULL DEFAULT nextval('component_health_changes_seq'),
    tenant_id   text        NOT NULL,
    component   text        NOT NULL,
    previous    text        NOT NULL,
    status      text        NOT NULL,
    at          timestamptz NOT NULL,
    description text,
    recorded_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, component, at, seq)
) PARTITION BY RANGE (at);

CREATE INDEX component_health_changes_at ON component_health_changes (at);

-- How far each rollup has been computed (storage/partitions.py).
CREATE TABLE rollup_watermarks (
    name       text        PRIMARY KEY,
    done_until timestamptz NOT NULL
);
