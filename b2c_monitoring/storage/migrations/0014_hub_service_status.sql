-- ServiceStatusChanged: a connected service's damped status changed (the console turns
-- it red live); the hub's targets are checked by the table, so the list grows here.
ALTER TABLE hub_events DROP CONSTRAINT hub_events_target_check;
ALTER TABLE hub_events ADD CONSTRAINT hub_events_target_check CHECK (target IN (
    'JobStatusChanged', 'HealthStatusChanged', 'AlertTriggered', 'ResourceMetricsUpdated',
    'ResourceAlertTriggered', 'ServiceStatusChanged'));
