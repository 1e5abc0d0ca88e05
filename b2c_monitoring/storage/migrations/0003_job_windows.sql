-- Windows of stalled and overdue jobs per job type (processors/job_flags.py). A NULL
-- window means the default from the settings (B2C_JOB_HEARTBEAT_WINDOW_S,
-- B2C_JOB_START_WINDOW_S), so a type can override one window and keep the other.

CREATE TABLE job_type_windows (
    job_type         text     PRIMARY KEY CHECK (length(job_type) BETWEEN 1 AND 64),
    heartbeat_window interval CHECK (heartbeat_window > interval '0'),
    start_window     interval CHECK (start_window > interval '0')
);
