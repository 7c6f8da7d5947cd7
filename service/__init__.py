"""agenttrail.service — settings, API keys, process wiring and the ``agenttrail`` command."""
