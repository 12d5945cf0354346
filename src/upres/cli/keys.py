"""``upres keys create|list|revoke`` and ``upres credits grant|balance``.

``keys create`` prints the new secret as the LAST line of its output; scripts
rely on that (``KEY=$(upres keys create ... | tail -n 1)``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from upres.cli._exits import errors_end_the_command
from upres.cli._settings import setting_default, settings_or_exit
from upres.database import TaskStore
from upres.services.credits import CreditService
from upres.services.keys import DEFAULT_MODELS, KeyService
from upres.wiring import open_store

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="The folder holding the database of the server to manage "
        f"({setting_default('data_dir')}); UPRES_DATABASE_URL, when set, names the "
        "database instead.",
    ),
]
AccountId = Annotated[
    str,
    typer.Argument(
        metavar="ACCOUNT_ID", help="The account's id, as upres keys create and keys list show it."
    ),
]
_API_MODELS_HELP = (
    "Comma-separated API model names the key may ask for in a request's 'model' field "
    f"(default: {','.join(DEFAULT_MODELS)}). These are not the networks of upres models list."
)


@contextmanager
def _store(data_dir: Path | None) -> Iterator[TaskStore]:
    """A migrated store for ``data_dir``; an UpresError ends the command (``_exits``)."""
    settings = settings_or_exit(data_dir=data_dir)
    store: TaskStore | None = None
    try:
        with errors_end_the_command():
            store = open_store(settings)
            yield store
    finally:
        if store is not None:
            store.close()


def create(
    *,
    data_dir: DataDir = None,
    credits: Annotated[
        float, typer.Option(help="Credits to put on the new account (or add to --account).")
    ] = 0.0,
    api_models: Annotated[
        str | None,
        typer.Option(
            "--api-models",
            help=_API_MODELS_HELP,
        ),
    ] = None,
    models: Annotated[
        str | None, typer.Option("--models", hidden=True, help="Old name of --api-models.")
    ] = None,
    group: Annotated[
        str,
        typer.Option(help="User group of the new account; tasks report it as usage.user_group."),
    ] = "default",
    account: Annotated[
        str | None,
        typer.Option(help="Give the key to this existing account instead of a new one."),
    ] = None,
) -> None:
    """Create an API key (and its account). The key is the last line printed (``_CREATE_HELP``)."""
    allowed = _api_models(api_models, deprecated=models)
    with _store(data_dir) as store:
        created = KeyService(store).create(
            credits=credits, models=allowed, group=group, account_id=account
        )
        typer.echo(f"account: {created.key.account_id}")
        typer.echo(f"key id: {created.key.id}")
        typer.echo(f"webhook secret: {store.get_account(created.key.account_id).webhook_secret}")
        typer.echo(created.secret)


def _api_models(given: str | None, *, deprecated: str | None) -> tuple[str, ...]:
    """The API models of ``--api-models``, or of its old name ``--models`` (with a warning).

    Raises typer.BadParameter when both are given.
    """
    if deprecated is not None:
        if given is not None:
            raise typer.BadParameter("give --api-models only", param_hint="--models")
        typer.echo("warning: --models is deprecated; use --api-models", err=True)
        given = deprecated
    chosen = ",".join(DEFAULT_MODELS) if given is None else given
    return tuple(name.strip() for name in chosen.split(",") if name.strip())


def list_keys(data_dir: DataDir = None) -> None:
    """List the API keys: id, first characters, state, account, group, balance and
    API models. The secrets themselves are never stored, so never shown."""
    with _store(data_dir) as store:
        for key in KeyService(store).list():
            state = "revoked" if key.revoked else "active"
            balance = store.get_account(key.account_id).balance
            typer.echo(
                f"{key.id}  {key.prefix}...  {state}  account={key.account_id} "
                f"group={key.user_group} balance={balance:g} models={','.join(key.allowed_models)}"
            )


def revoke(
    key_id: Annotated[
        str, typer.Argument(metavar="KEY_ID", help="The key's id, as upres keys list shows it.")
    ],
    data_dir: DataDir = None,
) -> None:
    """Revoke an API key. A running server stops accepting it within
    UPRES_KEY_CACHE_TTL_S seconds."""
    with _store(data_dir) as store:
        key = KeyService(store).revoke(key_id)
        typer.echo(f"revoked {key.id}")


def grant(
    account_id: AccountId,
    amount: Annotated[
        float, typer.Argument(metavar="AMOUNT", help="Credits to add (more than 0).")
    ],
    data_dir: DataDir = None,
) -> None:
    """Add credits to an account and print its new balance."""
    with _store(data_dir) as store:
        account = CreditService(store).grant(account_id, amount)
        typer.echo(f"{account.id} balance {account.balance:g}")


def balance(account_id: AccountId, data_dir: DataDir = None) -> None:
    """Print an account's balance in credits."""
    with _store(data_dir) as store:
        typer.echo(f"{CreditService(store).balance(account_id):g}")


_CREATE_HELP = (
    "Create an API key, and an account for it unless --account names one.\n\n"
    "It prints the account, the key id, the account's webhook secret and, on the last "
    "line, the key itself (KEY=$(upres keys create | tail -n 1)). The key is shown only "
    "this once."
)


def register(app: typer.Typer) -> None:
    """Add the ``keys`` and ``credits`` command groups to ``app``."""
    keys = typer.Typer(
        no_args_is_help=True, help="Create, list and revoke the API keys of a server's database."
    )
    keys.command("create", help=_CREATE_HELP)(create)
    keys.command("list")(list_keys)
    keys.command("revoke")(revoke)
    credits = typer.Typer(
        no_args_is_help=True, help="Add credits to an account, or show its balance."
    )
    credits.command("grant")(grant)
    credits.command("balance")(balance)
    app.add_typer(keys, name="keys")
    app.add_typer(credits, name="credits")
