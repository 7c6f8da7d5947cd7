ALTER TABLE agenttrail.steps_local ON CLUSTER agenttrail_cluster MODIFY SETTING merge_selector_base = 20
