"""agenttrail.validator"""
