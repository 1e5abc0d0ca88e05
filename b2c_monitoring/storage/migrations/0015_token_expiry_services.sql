-- Tokens that end, and probe tokens bound to services (issue 13).
-- The collector's auth extension reads these columns by name (id, name, token_hash,
-- tenants, services, expires_at): keep them.

ALTER TABLE api_tokens
    -- NULL: never expires; at and after this instant the token is refused
    ADD COLUMN expires_at timestamptz,
    -- NULL: any service; otherwise the service.name values a probe token may act for
    ADD COLUMN services text[],
    ADD CONSTRAINT api_tokens_expiry_after_creation
        CHECK (expires_at IS NULL OR expires_at > created_at),
    -- an empty list must not read as "no service" in one place and "any" in another
    ADD CONSTRAINT api_tokens_services_not_empty
        CHECK (services IS NULL OR cardinality(services) > 0),
    ADD CONSTRAINT api_tokens_services_probe_only
        CHECK (services IS NULL OR role = 'probe');
