-- Events are written with COPY (storage/hub_events.publish), which cannot call
-- functions per row: the writing transaction's id comes from a default. publish()
-- assigns that id (pg_current_xact_id()) before the COPY draws any event id, so the
-- order that readers rely on (0007) holds whatever order defaults are evaluated in.
ALTER TABLE hub_events ALTER COLUMN xid SET DEFAULT pg_current_xact_id();
