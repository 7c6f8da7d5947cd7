DROP TABLE IF EXISTS agenttrail.runs_rebuild
;

CREATE TABLE IF NOT EXISTS agenttrail.runs_rebuild (
    project_id        LowCardinality(String),
    run_id            String,
    service_name      LowCardinality(String),
    agent_name        String,
    session_id        String,
    user_id           String,
    environment       LowCardinality(String),
    root_name         String,
    status            LowCardinality(String),
    status_message    String,
    started_at        DateTime64(9, 'UTC'),
    ended_at          DateTime64(9, 'UTC'),
    duration_ms       Float64,
    step_count        UInt64,
    llm_calls         UInt64,
    tool_calls        UInt64,
    error_count       UInt64,
    input_tokens      UInt64,
    output_tokens     UInt64,
    cache_read_tokens UInt64,
    reasoning_tokens  UInt64,
    total_tokens      UInt64,
    cost_usd          Nullable(Float64),
    unpriced_llm_calls UInt64,
    root_missing      UInt8,
    orphan_count      UInt64,
    tools             Array(String),
    models            Array(String),
    first_seen_at     DateTime64(3, 'UTC'),
    last_span_at      DateTime64(3, 'UTC'),
    version           UInt64,
    INDEX idx_started started_at TYPE minmax GRANULARITY 1,
    INDEX idx_run_id run_id TYPE bloom_filter(0.01) GRANULARITY 1
) ENGINE = ReplacingMergeTree(version)
ORDER BY (project_id, run_id)
SETTINGS index_granularity = 1024, min_compress_block_size = 4096, max_compress_block_size = 65536
;

INSERT INTO agenttrail.runs_rebuild SELECT * FROM agenttrail.runs
;

EXCHANGE TABLES agenttrail.runs AND agenttrail.runs_rebuild
;

INSERT INTO agenttrail.runs SELECT * FROM agenttrail.runs_rebuild WHERE toInt64(version) > (SELECT toInt64(max(version)) - 60000000000 FROM agenttrail.runs) AND (project_id, run_id, version) NOT IN (SELECT project_id, run_id, version FROM agenttrail.runs WHERE toInt64(version) > (SELECT toInt64(max(version)) - 60000000000 FROM agenttrail.runs))
;

DROP TABLE agenttrail.runs_rebuild
