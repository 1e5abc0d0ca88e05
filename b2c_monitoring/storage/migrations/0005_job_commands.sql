-- Retry and cancel requests as rows (storage/job_commands.py), the audit log of operator
-- actions (storage/audit.py), and the probe role for the job runners that act on them.

-- a probe token: only the probe-facing control endpoints (auth.Role.PROBE)
ALTER TABLE api_tokens DROP CONSTRAINT api_tokens_role_check;
ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_role_check
    CHECK (role IN ('viewer', 'operator', 'admin', 'probe'));

-- One row per request to act on a job. The job's service (service_name) must act: a job
-- runner of that service claims it (pending -> claimed), acts, and marks it done or
-- failed. A claim not marked within its lease is claimable again, so a runner dying
-- mid-command loses nothing; every state lives here, so an API restart loses nothing.
CREATE TABLE job_commands (
    id             uuid        PRIMARY KEY,
    tenant_id      text        NOT NULL,
    job_id         text        NOT NULL,
    kind           text        NOT NULL CHECK (kind IN ('cancel', 'retry')),
    service_name   text        NOT NULL,
    -- a retry: the job type, the new run's id and attempt, the parameters to run it with
    payload        jsonb       NOT NULL DEFAULT '{}',
    requested_by   text        NOT NULL,  -- the token's name
    requested_by_token text,              -- the token's id
    requested_at   timestamptz NOT NULL,
    state          text        NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'claimed', 'done', 'failed')),
    claimed_by     text,
    claimed_at     timestamptz,
    claims         integer     NOT NULL DEFAULT 0,  -- a command never done is given up
    done_at        timestamptz,
    result         jsonb,  -- done: e.g. {"newJobId": ...}; failed: {"error": ...}
    CHECK ((state = 'claimed') = (claimed_at IS NOT NULL AND done_at IS NULL) OR state <> 'claimed'),
    CHECK ((state IN ('done', 'failed')) = (done_at IS NOT NULL))
);

-- At most one live command per job and kind: a second request answers the first
-- (ON CONFLICT), also between two API replicas. A failed command does not count, so
-- the request can be made again.
CREATE UNIQUE INDEX job_commands_one_live ON job_commands (tenant_id, job_id, kind)
    WHERE state <> 'failed';
-- the claim: open commands of one service, oldest first
CREATE INDEX job_commands_open ON job_commands (service_name, requested_at)
    WHERE state IN ('pending', 'claimed');
CREATE INDEX job_commands_job ON job_commands (tenant_id, job_id, requested_at DESC);

-- Operator actions, append-only: who did what to which target, and when.
CREATE TABLE audit_log (
    seq            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at             timestamptz NOT NULL,
    actor_token_id text,
    actor_name     text        NOT NULL,
    action         text        NOT NULL,  -- e.g. job.cancel, job.retry
    tenant_id      text,                  -- NULL: not about one tenant
    target         text        NOT NULL,  -- e.g. the job id
    details        jsonb       NOT NULL DEFAULT '{}'
);

-- newest first, within a tenant or overall; the action filter reads along these
CREATE INDEX audit_log_tenant_seq ON audit_log (tenant_id, seq DESC);
CREATE INDEX audit_log_action_seq ON audit_log (action, seq DESC);
