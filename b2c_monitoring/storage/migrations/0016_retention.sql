-- Retention (storage/retention.py): the maintenance round deletes old rows in batches,
-- oldest first, each batch found by an index on the rows' age instead of a scan.

-- Finished jobs by when they finished. Not by updated_at: Postgres decides HOT updates
-- by every column any index names, partial predicates included, so an index on
-- updated_at would turn each progress update of a running job (which changes
-- updated_at and no indexed column) into a non-HOT one that writes every index of
-- jobs, the trigram index too (measured: 0 of 1,000 updates HOT, against 958 without).
-- completed_at changes only with status, which is indexed anyway.
CREATE INDEX jobs_finished_completed ON jobs (completed_at)
    WHERE status IN ('succeeded', 'failed', 'cancelled');

-- finished commands by when they finished; open ones are never deleted
CREATE INDEX job_commands_finished ON job_commands (done_at)
    WHERE state IN ('done', 'failed');

CREATE INDEX audit_log_at ON audit_log (at);
