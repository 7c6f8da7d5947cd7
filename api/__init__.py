"""agenttrail.api — the REST API: runs, steps, projects, summaries, events and validations.

:func:`agenttrail.api.app.create_app` builds the FastAPI app over a Store and a KeyRing; each
module holds one group of routes, all scoped to the caller's projects.
"""
