"""The HTTP edge: ``create_app(settings)`` builds the FastAPI app."""

from __future__ import annotations
