ALTER TABLE agenttrail.runs_local ON CLUSTER agenttrail_cluster ADD COLUMN IF NOT EXISTS failure_categories Array(LowCardinality(String)) AFTER last_step_at
;

ALTER TABLE agenttrail.runs ON CLUSTER agenttrail_cluster ADD COLUMN IF NOT EXISTS failure_categories Array(LowCardinality(String)) AFTER last_step_at
;

ALTER TABLE agenttrail.runs_by_start_local ON CLUSTER agenttrail_cluster ADD COLUMN IF NOT EXISTS failure_categories Array(LowCardinality(String)) AFTER last_step_at
;

ALTER TABLE agenttrail.runs_by_start ON CLUSTER agenttrail_cluster ADD COLUMN IF NOT EXISTS failure_categories Array(LowCardinality(String)) AFTER last_step_at
;

INSERT INTO agenttrail.runs (project_id, run_id, service_name, agent_name, session_id, user_id, environment, root_name, status, status_message, started_at, ended_at, duration_ms, step_count, llm_calls, tool_calls, error_count, input_tokens, output_tokens, cache_read_tokens, reasoning_tokens, total_tokens, cost_usd, unpriced_llm_calls, root_missing, orphan_count, tools, models, first_seen_at, last_span_at, first_step_at, last_step_at, failure_categories, version) SELECT r.project_id, r.run_id, r.service_name, r.agent_name, r.session_id, r.user_id, r.environment, r.root_name, r.status, r.status_message, r.started_at, r.ended_at, r.duration_ms, r.step_count, r.llm_calls, r.tool_calls, r.error_count, r.input_tokens, r.output_tokens, r.cache_read_tokens, r.reasoning_tokens, r.total_tokens, r.cost_usd, r.unpriced_llm_calls, r.root_missing, r.orphan_count, r.tools, r.models, r.first_seen_at, r.last_span_at, r.first_step_at, r.last_step_at, f.categories, r.version + 1 FROM agenttrail.runs AS r FINAL INNER JOIN (SELECT project_id, run_id, arraySort(groupUniqArray(toString(failure_category))) AS categories FROM agenttrail.steps WHERE failure_category != '' GROUP BY project_id, run_id) AS f ON r.project_id = f.project_id AND r.run_id = f.run_id
