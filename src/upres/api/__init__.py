"""The HTTP edge: ``create_app(settings, services=...)`` builds the FastAPI app."""

from __future__ import annotations
