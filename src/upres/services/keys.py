"""API keys: create, authenticate (constant time), list, revoke; webhook secrets.

Keys are 256-bit random strings, so a single fast SHA-256 is the right hash:
there is nothing to brute-force, and authentication stays cheap per request.
Only the hash and a short display prefix are stored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Protocol

from upres.callbacks.webhooks import SECRET_PREFIX
from upres.domain.accounts import Account, ApiKey, CreatedKey
from upres.domain.records import StoredKey
from upres.domain.tasks import API_MODEL
from upres.errors import InvalidRequest, Unauthorized
from upres.services.credits import CreditGrants

KEY_PREFIX = "upres_"
DISPLAY_CHARS = 12
DEFAULT_MODELS: tuple[str, ...] = (API_MODEL,)
UNAUTHORIZED_MESSAGE = "Invalid or expired token"
# A well-formed hash that matches no key, compared against on a miss so that
# hits and misses take the same path.
_NO_HASH = "0" * 64


def hash_key(secret: str) -> str:
    """The hex SHA-256 under which a key is stored."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_key_secret() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def new_webhook_secret() -> str:
    """A Standard Webhooks signing secret: ``whsec_`` and base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


class KeyRecords(CreditGrants, Protocol):
    """Accounts and keys: what ``KeyService`` needs."""

    def create_account(self, *, user_group: str, credits: float, webhook_secret: str) -> Account:
        """A new account holding ``credits`` (recorded as a grant when positive)."""
        ...

    def create_key(
        self, *, account_id: str, key_hash: str, prefix: str, allowed_models: tuple[str, ...]
    ) -> ApiKey:
        """Raises NotFound when the account does not exist."""
        ...

    def key_by_hash(self, key_hash: str) -> StoredKey | None:
        """The key with this hash, or None."""
        ...

    def list_keys(self, account_id: str | None = None) -> list[ApiKey]:
        """Every key, or the account's."""
        ...

    def revoke_key(self, key_id: str) -> ApiKey:
        """Raises NotFound when there is no such key."""
        ...


class KeyService:
    """Creates accounts and keys; turns a bearer secret into an ``ApiKey``."""

    def __init__(self, store: KeyRecords) -> None:
        self._store = store

    def create(
        self,
        *,
        credits: float = 0.0,
        models: tuple[str, ...] = DEFAULT_MODELS,
        group: str = "default",
        account_id: str | None = None,
    ) -> CreatedKey:
        """A new key, for a new account (holding ``credits``) or for ``account_id``
        (which is granted ``credits`` when positive).

        Raises InvalidRequest for negative credits or no models, NotFound for an
        unknown ``account_id``.
        """
        if credits < 0:
            raise InvalidRequest("credits must not be negative", param="credits")
        if not models:
            raise InvalidRequest("a key needs at least one model", param="models")
        if account_id is None:
            account = self._store.create_account(
                user_group=group, credits=credits, webhook_secret=new_webhook_secret()
            )
            account_id = account.id
        elif credits > 0:
            self._store.grant_credits(account_id=account_id, amount=credits)
        secret = new_key_secret()
        key = self._store.create_key(
            account_id=account_id,
            key_hash=hash_key(secret),
            prefix=secret[:DISPLAY_CHARS],
            allowed_models=models,
        )
        return CreatedKey(secret=secret, key=key)

    def authenticate(self, secret: str | None) -> ApiKey:
        """The key for a bearer secret.

        Raises Unauthorized when the secret is missing, unknown or revoked.
        """
        if not secret:
            raise Unauthorized(UNAUTHORIZED_MESSAGE)
        presented = hash_key(secret)
        stored = self._store.key_by_hash(presented)
        expected = _NO_HASH if stored is None else stored.key_hash
        matches = hmac.compare_digest(presented, expected)
        if stored is None or not matches or stored.key.revoked:
            raise Unauthorized(UNAUTHORIZED_MESSAGE)
        return stored.key

    def list(self, account_id: str | None = None) -> list[ApiKey]:
        return self._store.list_keys(account_id)

    def revoke(self, key_id: str) -> ApiKey:
        """Raises NotFound when there is no such key."""
        return self._store.revoke_key(key_id)

    def webhook_secret(self, account_id: str) -> str:
        """Raises NotFound when there is no such account."""
        return self._store.get_account(account_id).webhook_secret
