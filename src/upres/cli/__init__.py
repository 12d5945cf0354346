"""The ``upres`` command: serve | worker | upscale | remote | models | keys | credits.

Each sub-module adds its commands to the one Typer app through ``register``;
what ``--help`` prints is written for users, in the commands' docstrings and
``help=`` texts (tests/unit/test_cli_help.py keeps a copy of each).
"""

from __future__ import annotations

import typer

from upres.cli._signals import quiet_start
from upres.pipeline.encoder_process import quiet_encoder_logs

_HELP = (
    "Upscale videos with AI models, on this machine or as an HTTP service.\n\n"
    "upres upscale upscales one file; upres serve runs the API, its workers and a web page. "
    "Options take their defaults from the UPRES_* environment variables their help names; "
    "an option given on the command line wins.\n\n"
    "Exit status: 0 done, 1 the work failed, 2 a wrong command line or setting, "
    "128+N stopped by signal N (130 for Ctrl-C)."
)


def build_app() -> typer.Typer:
    """The whole command tree."""
    # Imported here, under main()'s quiet_start: they bring in torch, which takes seconds.
    from upres.cli import keys, models, remote, serve, upscale  # noqa: PLC0415

    app = typer.Typer(no_args_is_help=True, add_completion=False, help=_HELP)
    models.register(app)
    keys.register(app)
    upscale.register(app)
    remote.register(app)
    serve.register(app)
    return app


def main() -> None:
    """The ``upres`` console script."""
    quiet_encoder_logs()
    with quiet_start():
        app = build_app()
    app()
