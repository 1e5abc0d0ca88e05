-- Jobs derived from job-state spans (processors/jobs.py), and their timeline.

CREATE TABLE jobs (
    tenant_id        text        NOT NULL,
    job_id           text        NOT NULL CHECK (length(job_id) BETWEEN 1 AND 128),
    job_type         text,
    status           text        NOT NULL
        CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')),
    progress_percent smallint    NOT NULL CHECK (progress_percent BETWEEN 0 AND 100),
    created_at       timestamptz NOT NULL,
    started_at       timestamptz,
    completed_at     timestamptz,
    error_message    text,
    metadata         jsonb       NOT NULL DEFAULT '{}',
    attempt          integer     NOT NULL DEFAULT 1,
    retry_of         text,
    service_name     text,
    last_report_at   timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    -- report times behind merged fields, so that late reports merge order-independently
    provenance       jsonb       NOT NULL DEFAULT '{}',
    PRIMARY KEY (tenant_id, job_id)
);

-- the admin list: newest first within a tenant, optionally by status
CREATE INDEX jobs_tenant_created ON jobs (tenant_id, created_at DESC, job_id DESC);
CREATE INDEX jobs_tenant_status_created ON jobs (tenant_id, status, created_at DESC, job_id DESC);
CREATE INDEX jobs_job_id ON jobs (job_id);

-- every change of status or progress, in the order it was stored: the job's timeline
-- and the outbox that live updates and notifications read from
CREATE TABLE job_changes (
    seq              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id        text        NOT NULL,
    job_id           text        NOT NULL,
    status           text        NOT NULL,
    progress_percent smallint    NOT NULL,
    at               timestamptz NOT NULL,
    error_message    text,
    recorded_at      timestamptz NOT NULL,
    FOREIGN KEY (tenant_id, job_id) REFERENCES jobs (tenant_id, job_id) ON DELETE CASCADE
);

CREATE INDEX job_changes_job ON job_changes (tenant_id, job_id, at);
