-- A runner may decline a command it cannot carry out (a cancel of a job that runs in
-- another instance of its service, a retry of a type it has no handler for): the
-- command goes back to pending for the service's other instances, never again to the
-- ones that declined it, and is given up once nobody took it within the decline window.
ALTER TABLE job_commands
    ADD COLUMN declined_by text[] NOT NULL DEFAULT '{}',
    ADD COLUMN declined_at timestamptz,
    ADD COLUMN decline_reason text;
