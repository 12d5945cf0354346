"""Results as bytes in memory: the in-package ``ResultStorage`` for unit tests.

A link is ``memory://results/<key>?expires=<unix seconds>``. It carries the
key and the expiry so a test can see what was handed out; nothing serves it.
"""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path

from upres.errors import NotFound, StorageUnavailable
from upres.storage.base import NO_SUCH_RESULT, check_key
from upres.storage.readers import BytesReader

LINK_PREFIX = "memory://results/"


class MemoryStorage:
    """Result files as bytes in a dict behind a lock, keyed like every backend.

    Every method raises InvalidRequest for an unsafe key (see ``check_key``).
    """

    def __init__(self) -> None:
        self._files: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def put(self, src: Path, key: str) -> None:
        """Store the bytes of ``src``, read whole before anything changes, so a
        failed read leaves the earlier file under ``key`` in place.

        Raises StorageUnavailable when ``src`` cannot be read.
        """
        check_key(key)
        try:
            data = src.read_bytes()
        except OSError as exc:
            raise StorageUnavailable(f"Cannot store result {key!r}: {exc}") from exc
        with self._lock:
            self._files[key] = data

    def copy_to(self, key: str, dest: Path) -> None:
        dest.write_bytes(self.read(key))

    def url(self, key: str, *, expires_at: datetime) -> str:
        """A link naming ``key`` and ``expires_at``, whether or not ``key`` is stored."""
        return f"{LINK_PREFIX}{check_key(key)}?expires={int(expires_at.timestamp())}"

    def delete(self, key: str) -> None:
        check_key(key)
        with self._lock:
            self._files.pop(key, None)

    def exists(self, key: str) -> bool:
        check_key(key)
        with self._lock:
            return key in self._files

    def reader(self, key: str) -> BytesReader:
        """Raises NotFound when ``key`` is absent."""
        return BytesReader(self.read(key))

    def read(self, key: str) -> bytes:
        """The bytes stored under ``key``. Raises NotFound when there are none."""
        check_key(key)
        with self._lock:
            data = self._files.get(key)
        if data is None:
            raise NotFound(NO_SUCH_RESULT)
        return data
