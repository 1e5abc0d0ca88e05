-- A command that no job runner claims within B2C_JOB_COMMAND_EXPIRY_S (no runner of the
-- job's service polls: a Celery app without the integration, a service that is gone)
-- ends "expired" instead of staying pending for ever (storage/job_commands.py). Like a
-- failed one, it no longer blocks a new request of the same kind for the job.
ALTER TABLE job_commands DROP CONSTRAINT job_commands_state_check;
ALTER TABLE job_commands ADD CONSTRAINT job_commands_state_check
    CHECK (state IN ('pending', 'claimed', 'done', 'failed', 'expired'));
ALTER TABLE job_commands DROP CONSTRAINT job_commands_check1;
ALTER TABLE job_commands ADD CONSTRAINT job_commands_check1
    CHECK ((state IN ('done', 'failed', 'expired')) = (done_at IS NOT NULL));
DROP INDEX job_commands_one_live;
CREATE UNIQUE INDEX job_commands_one_live ON job_commands (tenant_id, job_id, kind)
    WHERE state NOT IN ('failed', 'expired');
