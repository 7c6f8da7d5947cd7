CREATE TABLE IF NOT EXISTS agenttrail.steps_local ON CLUSTER agenttrail_cluster (
    project_id            LowCardinality(String),
    run_id                String,
    step_id               String,
    parent_step_id        String,
    trace_state           String,
    name                  String,
    kind                  LowCardinality(String),
    span_kind             LowCardinality(String),
    operation             LowCardinality(String),
    service_name          LowCardinality(String),
    scope_name            LowCardinality(String),
    scope_version         LowCardinality(String),
    agent_name            String,
    session_id            String,
    user_id               String,
    environment           LowCardinality(String),
    tool_name             String,
    tool_call_id          String,
    tool_arguments        String,
    model                 LowCardinality(String),
    provider              LowCardinality(String),
    status                LowCardinality(String),
    status_message        String,
    error_type            String,
    start_time            DateTime64(9, 'UTC'),
    end_time              DateTime64(9, 'UTC'),
    duration_ns           UInt64,
    input_tokens          UInt64,
    output_tokens         UInt64,
    cache_read_tokens     UInt64,
    cache_creation_tokens UInt64,
    reasoning_tokens      UInt64,
    total_tokens          UInt64,
    cost_usd              Nullable(Float64),
    cost_source           LowCardinality(String),
    finish_reasons        Array(String),
    unmapped_usage        Map(String, String),
    attributes            Map(LowCardinality(String), String),
    resource_attributes   Map(LowCardinality(String), String),
    events                Nested(time DateTime64(9, 'UTC'), name LowCardinality(String),
                                 attributes Map(LowCardinality(String), String)),
    links                 Nested(trace_id String, span_id String, trace_state String,
                                 attributes Map(LowCardinality(String), String)),
    truncated             UInt8,
    ingested_at           DateTime64(3, 'UTC'),
    INDEX idx_run_id run_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_tool tool_name TYPE bloom_filter(0.01) GRANULARITY 4
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')
PARTITION BY toDate(start_time)
ORDER BY (project_id, run_id, step_id)
TTL toDateTime(start_time) + INTERVAL 30 DAY
SETTINGS ttl_only_drop_parts = 1
;

CREATE TABLE IF NOT EXISTS agenttrail.steps ON CLUSTER agenttrail_cluster AS agenttrail.steps_local
ENGINE = Distributed(agenttrail_cluster, agenttrail, steps_local, cityHash64(run_id))
;

CREATE TABLE IF NOT EXISTS agenttrail.runs_local ON CLUSTER agenttrail_cluster (
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
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', version)
ORDER BY (project_id, run_id)
TTL toDateTime(started_at) + INTERVAL 30 DAY
;

CREATE TABLE IF NOT EXISTS agenttrail.runs ON CLUSTER agenttrail_cluster AS agenttrail.runs_local
ENGINE = Distributed(agenttrail_cluster, agenttrail, runs_local, cityHash64(run_id))
;

CREATE VIEW IF NOT EXISTS agenttrail.otel_traces ON CLUSTER agenttrail_cluster AS
SELECT
    start_time                      AS Timestamp,
    run_id                          AS TraceId,
    step_id                         AS SpanId,
    parent_step_id                  AS ParentSpanId,
    trace_state                     AS TraceState,
    name                            AS SpanName,
    concat('SPAN_KIND_', span_kind) AS SpanKind,
    service_name                    AS ServiceName,
    resource_attributes             AS ResourceAttributes,
    scope_name                      AS ScopeName,
    scope_version                   AS ScopeVersion,
    attributes                      AS SpanAttributes,
    duration_ns                     AS Duration,
    multiIf(status = 'error', 'Error', status = 'ok', 'Ok', 'Unset') AS StatusCode,
    status_message                  AS StatusMessage,
    events.time                     AS `Events.Timestamp`,
    events.name                     AS `Events.Name`,
    events.attributes               AS `Events.Attributes`,
    links.trace_id                  AS `Links.TraceId`,
    links.span_id                   AS `Links.SpanId`,
    links.trace_state               AS `Links.TraceState`,
    links.attributes                AS `Links.Attributes`,
    project_id                      AS ProjectId,
    kind                            AS StepKind
FROM agenttrail.steps
