ALTER TABLE agenttrail.steps ADD INDEX IF NOT EXISTS idx_ingested ingested_at TYPE minmax GRANULARITY 1
;

ALTER TABLE agenttrail.steps MATERIALIZE INDEX idx_ingested
