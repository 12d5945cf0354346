"""The app of one API process when ``upres serve`` runs several (``UPRES_API_WORKERS``).

uvicorn starts each worker process by importing this factory, so everything it
needs comes from the environment, where ``upres serve`` put its command-line
options. Worker liveness for /healthz is judged from the queue (the workers'
supervisor lives in another process).
"""

from __future__ import annotations

from fastapi import FastAPI

from upres.api.app import create_app
from upres.config import load_settings
from upres.wiring import configure_logging


def app() -> FastAPI:
    configure_logging()
    return create_app(load_settings())
