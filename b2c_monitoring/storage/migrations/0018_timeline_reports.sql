-- The timeline is one row per distinct report (telemetry-contract.md, "The job
-- timeline"), not one per change the derivation made in arrival order: a report
-- redelivered after a later one of the same job (the collector retries what was not
-- acknowledged) derives no change, yet belongs in the timeline at its own time. A
-- report is identified by what it says: its time, state, progress and error message
-- (the message as its digest: a btree entry cannot hold a long text). The writer
-- inserts every report and lets this key drop the ones already there.
--
-- Rows stored before this rule that have the same identity are one report.
DELETE FROM job_changes a USING job_changes b
WHERE a.tenant_id = b.tenant_id AND a.job_id = b.job_id AND a.at = b.at
  AND a.status = b.status AND a.progress_percent = b.progress_percent
  AND md5(coalesce(a.error_message, '')) = md5(coalesce(b.error_message, ''))
  AND a.seq > b.seq;

-- replaces job_changes_job (tenant_id, job_id, at): same leading columns, so the
-- timeline read and the retention delete use it as before
CREATE UNIQUE INDEX job_changes_report ON job_changes
    (tenant_id, job_id, at, status, progress_percent, md5(coalesce(error_message, '')));
DROP INDEX job_changes_job;
