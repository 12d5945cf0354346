"""Results on the local disk, served by the API through signed, expiring links.

A link is ``{base_url}/v1/files/{token}``. The token carries the key and the
expiry in the clear and an HMAC of both, so the API can check a link without
the database, and nobody can forge one or stretch its expiry.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

from upres.clock import Clock, utc_now
from upres.domain.storage_keys import download_name
from upres.errors import InvalidRequest, NotFound, ResultExpired, StorageUnavailable
from upres.storage.base import NO_SUCH_RESULT, StoredFile, check_key
from upres.storage.readers import FileReader

SECRET_FILE = "file-signing.key"
_DOMAIN = b"upres-file-link-v1\n"


def load_or_create_secret(data_dir: Path) -> bytes:
    """The link-signing secret kept in ``data_dir``, created (32 random bytes) on first use.

    Safe when several processes start at once: the file appears whole, once.
    Raises StorageUnavailable when it cannot be read or written, or is empty.
    """
    path = data_dir / SECRET_FILE
    try:
        if not path.exists():
            _create_secret(path)
        secret = bytes.fromhex(path.read_text().strip())
    except (OSError, ValueError) as exc:
        raise StorageUnavailable(f"Cannot load the file signing key {path}: {exc}") from exc
    if not secret:
        raise StorageUnavailable(f"The file signing key {path} is empty")
    return secret


def _create_secret(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_hex(32) + "\n")
    try:
        os.link(staging, path)  # fails if another process won the race: keep theirs
    except FileExistsError:
        pass
    finally:
        staging.unlink()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class LocalStorage:
    """Result files under ``root``; links signed with ``secret`` (see module doc)."""

    def __init__(self, root: Path, *, base_url: str, secret: bytes, clock: Clock = utc_now) -> None:
        self.root = root
        self._base_url = base_url.rstrip("/")
        self._secret = secret
        self._clock = clock

    def path(self, key: str) -> Path:
        """Where ``key`` lives. Raises InvalidRequest for an unsafe key."""
        return self.root / check_key(key)

    def put(self, src: Path, key: str) -> None:
        """Copy ``src`` next to its destination, flush it, then rename it into place.

        Raises InvalidRequest for an unsafe key, StorageUnavailable when the
        disk refuses.
        """
        dest = self.path(key)
        staging = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.part")
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, staging)
            with staging.open("rb+") as handle:
                os.fsync(handle.fileno())
            staging.replace(dest)
        except OSError as exc:
            staging.unlink(missing_ok=True)
            raise StorageUnavailable(f"Cannot store result {key!r}: {exc}") from exc

    def copy_to(self, key: str, dest: Path) -> None:
        src = self.path(key)
        if not src.is_file():
            raise NotFound(f"No stored file {key!r}")
        try:
            shutil.copyfile(src, dest)
        except OSError as exc:
            raise StorageUnavailable(f"Cannot read stored file {key!r}: {exc}") from exc

    def url(self, key: str, *, expires_at: datetime) -> str:
        return f"{self._base_url}/v1/files/{self.token(key, expires_at=expires_at)}"

    def token(self, key: str, *, expires_at: datetime) -> str:
        """The signed reference to ``key`` valid until ``expires_at`` (URL-safe)."""
        payload = f"{int(expires_at.timestamp())}:{check_key(key)}".encode()
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def open_signed(self, token: str) -> StoredFile:
        """The file a link token refers to.

        Raises NotFound for a malformed or forged token or a missing file,
        ResultExpired once the token's expiry has passed.
        """
        payload = self._verified(token)
        stamp, _, key = payload.partition(":")
        if self._clock() >= datetime.fromtimestamp(int(stamp), UTC):
            raise ResultExpired("This result link has expired")
        try:
            path = self.path(key)
        except InvalidRequest as exc:
            raise NotFound(NO_SUCH_RESULT) from exc
        if not path.is_file():
            raise NotFound(NO_SUCH_RESULT)
        return StoredFile(path=path, download_name=download_name(key))

    def delete(self, key: str) -> None:
        """Remove ``key`` and the folders it leaves empty (up to ``root``)."""
        path = self.path(key)
        path.unlink(missing_ok=True)
        parent = path.parent
        while parent != self.root and parent.is_relative_to(self.root):
            try:
                parent.rmdir()
            except OSError:
                return
            parent = parent.parent

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def reader(self, key: str) -> FileReader:
        path = self.path(key)
        try:
            return FileReader(path)
        except FileNotFoundError as exc:
            raise NotFound(f"No stored file {key!r}") from exc
        except OSError as exc:
            raise StorageUnavailable(f"Cannot read stored file {key!r}: {exc}") from exc

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, _DOMAIN + payload, hashlib.sha256).digest()

    def _verified(self, token: str) -> str:
        """The payload of ``token``. Raises NotFound when malformed or forged."""
        encoded, _, signature = token.partition(".")
        try:
            payload, mac = _unb64(encoded), _unb64(signature)
        except (binascii.Error, ValueError) as exc:
            raise NotFound(NO_SUCH_RESULT) from exc
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise NotFound(NO_SUCH_RESULT)
        text = payload.decode("utf-8", errors="replace")
        stamp, sep, _ = text.partition(":")
        if not sep or not stamp.isdigit():
            raise NotFound(NO_SUCH_RESULT)
        return text
