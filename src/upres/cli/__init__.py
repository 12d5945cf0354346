"""The ``upres`` command: serve | worker | upscale | models | keys | credits.

Each sub-module adds its commands to the one Typer app through ``register``.
"""

from __future__ import annotations

import typer

from upres.cli._signals import quiet_start
from upres.pipeline.encoder_process import quiet_encoder_logs


def build_app() -> typer.Typer:
    """The whole command tree."""
    # Imported here, under main()'s quiet_start: they bring in torch, which takes seconds.
    from upres.cli import keys, models, serve, upscale  # noqa: PLC0415

    app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
    models.register(app)
    keys.register(app)
    upscale.register(app)
    serve.register(app)
    return app


def main() -> None:
    """The ``upres`` console script."""
    quiet_encoder_logs()
    with quiet_start():
        app = build_app()
    app()
