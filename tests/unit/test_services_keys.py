"""KeyService and CreditService, and the ``upres keys`` / ``upres credits`` commands."""

from __future__ import annotations

import base64
import hashlib
import sqlite3

import pytest
import typer
from typer.testing import CliRunner

from tests.stores import FakeClock, sqlite_store
from upres.cli import keys as cli_keys
from upres.errors import InvalidRequest, NotFound, Unauthorized
from upres.services import keys as keys_module
from upres.services.credits import CreditService
from upres.services.keys import KeyService


@pytest.fixture
def store(tmp_path):
    store = sqlite_store(tmp_path / "upres.db", FakeClock())
    yield store
    store.close()


@pytest.fixture
def service(store) -> KeyService:
    return KeyService(store)


def test_create_makes_an_account_and_a_key_storing_only_its_hash(service, store, tmp_path):
    created = service.create(credits=50, group="vip")

    assert created.secret.startswith("upres_")
    assert len(created.secret) > 40
    assert created.key.allowed_models == ("topaz-video-upscale",)
    assert created.key.user_group == "vip"
    assert created.secret.startswith(created.key.prefix)
    assert store.get_account(created.key.account_id).balance == 50
    with sqlite3.connect(tmp_path / "upres.db") as db:
        (stored_hash,) = db.execute("SELECT key_hash FROM api_keys").fetchone()
        dump = "\n".join(db.iterdump())
    assert stored_hash == hashlib.sha256(created.secret.encode()).hexdigest()
    assert created.secret not in dump


def test_each_account_gets_a_standard_webhooks_secret(service, store):
    first = store.get_account(service.create().key.account_id).webhook_secret
    second = store.get_account(service.create().key.account_id).webhook_secret

    assert first.startswith("whsec_")
    assert len(base64.b64decode(first.removeprefix("whsec_"))) >= 24
    assert first != second


def test_authenticate_returns_the_key(service):
    created = service.create(models=("topaz-video-upscale", "other"))

    key = service.authenticate(created.secret)

    assert key.id == created.key.id
    assert key.allowed_models == ("topaz-video-upscale", "other")
    assert key.may_use("other")


@pytest.mark.parametrize("secret", [None, "", "upres_unknown", "Bearer nonsense"])
def test_authenticate_refuses_missing_or_unknown_secrets(service, secret):
    service.create()

    with pytest.raises(Unauthorized, match="Invalid or expired token"):
        service.authenticate(secret)


def test_revoked_keys_stop_working_and_others_do_not(service):
    account_key = service.create(credits=10)
    sibling = service.create(account_id=account_key.key.account_id)

    revoked = service.revoke(account_key.key.id)

    assert revoked.revoked is True
    with pytest.raises(Unauthorized):
        service.authenticate(account_key.secret)
    assert service.authenticate(sibling.secret).account_id == account_key.key.account_id
    states = {k.id: k.revoked for k in service.list(account_key.key.account_id)}
    assert states == {account_key.key.id: True, sibling.key.id: False}
    with pytest.raises(NotFound):
        service.revoke("key_missing")


def test_hits_and_misses_both_compare_in_constant_time(service, monkeypatch):
    created = service.create()
    compared = []
    real = keys_module.hmac.compare_digest

    def spy(a, b):
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(keys_module.hmac, "compare_digest", spy)
    service.authenticate(created.secret)
    with pytest.raises(Unauthorized):
        service.authenticate("upres_wrong")

    assert len(compared) == 2
    assert all(len(a) == len(b) == 64 for a, b in compared)


def test_create_for_an_existing_account_grants_credits(service, store):
    first = service.create(credits=5)
    service.create(credits=7, account_id=first.key.account_id)

    assert store.get_account(first.key.account_id).balance == 12
    with pytest.raises(NotFound):
        service.create(account_id="acct_missing")
    with pytest.raises(InvalidRequest):
        service.create(credits=-1)


def test_credit_service_grants_and_reads_balances(store, service):
    account_id = service.create(credits=1).key.account_id
    credits = CreditService(store)

    assert credits.grant(account_id, 2.5).balance == 3.5
    assert credits.balance(account_id) == 3.5
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(InvalidRequest):
            credits.grant(account_id, bad)
    with pytest.raises(NotFound):
        credits.balance("acct_missing")


def test_cli_create_prints_the_key_last_and_list_revoke_grant_work(tmp_path):
    runner = CliRunner()
    # The keys and credits commands alone: the whole tree (build_app) loads torch.
    app = typer.Typer()
    cli_keys.register(app)
    data = str(tmp_path / "data")

    made = runner.invoke(
        app, ["keys", "create", "--data-dir", data, "--credits", "100", "--group", "vip"]
    )
    assert made.exit_code == 0, made.output
    secret = made.output.strip().splitlines()[-1]
    store = sqlite_store(tmp_path / "data" / "upres.db", FakeClock())
    key = KeyService(store).authenticate(secret)
    assert key.user_group == "vip"

    listed = runner.invoke(app, ["keys", "list", "--data-dir", data])
    assert key.id in listed.output
    assert secret not in listed.output
    granted = runner.invoke(app, ["credits", "grant", key.account_id, "25", "--data-dir", data])
    assert granted.exit_code == 0, granted.output
    assert CreditService(store).balance(key.account_id) == 125
    revoked = runner.invoke(app, ["keys", "revoke", key.id, "--data-dir", data])
    assert revoked.exit_code == 0, revoked.output
    with pytest.raises(Unauthorized):
        KeyService(store).authenticate(secret)
    missing = runner.invoke(app, ["credits", "grant", "acct_missing", "1", "--data-dir", data])
    assert missing.exit_code == 1
    store.close()
