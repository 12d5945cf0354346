"""Where result files live, and how clients are handed a link to them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from upres.errors import InvalidRequest
from upres.inputs.ranged import BlockReader

# Keys are relative paths of plain segments: no empty, dot-led or '..' parts.
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")
MAX_KEY_LENGTH = 512
# What a download learns of a missing, forged or malformed link: nothing more.
NO_SUCH_RESULT = "No such result file"


@dataclass(frozen=True, kw_only=True)
class StoredFile:
    """A result on local disk: where it lies and the name a client saves it as."""

    path: Path
    download_name: str


class ResultStorage(Protocol):
    """A store of result files addressed by key (e.g. ``<task id>/attempt-1.mp4``)."""

    def put(self, src: Path, key: str) -> None:
        """Store a copy of ``src`` under ``key``, all at once or not at all."""
        ...

    def copy_to(self, key: str, dest: Path) -> None:
        """Write the file stored under ``key`` to ``dest``.

        Raises NotFound when ``key`` is absent, ServiceUnavailable when the
        storage refuses.
        """
        ...

    def url(self, key: str, *, expires_at: datetime) -> str:
        """A download link for ``key`` that stops working at ``expires_at``."""
        ...

    def delete(self, key: str) -> None:
        """Remove ``key``; nothing happens when it is absent."""
        ...

    def exists(self, key: str) -> bool: ...

    def reader(self, key: str) -> BlockReader:
        """The file stored under ``key`` as a seekable binary file that fetches only
        the bytes read from it, in blocks, and counts them (``bytes_received``).

        Raises NotFound when ``key`` is absent, ServiceUnavailable when the
        storage refuses; its reads raise StorageUnavailable.
        """
        ...


def check_key(key: str) -> str:
    """Return ``key`` when it is a safe relative key.

    Raises InvalidRequest for an empty, absolute, dotted or over-long key.
    """
    if len(key) > MAX_KEY_LENGTH or _KEY.fullmatch(key) is None:
        raise InvalidRequest(f"Invalid storage key {key!r}")
    return key
