"""The app of one API process when ``upres serve`` runs several (``UPRES_API_WORKERS``).

uvicorn starts each worker process by importing this factory, so everything it
needs comes from the environment, where ``upres serve`` put its command-line
options. Each process opens its own store; worker liveness for /healthz is
judged from the queue (the workers' supervisor lives in another process).
"""

from __future__ import annotations

from fastapi import FastAPI

from upres.config import load_settings
from upres.wiring import app_from_settings, configure_logging


def app() -> FastAPI:
    configure_logging()
    return app_from_settings(load_settings())
