-- JobCommandExpired: a retry or cancel that no job runner took within the expiry is
-- announced on the hub (storage/job_commands.py), so a page waiting for it stops.
ALTER TABLE hub_events DROP CONSTRAINT hub_events_target_check;
ALTER TABLE hub_events ADD CONSTRAINT hub_events_target_check CHECK (target IN (
    'JobStatusChanged', 'HealthStatusChanged', 'AlertTriggered', 'ResourceMetricsUpdated',
    'ResourceAlertTriggered', 'ServiceStatusChanged', 'JobCommandExpired'));
