CREATE TABLE IF NOT EXISTS agenttrail.runs_by_start (
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
    first_step_at     DateTime64(9, 'UTC'),
    last_step_at      DateTime64(9, 'UTC'),
    version           UInt64,
    INDEX idx_run_id run_id TYPE bloom_filter(0.01) GRANULARITY 1
) ENGINE = ReplacingMergeTree(version)
ORDER BY (toStartOfMinute(started_at), project_id, run_id)
SETTINGS index_granularity = 1024, min_compress_block_size = 4096, max_compress_block_size = 65536
;

CREATE MATERIALIZED VIEW IF NOT EXISTS agenttrail.runs_by_start_feed TO agenttrail.runs_by_start AS SELECT * FROM agenttrail.runs
;

INSERT INTO agenttrail.runs_by_start SELECT * FROM agenttrail.runs
