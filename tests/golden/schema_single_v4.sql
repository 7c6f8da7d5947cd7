ALTER TABLE agenttrail.steps MODIFY SETTING vertical_merge_algorithm_min_rows_to_activate = 8192
