"""agenttrail.receiver"""
