"""The REST API application factory."""

from __future__ import annotations

import threading

from fastapi import FastAPI

from agenttrail.service.auth import KeyRing
from agenttrail.storage import Store
from agenttrail.ui import mount_ui

from . import (agent_runs, compare, events, failures, health, metrics, projects, rca_runs, runbooks, runs,
               sessions, signals, stream)
from .errors import install_error_handlers
from .visibility import ReadYourWrites

# stream before runs: /v1/runs/stream must not be read as a run id.
ROUTERS = [health.router, stream.router, runs.router, projects.router, sessions.router, metrics.router,
           events.router, runbooks.router, failures.router, agent_runs.router, rca_runs.router,
           signals.router, compare.router]


def create_app(store: Store, keyring: KeyRing | None = None) -> FastAPI:
    """A FastAPI app serving ``store``; every ``/v1`` endpoint checks keys from ``keyring``."""
    app = FastAPI(title="agenttrail", version="0.1.0",
                  description="Runs and steps of AI agents, from OpenTelemetry traces.")
    app.state.store = store
    app.state.keyring = keyring or KeyRing()
    app.state.stopping = threading.Event()  # set on shutdown: open event streams end
    app.state.open_streams = 0
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    mount_ui(app)
    app.add_middleware(ReadYourWrites, store=store)
    return app
