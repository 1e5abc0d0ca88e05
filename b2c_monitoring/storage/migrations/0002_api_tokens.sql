-- Bearer tokens of the admin API. Only a SHA-256 of the secret is stored.

CREATE TABLE api_tokens (
    id           uuid        PRIMARY KEY,
    name         text        NOT NULL,
    token_hash   bytea       NOT NULL UNIQUE,
    role         text        NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    -- NULL: every tenant; otherwise the tenants this token may see
    tenants      text[]      CHECK (tenants IS NULL OR cardinality(tenants) > 0),
    created_at   timestamptz NOT NULL,
    revoked_at   timestamptz,
    last_used_at timestamptz
);
