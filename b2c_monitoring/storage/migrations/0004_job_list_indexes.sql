-- GET /api/admin/jobs: newest first (created_at DESC, tenant_id DESC, job_id DESC) with
-- keyset pagination. storage/jobs.py runs one ordered index range scan per (tenant,
-- status) pair of the query and merges them, so each page reads about `limit` index
-- entries however deep it is. 0001 has (tenant_id, [status,] created_at DESC, job_id
-- DESC) for tenant-scoped tokens; these serve the rest.

-- every tenant (a token scoped to all tenants, no tenant filter)
CREATE INDEX jobs_created ON jobs (created_at DESC, tenant_id DESC, job_id DESC);
-- every tenant, by status; also the flag filters (stalled: running, overdue: pending)
CREATE INDEX jobs_status_created ON jobs (status, created_at DESC, tenant_id DESC, job_id DESC);
-- a job type within a tenant, when the type is rare among the tenant's jobs
CREATE INDEX jobs_tenant_type_created ON jobs (tenant_id, job_type, created_at DESC, job_id DESC);

-- q=: substring search over the error message and the metadata. pg_trgm is a trusted
-- contrib extension (part of Debian's postgresql-15): the database's owner may create it.
-- One expression, so one index and one trigram extraction per written row; the query
-- must spell it exactly like this (storage/jobs.py, _SEARCH_TEXT).
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX jobs_search_trgm ON jobs
    USING gin ((coalesce(error_message, '') || ' ' || metadata::text) gin_trgm_ops);
