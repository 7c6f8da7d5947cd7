CREATE TABLE IF NOT EXISTS agenttrail.validations_local ON CLUSTER agenttrail_cluster (
    validation_id   String,
    project_id      LowCardinality(String),
    run_id          String,
    runbook_name    String,
    runbook_version UInt32,
    runbook_hash    String,
    status          LowCardinality(String),
    reasons         String,
    summary         String,
    input_hash      String,
    source          LowCardinality(String),
    created_at      DateTime64(3, 'UTC'),
    INDEX idx_created created_at TYPE minmax GRANULARITY 1,
    INDEX idx_run_id run_id TYPE bloom_filter(0.01) GRANULARITY 4
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')
ORDER BY (project_id, run_id, input_hash)
TTL toDateTime(created_at) + INTERVAL 30 DAY
;

CREATE TABLE IF NOT EXISTS agenttrail.validations ON CLUSTER agenttrail_cluster AS agenttrail.validations_local
ENGINE = Distributed(agenttrail_cluster, agenttrail, validations_local, cityHash64(run_id))
;

CREATE TABLE IF NOT EXISTS agenttrail.runbooks_local ON CLUSTER agenttrail_cluster (
    project_id      LowCardinality(String),
    name            String,
    version         UInt32,
    yaml            String,
    hash            String,
    applies_agent   String,
    applies_service String,
    auto            UInt8,
    created_at      DateTime64(3, 'UTC')
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')
ORDER BY (project_id, name, version)
;

CREATE TABLE IF NOT EXISTS agenttrail.runbooks ON CLUSTER agenttrail_cluster AS agenttrail.runbooks_local
ENGINE = Distributed(agenttrail_cluster, agenttrail, runbooks_local, cityHash64(project_id, name))
