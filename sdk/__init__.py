"""agenttrail.sdk"""
