-- Alerting (b2c_monitoring/alerting/, storage/alerts.py): rules per tenant, alerts with
-- their lifecycle and every change as a row, silences, maintenance windows, expected
-- schedules of job types (missed runs), notification channels and the notification
-- outbox with every delivery attempt.

CREATE TABLE alert_rules (
    id          uuid        PRIMARY KEY,
    tenant_id   text        NOT NULL,
    name        text        NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    kind        text        NOT NULL,
    severity    text        NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    params      jsonb       NOT NULL DEFAULT '{}',
    cooldown    interval    NOT NULL CHECK (cooldown >= interval '0'),
    enabled     boolean     NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    UNIQUE (tenant_id, name)
);

-- One alert per firing of a condition (dedup_key within its tenant). At most one alert
-- per key is open (firing or acknowledged); a condition that comes back within its
-- rule's cool-down reopens the alert it resolved instead of opening (and paging) anew.
CREATE TABLE alerts (
    id              uuid        PRIMARY KEY,
    tenant_id       text        NOT NULL,
    rule_id         uuid        REFERENCES alert_rules (id) ON DELETE SET NULL,
    kind            text        NOT NULL,
    dedup_key       text        NOT NULL,
    state           text        NOT NULL CHECK (state IN ('firing', 'acknowledged', 'resolved')),
    severity        text        NOT NULL,
    title           text        NOT NULL,
    service_name    text,
    service_id      uuid,
    job_type        text,
    details         jsonb       NOT NULL DEFAULT '{}',
    started_at      timestamptz NOT NULL,
    last_fired_at   timestamptz NOT NULL,
    fire_count      integer     NOT NULL DEFAULT 1,
    acknowledged_at timestamptz,
    acknowledged_by text,
    resolved_at     timestamptz,
    notified        boolean     NOT NULL DEFAULT false,
    updated_at      timestamptz NOT NULL,
    CHECK ((state = 'resolved') = (resolved_at IS NOT NULL))
);

CREATE UNIQUE INDEX alerts_one_open ON alerts (tenant_id, dedup_key) WHERE state <> 'resolved';
CREATE INDEX alerts_key_resolved ON alerts (tenant_id, dedup_key, resolved_at DESC);
-- the list: newest first within a tenant (keyset on started_at, id)
CREATE INDEX alerts_tenant_started ON alerts (tenant_id, started_at DESC, id DESC);
CREATE INDEX alerts_started ON alerts (started_at DESC, id DESC);

CREATE TABLE alert_events (
    seq       bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id  uuid        NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    tenant_id text        NOT NULL,
    at        timestamptz NOT NULL,
    event     text        NOT NULL
        CHECK (event IN ('fired', 'refired', 'updated', 'acknowledged', 'silenced', 'resolved')),
    actor     text,
    details   jsonb       NOT NULL DEFAULT '{}'
);

CREATE INDEX alert_events_alert ON alert_events (alert_id, seq);

-- A silence mutes the notifications of one alert's condition (its dedup key) until a time.
CREATE TABLE alert_silences (
    id         uuid        PRIMARY KEY,
    tenant_id  text        NOT NULL,
    dedup_key  text        NOT NULL,
    until      timestamptz NOT NULL,
    created_by text        NOT NULL,
    reason     text,
    created_at timestamptz NOT NULL
);

CREATE INDEX alert_silences_key ON alert_silences (tenant_id, dedup_key, until DESC);

-- While a window lasts, no alert fires for its service or its job type.
CREATE TABLE maintenance_windows (
    id           uuid        PRIMARY KEY,
    tenant_id    text        NOT NULL,
    service_name text,
    job_type     text,
    starts_at    timestamptz NOT NULL,
    ends_at      timestamptz NOT NULL,
    reason       text,
    created_by   text        NOT NULL,
    created_at   timestamptz NOT NULL,
    -- the evaluator announces each start and end once on the hub
    announced    text        NOT NULL DEFAULT 'none' CHECK (announced IN ('none', 'started', 'ended')),
    CHECK (ends_at > starts_at),
    CHECK ((service_name IS NULL) <> (job_type IS NULL))
);

CREATE INDEX maintenance_windows_tenant ON maintenance_windows (tenant_id, ends_at DESC);

-- The expected schedule of a job type within a tenant: a run must start within grace
-- of each time the cron expression names (in its time zone), else a missed-run alert.
CREATE TABLE job_schedules (
    tenant_id  text        NOT NULL,
    job_type   text        NOT NULL CHECK (length(job_type) BETWEEN 1 AND 64),
    cron       text        NOT NULL,
    timezone   text        NOT NULL,
    grace      interval    NOT NULL CHECK (grace > interval '0'),
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, job_type)
);

-- Where a tenant's alerts are sent. ``secret`` (the webhook's HMAC key, the SMTP
-- password) is never returned by the API.
CREATE TABLE notification_channels (
    id           uuid        PRIMARY KEY,
    tenant_id    text        NOT NULL,
    name         text        NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    kind         text        NOT NULL CHECK (kind IN ('webhook', 'slack', 'email')),
    config       jsonb       NOT NULL,
    secret       text,
    min_severity text        NOT NULL DEFAULT 'info' CHECK (min_severity IN ('info', 'warning', 'critical')),
    enabled      boolean     NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL,
    UNIQUE (tenant_id, name)
);

-- The outbox: one row per (alert change, channel), written in the transaction that
-- made the change; a notifier claims a due row with a conditional UPDATE, sends it
-- after that commit, and records the outcome. A failed attempt is retried with
-- exponential back-off until max age; every attempt is a row.
CREATE TABLE notifications (
    id              uuid        PRIMARY KEY,
    tenant_id       text        NOT NULL,
    alert_id        uuid        NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    channel_id      uuid        NOT NULL REFERENCES notification_channels (id) ON DELETE CASCADE,
    event           text        NOT NULL,
    payload         jsonb       NOT NULL,
    state           text        NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'sending', 'sent', 'failed')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    claimed_until   timestamptz,
    last_error      text,
    created_at      timestamptz NOT NULL,
    sent_at         timestamptz
);

CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE state IN ('pending', 'sending');
CREATE INDEX notifications_alert ON notifications (alert_id, created_at);

CREATE TABLE notification_attempts (
    seq             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    notification_id uuid        NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    at              timestamptz NOT NULL,
    ok              boolean     NOT NULL,
    error           text
);

CREATE INDEX notification_attempts_notification ON notification_attempts (notification_id, seq);
