ALTER TABLE agenttrail.steps_local ON CLUSTER agenttrail_cluster ADD INDEX IF NOT EXISTS idx_ingested ingested_at TYPE minmax GRANULARITY 1
;

ALTER TABLE agenttrail.steps_local ON CLUSTER agenttrail_cluster MATERIALIZE INDEX idx_ingested
