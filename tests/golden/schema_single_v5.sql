ALTER TABLE agenttrail.steps MODIFY SETTING merge_selector_base = 20
