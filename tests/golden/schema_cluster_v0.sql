CREATE DATABASE IF NOT EXISTS agenttrail ON CLUSTER agenttrail_cluster
;

CREATE TABLE IF NOT EXISTS agenttrail.schema_migrations_local ON CLUSTER agenttrail_cluster (
    version UInt32, description String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}') ORDER BY version
;

CREATE TABLE IF NOT EXISTS agenttrail.schema_migrations ON CLUSTER agenttrail_cluster AS agenttrail.schema_migrations_local
ENGINE = Distributed(agenttrail_cluster, agenttrail, schema_migrations_local, version)
