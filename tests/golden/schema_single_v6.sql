ALTER TABLE agenttrail.steps ADD COLUMN IF NOT EXISTS failure_category LowCardinality(String) AFTER truncated
;

ALTER TABLE agenttrail.steps ADD COLUMN IF NOT EXISTS failure_type LowCardinality(String) AFTER failure_category
;

ALTER TABLE agenttrail.steps ADD COLUMN IF NOT EXISTS error_fingerprint String AFTER failure_type
;

ALTER TABLE agenttrail.steps ADD INDEX IF NOT EXISTS idx_failure_category failure_category TYPE set(32) GRANULARITY 4
