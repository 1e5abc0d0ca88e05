-- Retention (storage/retention.py): the maintenance round deletes old rows in batches,
-- oldest first, each batch found by an index on the rows' age instead of a scan.

-- finished jobs by when they were last stored. Partial: pending and running jobs are
-- never deleted, and a job is in it from the update that finishes it (a status never
-- leaves a terminal state), so running jobs' progress updates do not touch it.
CREATE INDEX jobs_finished_updated ON jobs (updated_at)
    WHERE status IN ('succeeded', 'failed', 'cancelled');

-- finished commands by when they finished; open ones are never deleted
CREATE INDEX job_commands_finished ON job_commands (done_at)
    WHERE state IN ('done', 'failed');

CREATE INDEX audit_log_at ON audit_log (at);
