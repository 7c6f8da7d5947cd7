"""agenttrail.proto"""
