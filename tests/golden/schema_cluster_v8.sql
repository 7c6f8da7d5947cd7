ALTER TABLE agenttrail.runs_local ON CLUSTER agenttrail_cluster ADD COLUMN IF NOT EXISTS first_step_at DateTime64(9, 'UTC') AFTER last_span_at
;

ALTER TABLE agenttrail.runs ON CLUSTER agenttrail_cluster ADD COLUMN IF NOT EXISTS first_step_at DateTime64(9, 'UTC') AFTER last_span_at
;

ALTER TABLE agenttrail.runs_local ON CLUSTER agenttrail_cluster ADD COLUMN IF NOT EXISTS last_step_at DateTime64(9, 'UTC') AFTER first_step_at
;

ALTER TABLE agenttrail.runs ON CLUSTER agenttrail_cluster ADD COLUMN IF NOT EXISTS last_step_at DateTime64(9, 'UTC') AFTER first_step_at
