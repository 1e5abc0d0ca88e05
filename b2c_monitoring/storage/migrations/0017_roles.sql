-- Least-privilege roles and tenant isolation for the read-only role (docs/security.md,
-- "Stores"). The migration runs as the owner of the schema. Passwords are no business
-- of a migration: the login roles are made beforehand by whoever may create roles (the
-- local stack's setup, stack/postgres.py; an operator on a server of its own), and
-- only made here, without login, where they are missing (which needs CREATEROLE).
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['b2c_processor', 'b2c_api', 'b2c_grafana', 'b2c_ingest_auth'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        END IF;
    END LOOP;
END
$$;

REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO b2c_processor, b2c_api, b2c_grafana, b2c_ingest_auth;

-- The processor and the API read and write rows; neither changes the schema, and
-- neither owns a table (so neither can ALTER, DROP or TRUNCATE one). Tables of later
-- migrations get the same grants by default; so do the partitions the maintenance
-- creates, which is harmless for these two (they write through the parents anyway).
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO b2c_processor, b2c_api;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO b2c_processor, b2c_api;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO b2c_processor, b2c_api;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO b2c_processor, b2c_api;
REVOKE INSERT, UPDATE, DELETE ON schema_migrations FROM b2c_processor, b2c_api;
-- tokens are made, revoked and audited by the API alone
REVOKE INSERT, UPDATE, DELETE ON api_tokens, audit_log FROM b2c_processor;

-- The collector's token check: the columns a token is judged by, not the table. A later
-- migration that adds a column this check reads grants it here too (or, if column
-- grants get in its way, GRANT SELECT ON api_tokens: the table holds hashes only).
GRANT SELECT (id, name, token_hash, tenants, role, revoked_at) ON api_tokens TO b2c_ingest_auth;
DO $$
DECLARE
    c text;
BEGIN
    -- services and expires_at come with the token migration (0015)
    FOR c IN
        SELECT column_name FROM information_schema.columns
        WHERE table_schema = 'public' AND table_name = 'api_tokens'
          AND column_name IN ('services', 'expires_at')
    LOOP
        EXECUTE format('GRANT SELECT (%I) ON api_tokens TO b2c_ingest_auth', c);
    END LOOP;
END
$$;

-- Grafana: SELECT on the tables the dashboards read, each named: no default privileges,
-- and never on a partition, because row-level security on a partitioned table applies
-- to queries through the parent only.
GRANT SELECT ON jobs, job_changes, job_type_windows, components, component_health_changes,
    services, service_checks, service_status_changes, resource_samples, resource_windows,
    alerts
    TO b2c_grafana;

-- Which tenants a Grafana login may read: a row per (login role, tenant), written by
-- `b2c admin grafana-role create` (storage/grafana_roles.py) as the owner. Keyed by the
-- login itself (session_user), not by a setting: a dashboard's raw SQL can SET any
-- setting, but it cannot change who logged in.
CREATE TABLE grafana_tenants (
    role_name name NOT NULL,
    tenant_id text NOT NULL CHECK (length(tenant_id) BETWEEN 1 AND 64),
    PRIMARY KEY (role_name, tenant_id)
);
REVOKE ALL ON grafana_tenants FROM b2c_processor, b2c_api;

CREATE FUNCTION grafana_tenant_ids() RETURNS text[]
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public
AS $$
    SELECT coalesce(array_agg(tenant_id), '{}') FROM public.grafana_tenants
    WHERE role_name = session_user
$$;
REVOKE ALL ON FUNCTION grafana_tenant_ids() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION grafana_tenant_ids() TO b2c_grafana;

-- Row-level security on every tenant-keyed table Grafana reads. The policy's scalar
-- subquery runs once per query (an InitPlan), not once per row. The processor and the
-- API are not filtered: the stack gives them BYPASSRLS (the processor's COPY needs
-- it; COPY FROM refuses tables with row-level security otherwise), and a permissive
-- policy keeps them working on a server where nobody may grant BYPASSRLS. The owner
-- (migrations, maintenance) is not subject to the policies of its own tables.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['jobs', 'job_changes', 'components', 'component_health_changes',
                             'services', 'service_status_changes', 'resource_samples',
                             'resource_windows', 'alerts'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY b2c_apps ON %I TO b2c_processor, b2c_api '
                       'USING (true) WITH CHECK (true)', t);
        EXECUTE format('CREATE POLICY b2c_grafana_tenants ON %I FOR SELECT TO b2c_grafana '
                       'USING (tenant_id = ANY ((SELECT grafana_tenant_ids())::text[]))', t);
    END LOOP;
END
$$;

-- a check belongs to a service, and so to the service's tenant
ALTER TABLE service_checks ENABLE ROW LEVEL SECURITY;
CREATE POLICY b2c_apps ON service_checks TO b2c_processor, b2c_api USING (true) WITH CHECK (true);
CREATE POLICY b2c_grafana_tenants ON service_checks FOR SELECT TO b2c_grafana
    USING (service_id IN (SELECT id FROM services WHERE tenant_id = ANY ((SELECT grafana_tenant_ids())::text[])));
