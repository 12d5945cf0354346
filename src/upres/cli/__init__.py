"""The ``upres`` command: serve | worker | upscale | models | keys | credits.

Each sub-module adds its commands to the one Typer app through ``register``.
"""

from __future__ import annotations

import typer

from upres.cli import keys, models, serve, upscale


def build_app() -> typer.Typer:
    """The whole command tree."""
    app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
    models.register(app)
    keys.register(app)
    upscale.register(app)
    serve.register(app)
    return app


def main() -> None:
    build_app()()
