"""agenttrail.api"""
