"""How every ``upres`` command ends: the one table of exit statuses.

    0      done
    1      the work failed: an input upres cannot read, a model or device this
           machine lacks, an option value the work refuses, a key or account
           that does not exist
    2      the command line or the configuration is wrong: an option click
           refuses, or an invalid ``UPRES_*`` setting or override (ConfigError),
           whether found before any work or once it started
    128+N  stopped by signal N: 130 Ctrl-C, 143 SIGTERM, 129 SIGHUP

The README's "Exit codes" section is this table for users.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import IntEnum
from typing import NoReturn

import typer

from upres.errors import ConfigError, UpresError

_SIGNAL_BASE = 128


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1
    # Click ends a command line it cannot parse with the same status.
    USAGE = 2


def stopped_by(signum: int) -> int:
    """The exit status of a command that ``signum`` stopped, as shells report it."""
    return _SIGNAL_BASE + signum


def error_code(exc: UpresError) -> ExitCode:
    """The exit status a command ends with when ``exc`` stops it."""
    return ExitCode.USAGE if isinstance(exc, ConfigError) else ExitCode.FAILED


def fail(exc: UpresError) -> NoReturn:
    """Print ``error: <message>`` on stderr and end the command with ``exc``'s status."""
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(error_code(exc)) from exc


@contextmanager
def errors_end_the_command() -> Iterator[None]:
    """An UpresError raised inside the block ends the command through ``fail``."""
    try:
        yield
    except UpresError as exc:
        fail(exc)
