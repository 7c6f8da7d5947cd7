CREATE DATABASE IF NOT EXISTS agenttrail
;

CREATE TABLE IF NOT EXISTS agenttrail.schema_migrations (
    version UInt32, description String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree() ORDER BY version
