"""agenttrail.service"""
