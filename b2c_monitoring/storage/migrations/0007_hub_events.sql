-- Events for the real-time hub (/hubs/job-status): an outbox written in the same
-- transaction as the change each announces (storage/hub_events.py), read by every API
-- instance in id order, and by a reconnecting client from the id it saw last.
CREATE SEQUENCE hub_events_id_seq;

CREATE TABLE hub_events (
    id         bigint      PRIMARY KEY DEFAULT nextval('hub_events_id_seq'),
    -- the writing transaction, assigned before id is drawn: a reader that finds a gap
    -- in id knows the gap is final once the transactions in progress then have ended
    xid        xid8        NOT NULL,
    tenant_id  text        NOT NULL,
    target     text        NOT NULL CHECK (target IN ('JobStatusChanged', 'HealthStatusChanged',
        'AlertTriggered', 'ResourceMetricsUpdated', 'ResourceAlertTriggered')),
    arguments  jsonb       NOT NULL,
    job_id     text,
    job_type   text,
    service_id text,
    created_at timestamptz NOT NULL DEFAULT now()
);

ALTER SEQUENCE hub_events_id_seq OWNED BY hub_events.id;

-- pruning by age (maintenance)
CREATE INDEX hub_events_created ON hub_events (created_at);
-- a client's catch-up: its tenant's events after the id it saw
CREATE INDEX hub_events_tenant_id ON hub_events (tenant_id, id);
