-- The timeline's unique key (0018) held the error message's md5 as 32 hex characters:
-- a third of the entry, and the key was the largest structure of the timeline (417
-- bytes a job with four rows at 1,000,000 jobs, bench/reads_at_scale.py). The same
-- digest as a uuid is its 16 bytes. Same name: the writer tells a redelivered report
-- by it (storage/jobs.py).
DROP INDEX job_changes_report;
CREATE UNIQUE INDEX job_changes_report ON job_changes
    (tenant_id, job_id, at, status, progress_percent, (md5(coalesce(error_message, ''))::uuid));
